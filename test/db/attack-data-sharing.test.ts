/**
 * Attacks on issue 22's data sharing (helper H8), on PGlite and PostgreSQL. Each test asserts the secure behaviour,
 * so a failing test is an attack that succeeded: hostile request input reaching the database as a 500, a delivery's
 * package replaced behind the log unseen by the integrity audit, a delivery's member row moved between deliveries,
 * and a field reclassified as an identifier after approval still delivered.
 */
import { createHash } from "node:crypto";
import { sql } from "drizzle-orm";
import { strToU8, unzipSync, zipSync } from "fflate";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decideDataUseRequest } from "../../app/data-sharing/decisions.server.ts";
import { downloadDelivery, makeDelivery } from "../../app/data-sharing/deliveries.server.ts";
import { submitDataUseRequest } from "../../app/data-sharing/requests.server.ts";
import { sealAll } from "../../app/log/sealer.server.ts";
import { runIntegrityAudit } from "../../app/integrity-audit/integrity-audit.server.ts";
import { ServiceError } from "../../app/platform/errors.server.ts";
import { importForm } from "../../app/records/forms.server.ts";
import { recordHistory, subjectCasebook } from "../../app/records/records.server.ts";
import { casebookPdf } from "../../app/exports/certified-copy.server.ts";
import { queryList } from "../../app/queries/query-list.server.ts";
import { eraseParticipantData, listParticipants } from "../../app/participants/participants.server.ts";
import { engineUnderTest, openTestDatabase, type TestDb } from "../helpers/db.ts";
import { type DataUseStudy, dataUseStudy, requestBody, STUDY, VITALS } from "./data-use-setup.ts";

let t: TestDb;
let s: DataUseStudy & { studyId?: string };

beforeAll(async () => {
  t = await openTestDatabase();
  s = await dataUseStudy(t);
  s.studyId = String((await t.database.execute(`SELECT id FROM studies WHERE code = '${STUDY}'`))[0].id);
}, 240_000);
afterAll(async () => {
  await t?.close();
});

async function refusal(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => null,
    (e: unknown) => e,
  );
}
async function tamper(statements: string[]) {
  await t.ctx.db.transaction(async (tx) => {
    await tx.execute(sql.raw("SET LOCAL session_replication_role = replica"));
    for (const x of statements) await tx.execute(sql.raw(x));
  });
}
const tamperFindings = async () =>
  (await runIntegrityAudit(t.ctx, { study: STUDY })).findings.filter((f) => f.severity === "tamper");
async function approved(over: Record<string, unknown> = {}) {
  const r = await submitDataUseRequest(t.ctx, s.p.res, STUDY, requestBody(over));
  await decideDataUseRequest(t.ctx, s.p.dac, STUDY, r.id, { outcome: "approved", reason: "ok", expiresInDays: 30 });
  return r.id;
}
const text = (b: Uint8Array) => new TextDecoder().decode(b);

describe(`attacks on data sharing on ${engineUnderTest()}`, () => {
  it("a period in year 0000 is refused in words (ServiceError), not a database error", async () => {
    for (const over of [{ periodFrom: "0000-01-01" }, { periodFrom: "0000-01-01", periodTo: "0000-12-31" }]) {
      const err = await refusal(submitDataUseRequest(t.ctx, s.p.res, STUDY, requestBody(over)));
      expect(err, String(err)).toBeInstanceOf(ServiceError);
    }
  });

  it("a NUL character in the institution or justification is refused in words, not a database error", async () => {
    for (const over of [{ institution: "Institute\u0000of Examples" }, { justification: "Why\u0000 not" }]) {
      const err = await refusal(submitDataUseRequest(t.ctx, s.p.res, STUDY, requestBody(over)));
      expect(err, String(err)).toBeInstanceOf(ServiceError);
    }
  });

  it("a NUL character in the committee's reason is refused in words, not a database error", async () => {
    const r = await submitDataUseRequest(t.ctx, s.p.res, STUDY, requestBody());
    const err = await refusal(
      decideDataUseRequest(t.ctx, s.p.dac, STUDY, r.id, { outcome: "declined", reason: "no\u0000 way" }),
    );
    expect(err, String(err)).toBeInstanceOf(ServiceError);
  });

  it("the integrity audit names a delivery whose package (content) was replaced behind the log", async () => {
    const requestId = await approved();
    const d = await makeDelivery(t.ctx, s.p.dac, STUDY, requestId);
    expect(await tamperFindings()).toEqual([]);
    const pkg = await downloadDelivery(t.ctx, s.p.res, STUDY, requestId, d.id);
    const files = unzipSync(pkg.bytes);
    // A forged row in data.csv: (1) the zip's manifest.json left as it was; (2) its data.csv SHA-256 updated too.
    const csv = `${text(files["data.csv"]).trimEnd()}\r\nP-0000000000,VITALS,SCREENING,1,2026-01-01,999,99\r\n`;
    const m = JSON.parse(text(files["manifest.json"]));
    m.files["data.csv"].sha256 = createHash("sha256").update(csv).digest("hex");
    const forgeries = [
      { ...files, "data.csv": strToU8(csv) },
      { ...files, "data.csv": strToU8(csv), "manifest.json": strToU8(`${JSON.stringify(m, null, 2)}\n`) },
    ];
    const original = Buffer.from(pkg.bytes).toString("hex");
    for (const [i, forged] of forgeries.entries()) {
      const hex = Buffer.from(zipSync(forged)).toString("hex");
      await tamper([`UPDATE data_use_deliveries SET content = '\\x${hex}'::bytea WHERE id = '${d.id}'`]);
      const f = await tamperFindings();
      await tamper([`UPDATE data_use_deliveries SET content = '\\x${original}'::bytea WHERE id = '${d.id}'`]);
      expect(
        f.filter((x) => x.table === "data_use_deliveries" && x.id === d.id),
        `forgery ${i + 1}: ${JSON.stringify(f, null, 1)}`,
      ).not.toEqual([]);
    }
  });

  it("the integrity audit names a delivery's member row swapped for a participant who declined", async () => {
    const requestId = await approved();
    const a = await makeDelivery(t.ctx, s.p.dac, STUDY, requestId);
    await tamper([
      `UPDATE data_use_delivery_participants SET participant_id = '${s.pid.no1}' ` +
        `WHERE delivery_id = '${a.id}' AND participant_id = '${s.pid.yes1}'`,
    ]);
    const f = await tamperFindings();
    expect(
      f.filter((x) => JSON.stringify(x).includes(a.id)),
      JSON.stringify(f, null, 1),
    ).not.toEqual([]);
    await tamper([
      `UPDATE data_use_delivery_participants SET participant_id = '${s.pid.yes1}' ` +
        `WHERE delivery_id = '${a.id}' AND participant_id = '${s.pid.no1}'`,
    ]);
  });

  it("the researcher and the committee read no participant data through the services", async () => {
    const study = { id: String((await t.database.execute(`SELECT id FROM studies WHERE code = '${STUDY}'`))[0].id) };
    for (const who of [s.p.res, s.p.dac, s.p.both]) {
      expect(await subjectCasebook(t.ctx, who, study.id, s.subj.yes1)).toBeNull();
      expect(await refusal(recordHistory(t.ctx, who, STUDY, s.rid.yes1))).toBeInstanceOf(ServiceError);
      expect(await refusal(casebookPdf(t.ctx, who, STUDY, s.subj.yes1))).toBeInstanceOf(ServiceError);
      expect(await refusal(queryList(t.ctx, who, STUDY, {} as never))).toBeInstanceOf(ServiceError);
    }
  });

  it("listParticipants gives the researcher nothing (service-level check, not only the route's)", async () => {
    const study = { id: String((await t.database.execute(`SELECT id FROM studies WHERE code = '${STUDY}'`))[0].id) };
    const got = await listParticipants(t.ctx, s.p.res, study.id).then(
      (r) => r,
      (e: unknown) => e,
    );
    if (got instanceof ServiceError) return;
    expect(got).toEqual([]);
  });

  it("the integrity audit names a request whose fields and period were edited before its delivery", async () => {
    const requestId = await approved();
    await tamper([
      `UPDATE data_use_requests SET fields = '["VITALS.initials","VITALS.note","VITALS.sbp"]'::jsonb, ` +
        `period_from = '1990-01-01' WHERE id = '${requestId}'`,
    ]);
    const f = await tamperFindings();
    const mine = f.filter((x) => x.table === "data_use_requests" && x.id === requestId);
    expect(mine.map((x) => x.field).sort(), JSON.stringify(f, null, 1)).toEqual(
      expect.arrayContaining(["fields", "periodFrom"]),
    );
    await tamper([
      `UPDATE data_use_requests SET fields = '["VITALS.dbp","VITALS.sbp"]'::jsonb, period_from = '2020-01-01' ` +
        `WHERE id = '${requestId}'`,
    ]);
    expect(await tamperFindings()).toEqual([]);
  });

  it("the integrity audit names a sealed access event edited (moved, re-attributed, trimmed)", async () => {
    await subjectCasebook(t.ctx, s.p.inv, String(s.studyId), s.subj.yes1);
    const requestId = await approved();
    const d = await makeDelivery(t.ctx, s.p.dac, STUDY, requestId);
    await sealAll(t.ctx);
    expect(await tamperFindings()).toEqual([]);
    const [view] = await t.database.execute(
      `SELECT id FROM audit_events WHERE action = 'participant.view' AND participant_id = '${s.pid.yes1}' ` +
        `AND actor_user_id = '${s.ids.inv}' ORDER BY id DESC LIMIT 1`,
    );
    const [exp] = await t.database.execute(
      `SELECT id, detail FROM audit_events WHERE action = 'export.data_use' AND detail->>'delivery' = '${d.id}'`,
    );
    const trimmed = JSON.stringify({
      ...(exp.detail as Record<string, unknown>),
      participants: ((exp.detail as { participants: string[] }).participants ?? []).filter((x) => x !== s.pid.yes1),
    });
    for (const [stmt, undo] of [
      [
        `UPDATE audit_events SET participant_id = '${s.pid.yes2}' WHERE id = ${view.id}`,
        `UPDATE audit_events SET participant_id = '${s.pid.yes1}' WHERE id = ${view.id}`,
      ],
      [
        `UPDATE audit_events SET actor_user_id = '${s.ids.reg}' WHERE id = ${view.id}`,
        `UPDATE audit_events SET actor_user_id = '${s.ids.inv}' WHERE id = ${view.id}`,
      ],
      [
        `UPDATE audit_events SET detail = '${trimmed}'::jsonb WHERE id = ${exp.id}`,
        `UPDATE audit_events SET detail = '${JSON.stringify(exp.detail)}'::jsonb WHERE id = ${exp.id}`,
      ],
    ]) {
      await tamper([stmt]);
      const f = await tamperFindings();
      expect(f.length, `${stmt}: ${JSON.stringify(f)}`).toBeGreaterThan(0);
      await tamper([undo]);
    }
  });

  it("an erased participant (GDPR Art. 17) is left out of a secondary-use delivery", async () => {
    await eraseParticipantData(t.ctx, s.p.admin, STUDY, s.subj.yes3, "erasure request ER-1");
    const requestId = await approved();
    const d = await makeDelivery(t.ctx, s.p.dac, STUDY, requestId);
    const members = await t.database.execute(
      `SELECT participant_id FROM data_use_delivery_participants WHERE delivery_id = '${d.id}'`,
    );
    expect(members.map((m) => String(m.participant_id))).not.toContain(s.pid.yes3);
  });

  // Last: it changes the study's forms.
  it("a field reclassified as an identifier after approval is not delivered", async () => {
    const requestId = await approved({ fields: ["VITALS.sbp", "VITALS.dbp"] });
    await importForm(
      t.ctx,
      STUDY,
      {
        ...VITALS,
        version: 2,
        fields: VITALS.fields.map((f) => (f.name === "dbp" ? { ...f, class: "identifier" } : f)),
      },
      { actorId: null },
    );
    const made = await makeDelivery(t.ctx, s.p.dac, STUDY, requestId).then(
      (d) => d,
      (e: unknown) => e,
    );
    if (made instanceof ServiceError) return; // refused: secure
    const d = made as Awaited<ReturnType<typeof makeDelivery>>;
    const pkg = await downloadDelivery(t.ctx, s.p.res, STUDY, requestId, d.id);
    const header = text(unzipSync(pkg.bytes)["data.csv"]).split("\r\n")[0];
    expect(header).not.toContain("VITALS.dbp");
  });
});
