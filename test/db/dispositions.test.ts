/**
 * Participant disposition (issue 18, ADR 0033) on PGlite and PostgreSQL: allowed and refused transitions, required
 * reasons, dates not in the future on the site's clock, a start at screening at enrolment, API token attribution,
 * sealed payloads holding the reason only as its salted hash, and tamper detection for participant_dispositions
 * rows (changed, deleted, inserted) and for participants.disposition.
 */
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApiToken } from "../../app/accounts/tokens.server.ts";
import { createStaff } from "../helpers/study-staff.ts";
import { runIntegrityAudit, type AuditReport } from "../../app/integrity-audit/integrity-audit.server.ts";
import { dispositionHistory, setDisposition } from "../../app/participants/disposition.server.ts";
import { enrollParticipant } from "../../app/participants/participants.server.ts";
import type { Principal } from "../../app/platform/permissions.server.ts";
import { todayIn } from "../../app/records/records.server.ts";
import { action as participantsAction } from "../../app/routes/api/api.v1.studies.$code.participants.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { engineUnderTest, openTestDatabase, type TestDb } from "../helpers/db.ts";

let t: TestDb;
const p: Record<string, Principal> = {};
let token: string;
let tokenId: string;
let dispositionAction: (args: never) => Promise<Response>;
const rows = async (q: string) => (await t.database.execute(q)) as Record<string, unknown>[];
const today = () => todayIn("UTC");

async function tamper(statements: string[]) {
  await t.ctx.db.transaction(async (tx) => {
    await tx.execute(sql.raw("SET LOCAL session_replication_role = replica"));
    for (const s of statements) await tx.execute(sql.raw(s));
  });
}
const tamperFindings = (r: AuditReport) => r.findings.filter((f) => f.severity === "tamper");

async function call(fn: (args: never) => Promise<Response>, url: string, params: object, body: unknown) {
  const res = await fn({
    request: new Request(`http://portal.test${url}`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    }),
    context: { ctx: t.ctx },
    params,
  } as never);
  return { status: res.status, body: (await res.json()) as Record<string, any> };
}

beforeAll(async () => {
  t = await openTestDatabase();
  dispositionAction = (await import("../../app/routes/api/api.v1.studies.$code.participants_.$subject.disposition.ts"))
    .action as never;
  t.ctx.env = { ...t.ctx.env, apiRatePerSecond: 100_000 };
  await createStudy(t.ctx, { code: "DSP-1", title: "Dispositions", sites: [{ code: "S1", name: "1" }] }, null);
  Object.assign(
    p,
    (
      await createStaff(t.ctx, "DSP-1", "dsp.test", [
        ["inv", "investigator", "S1"],
        ["mon", "monitor"],
      ])
    ).principals,
  );
  const created = await createApiToken(t.ctx, { study: "DSP-1", name: "IWRS bridge" }, null);
  token = created.token;
  tokenId = created.id;
  await enrollParticipant(t.ctx, p.inv, { study: "DSP-1", site: "S1" }); // S1-001 enrolled
  await enrollParticipant(t.ctx, p.inv, { study: "DSP-1", site: "S1", disposition: "screening" }); // S1-002
  await enrollParticipant(t.ctx, p.inv, { study: "DSP-1", site: "S1", disposition: "screening" }); // S1-003
});
afterAll(async () => {
  await t?.close();
});

describe(`participant disposition on ${engineUnderTest()}`, () => {
  it("starts at enrolled by default, or at screening (sealed in the enrolment's transaction)", async () => {
    const ps = await rows(`SELECT subject_code, disposition FROM participants ORDER BY subject_code`);
    expect(ps.map((r) => [r.subject_code, r.disposition])).toEqual([
      ["S1-001", "enrolled"],
      ["S1-002", "screening"],
      ["S1-003", "screening"],
    ]);
    const kinds = await rows(`SELECT kind FROM ledger_entries WHERE kind = 'participant.disposition_set'`);
    expect(kinds).toHaveLength(2);
    await expect(
      enrollParticipant(t.ctx, p.inv, { study: "DSP-1", site: "S1", disposition: "randomized" }),
    ).rejects.toMatchObject({ field: "disposition" });
  });

  it("allows the usual path and refuses changes out of a final disposition, naming what is allowed", async () => {
    await setDisposition(t.ctx, p.inv, "DSP-1", "S1-002", { status: "enrolled", date: today() });
    await expect(
      setDisposition(t.ctx, p.inv, "DSP-1", "S1-002", { status: "screening", date: today() }),
    ).rejects.toMatchObject({ code: "conflict", field: "status", message: expect.stringContaining("randomized") });
    await setDisposition(t.ctx, p.inv, "DSP-1", "S1-002", { status: "randomized", date: today() });
    await setDisposition(t.ctx, p.inv, "DSP-1", "S1-002", { status: "completed", date: today() });
    await expect(
      setDisposition(t.ctx, p.inv, "DSP-1", "S1-002", { status: "discontinued", date: today(), reason: "x" }),
    ).rejects.toMatchObject({ code: "conflict", message: expect.stringContaining("final") });
    const h = await dispositionHistory(
      t.ctx.db,
      (await rows(`SELECT id FROM participants WHERE subject_code = 'S1-002'`))[0].id as string,
    );
    expect(h.map((x) => [x.previous, x.status])).toEqual([
      [null, "screening"],
      ["screening", "enrolled"],
      ["enrolled", "randomized"],
      ["randomized", "completed"],
    ]);
    expect(h.every((x) => x.by === "inv person")).toBe(true);
  });

  it("requires a reason for a screen failure and a discontinuation, a past date, a permitted role", async () => {
    await expect(
      setDisposition(t.ctx, p.inv, "DSP-1", "S1-003", { status: "screen_failed", date: today(), reason: "  " }),
    ).rejects.toMatchObject({ field: "reason", message: expect.stringContaining("screen failure") });
    await expect(
      setDisposition(t.ctx, p.inv, "DSP-1", "S1-003", { status: "enrolled", date: "2999-01-01" }),
    ).rejects.toMatchObject({ field: "date", message: expect.stringContaining("future") });
    await expect(
      setDisposition(t.ctx, p.inv, "DSP-1", "S1-003", { status: "enrolled", date: "2026-02-30" }),
    ).rejects.toMatchObject({ field: "date" });
    await expect(
      setDisposition(t.ctx, p.inv, "DSP-1", "S1-003", { status: "lost", date: today() }),
    ).rejects.toMatchObject({ field: "status" });
    await expect(
      setDisposition(t.ctx, p.mon, "DSP-1", "S1-003", { status: "enrolled", date: today() }),
    ).rejects.toMatchObject({ code: "forbidden" });
    const r = await setDisposition(t.ctx, p.inv, "DSP-1", "S1-003", {
      status: "screen_failed",
      date: today(),
      reason: "eGFR below 30 at screening",
    });
    expect(r).toMatchObject({ status: "screen_failed", previous: "screening" });
  });

  it("names the API token in the row, the payload and the audit trail; the payload holds no reason text", async () => {
    const bad = await call(
      dispositionAction,
      "/api/v1/studies/DSP-1/participants/S1-001/disposition",
      { code: "DSP-1", subject: "S1-001" },
      { status: "discontinued", date: today() },
    );
    expect(bad.status).toBe(422);
    expect(bad.body.error?.field ?? bad.body.field).toBe("reason");
    const ok = await call(
      dispositionAction,
      "/api/v1/studies/DSP-1/participants/S1-001/disposition",
      { code: "DSP-1", subject: "S1-001" },
      { status: "discontinued", date: today(), reason: "Withdrew after moving to another city" },
    );
    expect(ok.status, JSON.stringify(ok.body)).toBe(201);
    const [row] = await rows(
      `SELECT d.actor_user_id, d.actor_token_id, d.actor_token_name FROM participant_dispositions d
       JOIN participants p ON p.id = d.participant_id WHERE p.subject_code = 'S1-001'`,
    );
    expect(row).toEqual({ actor_user_id: null, actor_token_id: tokenId, actor_token_name: "IWRS bridge" });
    const payloads = (
      await rows(`SELECT payload_text FROM ledger_entries WHERE kind = 'participant.disposition_set'`)
    ).map((r) => String(r.payload_text));
    const last = JSON.parse(payloads.find((x) => x.includes('"discontinued"'))!);
    expect(last.token).toEqual({ id: tokenId, name: "IWRS bridge" });
    expect(last.actor).toBeNull();
    expect(last.reasonHash).toMatch(/^[0-9a-f]{64}$/);
    for (const text of payloads) {
      expect(text).not.toContain("city");
      expect(text).not.toContain("eGFR");
    }
    const [ev] = await rows(
      `SELECT actor_label FROM audit_events WHERE action = 'participant.disposition' ORDER BY at DESC LIMIT 1`,
    );
    expect(ev.actor_label).toBe(`API token IWRS bridge (${tokenId.slice(0, 8)})`);
    // A token enrolling at screening is named too.
    const e = await call(
      participantsAction,
      "/api/v1/studies/DSP-1/participants",
      { code: "DSP-1" },
      {
        site: "S1",
        disposition: "screening",
      },
    );
    expect(e.status, JSON.stringify(e.body)).toBe(201);
    const [d] = await rows(
      `SELECT d.status, d.actor_token_name FROM participant_dispositions d
       JOIN participants p ON p.id = d.participant_id WHERE p.subject_code = '${e.body.subject}'`,
    );
    expect(d).toEqual({ status: "screening", actor_token_name: "IWRS bridge" });
  });

  it("the integrity audit names a disposition row changed, deleted or inserted and the column", async () => {
    const audit = () => runIntegrityAudit(t.ctx, { study: "DSP-1" });
    expect(tamperFindings(await audit())).toEqual([]);
    const [r] = await rows(
      `SELECT d.id, d.participant_id FROM participant_dispositions d
       JOIN participants p ON p.id = d.participant_id WHERE p.subject_code = 'S1-003' AND d.status = 'screen_failed'`,
    );
    // Changed: the reason (only its hash is sealed) and the status.
    await tamper([`UPDATE participant_dispositions SET reason = 'changed later' WHERE id = '${r.id}'`]);
    let f = tamperFindings(await audit());
    expect(f.map((x) => [x.table, x.id, x.field])).toContainEqual(["participant_dispositions", r.id, "reason"]);
    expect(JSON.stringify(f)).not.toContain("eGFR");
    await tamper([`UPDATE participant_dispositions SET reason = 'eGFR below 30 at screening' WHERE id = '${r.id}'`]);
    expect(tamperFindings(await audit())).toEqual([]);
    // The participant's column changed behind the log.
    await tamper([`UPDATE participants SET disposition = 'enrolled' WHERE id = '${r.participant_id}'`]);
    f = tamperFindings(await audit());
    expect(f.map((x) => [x.table, x.id, x.field])).toEqual([["participants", r.participant_id, "disposition"]]);
    await tamper([`UPDATE participants SET disposition = 'screen_failed' WHERE id = '${r.participant_id}'`]);
    // Deleted: the entry has no row.
    const [saved] = await rows(`SELECT * FROM participant_dispositions WHERE id = '${r.id}'`);
    await tamper([`DELETE FROM participant_dispositions WHERE id = '${r.id}'`]);
    f = tamperFindings(await audit());
    expect(f.length).toBeGreaterThan(0);
    expect(JSON.stringify(f)).toContain("participant_dispositions");
    await tamper([
      `INSERT INTO participant_dispositions (id, study_id, participant_id, status, previous, effective_date, reason,
        actor_user_id, created_at, entry_id) VALUES ('${saved.id}', '${saved.study_id}', '${saved.participant_id}',
        'screen_failed', 'screening', '${today()}', 'eGFR below 30 at screening', '${saved.actor_user_id}',
        now(), '${saved.entry_id}')`,
    ]);
    expect(tamperFindings(await audit())).toEqual([]);
    // Moved onto another participant: its entry names S1-003.
    const [s1] = await rows(`SELECT id FROM participants WHERE subject_code = 'S1-001'`);
    await tamper([`UPDATE participant_dispositions SET participant_id = '${s1.id}' WHERE id = '${r.id}'`]);
    f = tamperFindings(await audit());
    expect(f.map((x) => [x.table, x.id, x.field])).toContainEqual(["participant_dispositions", r.id, "participant"]);
    await tamper([`UPDATE participant_dispositions SET participant_id = '${r.participant_id}' WHERE id = '${r.id}'`]);
    expect(tamperFindings(await audit())).toEqual([]);
    // Who made it: the API token's name, as sealed.
    const [byToken] = await rows(`SELECT id FROM participant_dispositions WHERE actor_token_name IS NOT NULL LIMIT 1`);
    await tamper([`UPDATE participant_dispositions SET actor_token_name = 'someone else' WHERE id = '${byToken.id}'`]);
    f = tamperFindings(await audit());
    expect(f.map((x) => [x.table, x.id, x.field])).toEqual([["participant_dispositions", byToken.id, "tokenName"]]);
    await tamper([`UPDATE participant_dispositions SET actor_token_name = 'IWRS bridge' WHERE id = '${byToken.id}'`]);
    expect(tamperFindings(await audit())).toEqual([]);
    // Inserted: a row with no entry behind it.
    const [s2] = await rows(`SELECT id, study_id FROM participants WHERE subject_code = 'S1-002'`);
    await tamper([
      `INSERT INTO participant_dispositions (study_id, participant_id, status, previous, effective_date, entry_id)
       VALUES ('${s2.study_id}', '${s2.id}', 'discontinued', 'completed', '${today()}',
       (SELECT id FROM ledger_entries WHERE kind = 'participant.enrolled' LIMIT 1))`,
    ]);
    f = tamperFindings(await audit());
    expect(f.map((x) => [x.code, x.table])).toContainEqual(["DATA_ROW_UNLOGGED", "participant_dispositions"]);
  });
});
