/**
 * The integrity audit on form versions and signatures, on PGlite and PostgreSQL (triggers disabled as superuser):
 * a stored form definition edited behind the log (a label, a soft limit) is named by form and version, approved or
 * draft; a `signatures.repeats` that does not point to the earliest signature of its record, version, signer and
 * meaning is named; a record version whose values cannot be read is named without printing them. The forms export
 * holds approved versions only and refuses a version whose text no longer matches its hash.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sql } from "drizzle-orm";
import { openTestDatabase, engineUnderTest, type TestDb } from "../helpers/db.ts";
import { giveCompleteConsent } from "../helpers/consent.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { createUser } from "../../app/accounts/users.server.ts";
import { principalForUser } from "../../app/accounts/auth.server.ts";
import { importForm } from "../../app/records/forms.server.ts";
import { enrollParticipant } from "../../app/participants/participants.server.ts";
import { saveRecord } from "../../app/records/records.server.ts";
import { signRecord } from "../../app/clinical-monitoring/clinical-monitoring.server.ts";
import { runIntegrityAudit, type AuditReport } from "../../app/integrity-audit/integrity-audit.server.ts";
import { exportForms } from "../../app/form-exchange/form-files.server.ts";
import { ServiceError } from "../../app/platform/errors.server.ts";
import type { Principal } from "../../app/platform/permissions.server.ts";

const PW = "amber otter winter forty-two";
const STUDY = "IAF-1";
const NOTE = "Jane Q. Doe felt dizzy after the walk";
const meta = { ip: "127.0.0.1", userAgent: "test" };
const VS = (version: number) => ({
  code: "VS",
  title: "Vital signs",
  version,
  visits: ["V1"],
  fields: [
    { name: "sbp", label: "Systolic BP", type: "number", integer: true, min: 50, max: 250, softMax: 160 },
    { name: "notes", label: "Notes", type: "text", maxLength: 500 },
  ],
});

let t: TestDb;
let inv: Principal;
let recordId = "";

async function tamper(statements: string[]) {
  await t.ctx.db.transaction(async (tx) => {
    await tx.execute(sql.raw("SET LOCAL session_replication_role = replica"));
    for (const s of statements) await tx.execute(sql.raw(s));
  });
}
const one = async (q: string) => (await t.database.execute(q))[0] as Record<string, unknown>;
const tampers = (r: AuditReport) => r.findings.filter((f) => f.severity === "tamper");
const q = (s: string) => `'${s.replace(/'/g, "''")}'`;

beforeAll(async () => {
  t = await openTestDatabase();
  await createStudy(t.ctx, { code: STUDY, title: "Audited forms", sites: [{ code: "S1", name: "1" }] }, null);
  const u = await createUser(
    t.ctx,
    {
      email: "inv@iaf.test",
      fullName: "Ivy Investigator",
      password: PW,
      role: "investigator",
      study: STUDY,
      site: "S1",
    },
    null,
  );
  inv = (await principalForUser(t.ctx, u.id))!;
  await importForm(t.ctx, STUDY, VS(1), { actorId: null });
  await importForm(t.ctx, STUDY, VS(2), { draft: true, actorId: null });
  const { subjectCode } = await enrollParticipant(t.ctx, inv, { study: STUDY, site: "S1" });
  await giveCompleteConsent(t.ctx, STUDY, subjectCode);
  const r = await saveRecord(t.ctx, inv, STUDY, {
    subject: subjectCode,
    form: "VS",
    visit: "V1",
    data: { sbp: 120, notes: NOTE },
  });
  recordId = r.id;
  await signRecord(t.ctx, inv, STUDY, recordId, { meaning: "approved", password: PW }, meta);
  await signRecord(t.ctx, inv, STUDY, recordId, { meaning: "reviewed", password: PW }, meta);
}, 60_000);
afterAll(async () => {
  await t?.close();
});

describe(`the audit of form versions and signatures (${engineUnderTest()})`, () => {
  it("is clean when nothing was touched", async () => {
    expect(tampers(await runIntegrityAudit(t.ctx, { study: STUDY }))).toEqual([]);
  });

  for (const [version, what, edit] of [
    [1, "a label", (s: string) => s.replace('"Systolic BP"', '"Diastolic BP"')],
    [1, "a soft limit", (s: string) => s.replace('"softMax":160', '"softMax":260')],
    [2, "a draft's label", (s: string) => s.replace('"Systolic BP"', '"Diastolic BP"')],
  ] as const) {
    it(`names form VS version ${version} when ${what} of its stored definition is changed`, async () => {
      const row = await one(`SELECT id, definition_text FROM forms WHERE code = 'VS' AND version = ${version}`);
      const text = String(row.definition_text);
      const changed = edit(text);
      expect(changed).not.toBe(text);
      await tamper([`UPDATE forms SET definition_text = ${q(changed)} WHERE id = '${row.id}'`]);
      try {
        const found = tampers(await runIntegrityAudit(t.ctx, { study: STUDY }));
        const forms = found.filter((f) => f.table === "forms");
        expect(forms).toEqual([expect.objectContaining({ code: "DATA_ROW_MISMATCH", id: String(row.id) })]);
        expect(forms[0].message).toContain(`form VS version ${version}`);
      } finally {
        await tamper([`UPDATE forms SET definition_text = ${q(text)} WHERE id = '${row.id}'`]);
      }
    });
  }

  it("names an approved form version whose code, hash or approval entry no longer matches form.approved", async () => {
    const row = await one(`SELECT id, definition_sha256, approval_entry_id FROM forms WHERE version = 1`);
    await tamper([`UPDATE forms SET version = 3 WHERE id = '${row.id}'`]);
    try {
      const found = tampers(await runIntegrityAudit(t.ctx, { study: STUDY })).filter((f) => f.table === "forms");
      expect(found).toEqual([expect.objectContaining({ code: "DATA_ROW_MISMATCH", field: "version" })]);
      expect(found[0].message).toContain("form VS version 3");
    } finally {
      await tamper([`UPDATE forms SET version = 1 WHERE id = '${row.id}'`]);
    }
    await tamper([`UPDATE forms SET approval_entry_id = NULL WHERE id = '${row.id}'`]);
    try {
      const found = tampers(await runIntegrityAudit(t.ctx, { study: STUDY })).filter((f) => f.table === "forms");
      expect(found.map((f) => f.code).sort()).toEqual(["DATA_ROW_MISSING", "DATA_ROW_UNLOGGED"]);
      expect(found.find((f) => f.code === "DATA_ROW_UNLOGGED")!.message).toContain("form VS version 1");
    } finally {
      await tamper([`UPDATE forms SET approval_entry_id = '${row.approval_entry_id}' WHERE id = '${row.id}'`]);
    }
    expect(tampers(await runIntegrityAudit(t.ctx, { study: STUDY }))).toEqual([]);
  });

  it("names a signature whose `repeats` does not point to an earlier signature of the same kind", async () => {
    const sigs = (await t.database.execute(
      `SELECT id, meaning FROM signatures WHERE record_id = '${recordId}' ORDER BY signed_at`,
    )) as { id: string; meaning: string }[];
    const [approved, reviewed] = sigs;
    for (const target of [approved.id, reviewed.id]) {
      await tamper([`UPDATE signatures SET repeats = '${target}' WHERE id = '${reviewed.id}'`]);
      try {
        const found = tampers(await runIntegrityAudit(t.ctx, { study: STUDY }));
        expect(found).toEqual([
          expect.objectContaining({
            code: "DATA_ROW_MISMATCH",
            table: "signatures",
            field: "repeats",
            id: reviewed.id,
          }),
        ]);
        expect(found[0].message).toContain(`signature ${reviewed.id}`);
      } finally {
        await tamper([`UPDATE signatures SET repeats = NULL WHERE id = '${reviewed.id}'`]);
      }
    }
  });

  it("names a record version whose values cannot be read without printing them", async () => {
    const rv = await one(`SELECT id, data_text FROM record_versions WHERE record_id = '${recordId}'`);
    const broken = String(rv.data_text).slice(0, -1);
    expect(broken).toContain(NOTE);
    await tamper([`UPDATE record_versions SET data_text = ${q(broken)} WHERE id = '${rv.id}'`]);
    try {
      const found = tampers(await runIntegrityAudit(t.ctx, { study: STUDY }));
      expect(found).toEqual([
        expect.objectContaining({ code: "DATA_ROW_MISMATCH", table: "record_versions", id: String(rv.id) }),
      ]);
      expect(found[0].message).toContain(`record ${recordId}`);
      expect(found[0].message).not.toContain("Jane");
    } finally {
      await tamper([`UPDATE record_versions SET data_text = ${q(String(rv.data_text))} WHERE id = '${rv.id}'`]);
    }
  });

  it("names a v1 record version given missing-data codes without printing their reasons", async () => {
    const rv = await one(`SELECT id, entry_id FROM record_versions WHERE record_id = '${recordId}'`);
    const e = await one(`SELECT payload_text FROM ledger_entries WHERE id = '${rv.entry_id}'`);
    const v1 = { ...JSON.parse(String(e.payload_text)), v: 1 };
    const missing = JSON.stringify({ sbp: { code: "UNK", reason: "Jane's cuff was lost" } });
    await tamper([`UPDATE record_versions SET missing_text = ${q(missing)} WHERE id = '${rv.id}'`]);
    try {
      const { rowFieldsAsSealed } = await import("../../app/records/seal-match.server.ts");
      const fields = rowFieldsAsSealed(t.ctx.crypto, v1, {
        recordId,
        version: 1,
        formVersion: 1,
        dataText: "{}",
        missingText: missing,
        reason: null,
        payloadText: "",
        payloadHash: "",
      });
      expect(JSON.stringify(fields)).not.toContain("Jane");
      const found = tampers(await runIntegrityAudit(t.ctx, { study: STUDY }));
      expect(found).toEqual([
        expect.objectContaining({ code: "DATA_ROW_MISMATCH", table: "record_versions", field: "missing" }),
      ]);
      expect(found[0].message).not.toContain("Jane");
    } finally {
      await tamper([`UPDATE record_versions SET missing_text = NULL WHERE id = '${rv.id}'`]);
    }
  });
});

describe(`the forms export (${engineUnderTest()})`, () => {
  it("holds approved versions only, and refuses a version whose text no longer matches its hash", async () => {
    const json = JSON.parse((await exportForms(t.ctx, STUDY, "json")).text) as { code: string; version: number }[];
    expect(json.map((f) => [f.code, f.version])).toEqual([["VS", 1]]);
    const row = await one(`SELECT id, definition_text FROM forms WHERE code = 'VS' AND version = 1`);
    const text = String(row.definition_text);
    await tamper([
      `UPDATE forms SET definition_text = ${q(text.replace("Systolic", "Diastolic"))} WHERE id = '${row.id}'`,
    ]);
    try {
      const err = await exportForms(t.ctx, STUDY, "redcap").then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(ServiceError);
      expect((err as ServiceError).message).toMatch(/form VS version 1.*does not match/);
    } finally {
      await tamper([`UPDATE forms SET definition_text = ${q(text)} WHERE id = '${row.id}'`]);
    }
  });
});
