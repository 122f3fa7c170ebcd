/**
 * The query workflow (issue 18, ADR 0034) on PGlite and PostgreSQL: every step (raise, answer, close, re-open, and
 * automatic queries) writes its history row with who and when, in the transaction of its entry; re-open rules; the
 * study-wide list's filters and routing; notifications queued in the outbox; the integrity audit naming history rows
 * changed, deleted or inserted behind the log; and migration 0022's back-filled history of older queries.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { asc, eq, sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openTestDatabase, engineUnderTest, type TestDb } from "../helpers/db.ts";
import { giveCompleteConsent } from "../helpers/consent.ts";
import { ROOT } from "../helpers/portal.ts";
import { createStudy, getStudyOrThrow } from "../../app/studies/studies.server.ts";
import { createStaff, delegateTasks, STAFF_PASSWORD as PW } from "../helpers/study-staff.ts";
import { createApiToken, tokenPrincipal } from "../../app/accounts/tokens.server.ts";
import { importForm } from "../../app/records/forms.server.ts";
import { enrollParticipant } from "../../app/participants/participants.server.ts";
import { saveRecord } from "../../app/records/records.server.ts";
import {
  answerQuery,
  closeQuery,
  openQuery,
  reopenQuery,
} from "../../app/clinical-monitoring/clinical-monitoring.server.ts";
import { parseQueryFilters, queryList, queryListCsv } from "../../app/queries/query-list.server.ts";
import { sealAll } from "../../app/log/sealer.server.ts";
import { runIntegrityAudit } from "../../app/integrity-audit/integrity-audit.server.ts";
import { appendEntry } from "../../app/log/append-entry.server.ts";
import { saltedTextHash } from "../../anchoring/log/text-hash.ts";
import { outbox, queries, queryEvents } from "../../db/schema/index.ts";
import type { Principal } from "../../app/platform/permissions.server.ts";

const S = "QWF-1";
let t: TestDb;
const p: Record<string, Principal> = {};
const ids: Record<string, string> = {};
let recordId: string;
let record2: string;
let token: Principal;

const FORM = {
  code: "VITALS",
  title: "Vital signs",
  version: 1,
  visits: ["V1"],
  fields: [
    { name: "sbp", label: "Systolic BP", type: "number", softMax: 160, required: true },
    { name: "dbp", label: "Diastolic BP", type: "number", required: false },
  ],
};

const eventsOf = (q: string) =>
  t.ctx.db.select().from(queryEvents).where(eq(queryEvents.queryId, q)).orderBy(asc(queryEvents.at));
let studyId: string;
/** The outbox of the study, to this test's staff (the consent helper adds staff of its own). */
const mail = async () =>
  (await t.ctx.db.select().from(outbox).where(eq(outbox.studyId, studyId))).filter((m) =>
    m.toAddress.endsWith("@qwf.test"),
  );

async function replica<T>(fn: (tx: any) => Promise<T>) {
  return t.ctx.db.transaction(async (tx) => {
    await tx.execute(sql.raw("SET LOCAL session_replication_role = replica"));
    return fn(tx);
  });
}
async function audit() {
  await sealAll(t.ctx);
  return (await runIntegrityAudit(t.ctx, { study: S })).findings.filter((f) => f.table === "query_events");
}

beforeAll(async () => {
  t = await openTestDatabase();
  await createStudy(t.ctx, { code: S, title: "Queries", sites: [{ code: "S1", name: "1" }] }, null);
  studyId = (await getStudyOrThrow(t.ctx, S)).id;
  const staff = await createStaff(t.ctx, S, "qwf.test", [
    ["inv", "investigator", "S1"],
    ["coord", "coordinator", "S1"],
    ["mon", "monitor"],
    ["dm", "data_manager"],
  ]);
  Object.assign(p, staff.principals);
  Object.assign(ids, staff.userIds);
  await delegateTasks(t.ctx, S, "qwf.test", p, [["inv", "S1", "coord"]]);
  await importForm(t.ctx, S, FORM, { actorId: null });
  await enrollParticipant(t.ctx, p.inv, { study: S, site: "S1" });
  await enrollParticipant(t.ctx, p.inv, { study: S, site: "S1" });
  await giveCompleteConsent(t.ctx, S, "S1-001");
  await giveCompleteConsent(t.ctx, S, "S1-002");
  recordId = (
    await saveRecord(t.ctx, p.coord, S, { subject: "S1-001", form: "VITALS", visit: "V1", data: { sbp: 120 } })
  ).id;
  const created = await createApiToken(t.ctx, { study: S, name: "EDC bridge" }, null);
  token = (await tokenPrincipal(t.ctx, created.token))!;
});
afterAll(async () => {
  await t?.close();
});

describe(`query workflow (${engineUnderTest()})`, () => {
  let q1: string;
  it("writes a history row with who and when for raise, answer, close, re-open; notifies who must act", async () => {
    q1 = (await openQuery(t.ctx, p.mon, S, recordId, { field: "sbp", text: "Please confirm the value" })).id;
    await answerQuery(t.ctx, p.coord, S, q1, "Confirmed against source");
    await closeQuery(t.ctx, p.mon, S, q1);
    await reopenQuery(t.ctx, p.mon, S, q1, { reason: "Source shows 112" });
    const ev = await eventsOf(q1);
    expect(ev.map((e) => [e.action, e.actorUserId, e.text])).toEqual([
      ["opened", ids.mon, "Please confirm the value"],
      ["answered", ids.coord, "Confirmed against source"],
      ["closed", ids.mon, null],
      ["reopened", ids.mon, "Source shows 112"],
    ]);
    const [q] = await t.ctx.db.select().from(queries).where(eq(queries.id, q1));
    expect(q).toMatchObject({ status: "open", answer: null, closedAt: null });
    const m = await mail();
    const opened = m.filter((x) => x.kind === "query_opened").map((x) => x.toAddress);
    expect(opened.sort()).toEqual(["coord@qwf.test", "inv@qwf.test"]);
    expect(m.filter((x) => x.kind === "query_answered").map((x) => x.toAddress)).toEqual(["mon@qwf.test"]);
    expect(
      m
        .filter((x) => x.kind === "query_reopened")
        .map((x) => x.toAddress)
        .sort(),
    ).toEqual(["coord@qwf.test", "inv@qwf.test"]);
    for (const x of m) {
      expect(x.subject).toContain("S1-001");
      expect(x.body).toContain("Systolic BP (sbp)");
      expect(x.body).not.toContain("Please confirm");
      expect(x.body).not.toContain("person");
    }
    expect(await audit()).toEqual([]);
  });

  it("re-open rules: reason required, only from answered or closed, only by monitors and data managers", async () => {
    await expect(reopenQuery(t.ctx, p.mon, S, q1, { reason: "again" })).rejects.toMatchObject({ code: "conflict" });
    await answerQuery(t.ctx, p.coord, S, q1, "Corrected to 112");
    await expect(reopenQuery(t.ctx, p.mon, S, q1, { reason: "  " })).rejects.toMatchObject({
      code: "invalid",
      field: "reason",
    });
    await expect(reopenQuery(t.ctx, p.coord, S, q1, { reason: "no" })).rejects.toMatchObject({ code: "forbidden" });
    await reopenQuery(t.ctx, p.dm, S, q1, { reason: "Still unclear" });
    await expect(closeQuery(t.ctx, p.mon, S, q1)).rejects.toMatchObject({ code: "conflict" });
    const ev = await eventsOf(q1);
    expect(ev.slice(-2).map((e) => [e.action, e.actorUserId])).toEqual([
      ["answered", ids.coord],
      ["reopened", ids.dm],
    ]);
    expect(await audit()).toEqual([]);
  });

  it("records the API token on automatic queries, answers and closes made with it", async () => {
    record2 = (
      await saveRecord(t.ctx, token, S, {
        subject: "S1-002",
        form: "VITALS",
        visit: "V1",
        data: { sbp: 190 },
        confirmed: ["sbp"],
      } as never)
    ).id;
    const [auto] = await t.ctx.db.select().from(queries).where(eq(queries.recordId, record2));
    expect(auto.text).toContain("confirmed at entry");
    await answerQuery(t.ctx, token, S, auto.id, "Repeated: 188");
    await closeQuery(t.ctx, token, S, auto.id);
    const ev = await eventsOf(auto.id);
    expect(ev.map((e) => [e.action, e.actorUserId, e.actorTokenId, e.actorTokenName])).toEqual([
      ["opened", null, token.token!.id, "EDC bridge"],
      ["answered", null, token.token!.id, "EDC bridge"],
      ["closed", null, token.token!.id, "EDC bridge"],
    ]);
    expect(await audit()).toEqual([]);
  });

  it("lists with filters, labels and routing by role; 'waiting for me' follows the status", async () => {
    const q3 = (await openQuery(t.ctx, p.dm, S, record2, { field: "dbp", text: "Missing?" })).id;
    await answerQuery(t.ctx, p.coord, S, q3, "Not done");
    const all = await queryList(t.ctx, p.mon, S, {});
    expect(all.rows).toHaveLength(3);
    const r1 = all.rows.find((r) => r.id === q1)!;
    expect(r1).toMatchObject({
      subject: "S1-001",
      site: "S1",
      visit: "V1",
      form: "VITALS",
      fieldText: "Systolic BP (sbp)",
      status: "open",
      raisedBy: "mon person",
      waitingFor: "site",
      waitingForMe: false,
    });
    expect(r1.history.map((h) => h.action)).toEqual([
      "opened",
      "answered",
      "closed",
      "reopened",
      "answered",
      "reopened",
    ]);
    const r3 = all.rows.find((r) => r.id === q3)!;
    expect(r3).toMatchObject({ status: "answered", waitingFor: "data_manager", answeredBy: "coord person" });
    expect((await queryList(t.ctx, p.dm, S, { mine: true })).rows.map((r) => r.id)).toEqual([q3]);
    expect((await queryList(t.ctx, p.coord, S, { mine: true })).rows.map((r) => r.id)).toEqual([q1]);
    expect((await queryList(t.ctx, p.mon, S, { mine: true })).rows).toEqual([]);
    expect((await queryList(t.ctx, p.mon, S, { status: "closed" })).rows).toHaveLength(1);
    expect((await queryList(t.ctx, p.mon, S, { field: "dbp" })).rows.map((r) => r.id)).toEqual([q3]);
    expect((await queryList(t.ctx, p.mon, S, { raiser: ids.dm })).rows.map((r) => r.id)).toEqual([q3]);
    expect((await queryList(t.ctx, p.mon, S, { site: "S9" })).rows).toEqual([]);
    expect(() => parseQueryFilters(new URLSearchParams("status=pending"))).toThrow(/status/);
    const csv = await queryListCsv(t.ctx, p.mon, S, { status: "answered" }, { ip: null });
    expect(csv.csv.split("\r\n")[0]).toContain("field_label");
    expect(csv.csv).toContain("Diastolic BP");
    // The CSV route answers a refused filter with the error's own status (422 here, 403 forbidden), never 400.
    const { loader } = await import("../../app/routes/studies/studies.$code.queries[.csv].ts");
    const { login } = await import("../../app/accounts/auth.server.ts");
    const { sessionCookie } = await import("../../app/platform/session.server.ts");
    const signedIn = await login(t.ctx, "mon@qwf.test", PW, { ip: null, userAgent: null });
    const res = await loader({
      request: new Request(`http://portal.test/studies/${S}/queries.csv?status=pending`, {
        headers: { cookie: await sessionCookie(t.ctx).serialize(signedIn.token) },
      }),
      context: { ctx: t.ctx },
      params: { code: S },
    } as never);
    expect(res.status).toBe(422);
    expect(((await res.json()) as { error: string }).error).toMatch(/^status: choose/);
  });

  it("names history rows changed, deleted or inserted behind the log", async () => {
    expect(await audit()).toEqual([]);
    const [first] = await eventsOf(q1);
    await replica((tx) => tx.execute(sql`UPDATE query_events SET text = 'edited' WHERE id = ${first.id}`));
    expect((await audit()).map((f) => [f.code, f.field])).toEqual([["DATA_ROW_MISMATCH", "text"]]);
    await replica((tx) =>
      tx.execute(sql`UPDATE query_events SET text = ${first.text}, actor_user_id = ${ids.dm} WHERE id = ${first.id}`),
    );
    expect((await audit()).map((f) => [f.code, f.field])).toEqual([["DATA_ROW_MISMATCH", "actor"]]);
    await replica((tx) => tx.execute(sql`DELETE FROM query_events WHERE id = ${first.id}`));
    expect((await audit()).map((f) => f.code)).toEqual(["DATA_ROW_MISSING"]);
    await replica((tx) => tx.insert(queryEvents).values({ ...first, actorUserId: ids.mon }));
    expect(await audit()).toEqual([]);
    const dup = crypto.randomUUID();
    await replica((tx) => tx.insert(queryEvents).values({ ...first, id: dup }));
    expect((await audit()).map((f) => f.code)).toEqual(["DATA_ROW_UNLOGGED"]);
    await replica((tx) => tx.execute(sql`DELETE FROM query_events WHERE id = ${dup}`));
    expect(await audit()).toEqual([]);
  });

  it("migration 0022 back-fills the history of queries raised before it, with their actors", async () => {
    const file = readFileSync(path.join(ROOT, "db", "migrations", "0022_study_operations.sql"), "utf8");
    const backfill = file.slice(file.indexOf("INSERT INTO query_events")).split("--> statement-breakpoint")[0];
    const study = await getStudyOrThrow(t.ctx, S);
    // A query written as before issue 18: entries and the row, no history rows.
    const old = crypto.randomUUID();
    await t.ctx.db.transaction(async (tx) => {
      await appendEntry(tx, t.ctx.crypto, study, "query.opened", (salt) => ({
        query: old,
        record: recordId,
        field: "sbp",
        textHash: saltedTextHash(t.ctx.crypto, salt, "Old query"),
        actor: ids.mon,
      }));
      await tx.insert(queries).values({
        id: old,
        studyId: study.id,
        recordId,
        field: "sbp",
        text: "Old query",
        answer: "Old answer",
        status: "answered",
        openedBy: ids.mon,
      });
    });
    await t.ctx.db.transaction(async (tx) => {
      await appendEntry(tx, t.ctx.crypto, study, "query.answered", (salt) => ({
        query: old,
        textHash: saltedTextHash(t.ctx.crypto, salt, "Old answer"),
        actor: ids.coord,
      }));
    });
    // The migration's statement, limited to this query (the others have their rows already).
    await t.ctx.db.execute(sql.raw(backfill.replace(/ORDER BY/, `AND q.id = '${old}' ORDER BY`)));
    const ev = await eventsOf(old);
    expect(ev.map((e) => [e.action, e.actorUserId, e.text])).toEqual([
      ["opened", ids.mon, "Old query"],
      ["answered", ids.coord, "Old answer"],
    ]);
    const row = (await queryList(t.ctx, p.mon, S, {})).rows.find((r) => r.id === old)!;
    expect(row).toMatchObject({ raisedBy: "mon person", answeredBy: "coord person", waitingFor: "monitor" });
    expect(await audit()).toEqual([]);
  });
});
