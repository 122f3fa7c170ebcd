/**
 * Importing existing data (issue 18, ADR 0037) on PGlite and PostgreSQL: CSV and ODM files become record.saved v4
 * versions naming the file's SHA-256 and row, with the source system's claims hashed; all or nothing per file; a
 * dry run writes nothing; the integrity audit is clean after an import and names a tampered source or job row; the
 * verifier accepts an imported version's proof bundle.
 */
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createStaff } from "../helpers/study-staff.ts";
import { openTestDatabase, engineUnderTest, type TestDb } from "../helpers/db.ts";
import { giveCompleteConsent } from "../helpers/consent.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { createUser } from "../../app/accounts/users.server.ts";
import { principalForUser } from "../../app/accounts/auth.server.ts";
import { importForm } from "../../app/records/forms.server.ts";
import { enrollParticipant } from "../../app/participants/participants.server.ts";
import {
  createImportJob,
  importJobOf,
  importJobsOf,
  importReportOf,
  runImportJob,
  startImportRunner,
} from "../../app/data-import/import-jobs.server.ts";
import { revokeRole } from "../../app/studies/staff.server.ts";
import { runIntegrityAudit } from "../../app/integrity-audit/integrity-audit.server.ts";
import { sealAll } from "../../app/log/sealer.server.ts";
import { toHex, utf8 } from "../../anchoring/log/bytes.ts";
import type { Principal } from "../../app/platform/permissions.server.ts";
import { findEntryByRef, proofBundle } from "../../app/log/proofs.server.ts";
import { deploymentTrustPolicy } from "../../app/anchor-worker/anchor-worker.server.ts";
import { verifyBundle } from "../../anchoring/verifier/verify-bundle.ts";

const S = "IMP-1";
let t: TestDb;
const p: Record<string, Principal> = {};
const enc = (s: string) => utf8(s);
const sha = (s: string) => toHex(t.ctx.crypto.sha256(enc(s)));
const q = async (text: string) => t.database.execute(text);
/** Change rows behind the log (append-only triggers off, as the integrity audit tests do). */
async function tamper(statements: string[]) {
  await t.ctx.db.transaction(async (tx) => {
    await tx.execute(sql.raw("SET LOCAL session_replication_role = replica"));
    for (const s of statements) await tx.execute(sql.raw(s));
  });
}
const count = async (table: string) => Number((await q(`SELECT count(*)::int AS n FROM ${table}`))[0].n);

beforeAll(async () => {
  t = await openTestDatabase();
  await createStudy(t.ctx, { code: S, title: "Import", sites: [{ code: "S1", name: "1" }] }, null);
  Object.assign(
    p,
    (
      await createStaff(t.ctx, S, "imp.test", [
        ["inv", "investigator", "S1"],
        ["dm", "data_manager"],
      ])
    ).principals,
  );
  await importForm(
    t.ctx,
    S,
    {
      code: "VITALS",
      title: "Vital signs",
      version: 1,
      visits: ["SCREENING", "WEEK1"],
      fields: [
        { name: "sbp", label: "Systolic", type: "number" },
        { name: "dbp", label: "Diastolic", type: "number" },
        { name: "note", label: "Note", type: "text" },
      ],
    },
    { actorId: null },
  );
  for (let i = 0; i < 3; i++) await enrollParticipant(t.ctx, p.inv, { study: S, site: "S1" });
  for (const s of ["S1-001", "S1-002"]) await giveCompleteConsent(t.ctx, S, s);
});
afterAll(async () => {
  await t?.close();
});

async function importFile(name: string, text: string, opts: { dryRun?: boolean; form?: string } = {}) {
  const job = await createImportJob(t.ctx, p.dm, S, {
    fileName: name,
    bytes: enc(text),
    formCode: opts.form ?? null,
    dryRun: !!opts.dryRun,
  });
  return runImportJob(t.ctx, job.id);
}

const ODM = `<?xml version="1.0" encoding="UTF-8"?>
<ODM xmlns="http://www.cdisc.org/ns/odm/v1.3" ODMVersion="1.3.2" FileType="Snapshot" FileOID="f1"
     CreationDateTime="2026-11-30T10:00:00">
  <ClinicalData StudyOID="Project.IMP" MetaDataVersionOID="Metadata.IMP_1">
    <SubjectData SubjectKey="S1-002">
      <StudyEventData StudyEventOID="Event.week1_arm_1">
        <FormData FormOID="Form.vitals">
          <AuditRecord>
            <UserRef UserOID="jsmith_redcap"/>
            <LocationRef LocationOID="SITE1"/>
            <DateTimeStamp>2025-03-04T09:15:00</DateTimeStamp>
            <ReasonForChange>Transcription error on paper CRF</ReasonForChange>
          </AuditRecord>
          <ItemGroupData ItemGroupOID="vitals.1">
            <ItemData ItemOID="sbp" Value="131"/>
            <ItemData ItemOID="dbp" Value="79"/>
          </ItemGroupData>
        </FormData>
      </StudyEventData>
    </SubjectData>
  </ClinicalData>
</ODM>
`;

describe(`importing existing data on ${engineUnderTest()}`, () => {
  it("a dry run lists every problem (row, column) and writes nothing; one bad row imports nothing", async () => {
    const before = await count("record_versions");
    const entries = await count("ledger_entries");
    const csv = "subject,visit,sbp,dbp,note\nS1-001,SCREENING,120,80,fine\nS1-099,SCREENING,121,81,\n";
    const dry = await importFile("vitals.csv", csv, { dryRun: true, form: "VITALS" });
    expect(dry.status, dry.error ?? "").toBe("problems");
    const problems = importReportOf(dry.problemsText).problems;
    expect(problems).toEqual([expect.objectContaining({ row: 3, column: "subject" })]);
    expect(problems[0].message).toMatch(/no subject S1-099/);
    const real = await importFile("vitals.csv", csv, { form: "VITALS" });
    expect(real.status).toBe("problems");
    expect(real.fileData).toBeNull();
    // Subject S1-003 has not consented: the consent gate refuses its row.
    const noConsent = await importFile("v.csv", "subject,visit,sbp\nS1-003,SCREENING,120\n", { form: "VITALS" });
    expect(importReportOf(noConsent.problemsText).problems[0]).toMatchObject({ row: 2, column: "subject" });
    expect(await count("record_versions")).toBe(before);
    expect(await count("ledger_entries")).toBe(entries);
    const okDry = await importFile("vitals.csv", "subject,visit,sbp\nS1-001,SCREENING,120\n", {
      dryRun: true,
      form: "VITALS",
    });
    expect(okDry.status).toBe("done");
    // The mapping preview is kept with the job (problems_text), for the page to show after the file is cleared.
    expect(importReportOf(okDry.problemsText).mapping).toContainEqual({ column: "sbp", form: "VITALS", field: "sbp" });
    expect(await count("record_versions")).toBe(before);
  });

  it("a CSV import seals each row as a record.saved v4 version naming the file's SHA-256 and row", async () => {
    const csv = "subject,visit,sbp,dbp,note\nS1-001,SCREENING,120,80,patient anxious\nS1-002,SCREENING,118,76,\n";
    const job = await importFile("vitals.csv", csv, { form: "VITALS" });
    expect(job).toMatchObject({ status: "done", records: 2, values: 5, fileData: null });
    const rows = await q(
      `SELECT v.source_text, v.reason, e.payload_text FROM record_versions v JOIN ledger_entries e ` +
        `ON e.id = v.entry_id WHERE v.source_text IS NOT NULL ORDER BY v.source_text`,
    );
    expect(rows).toHaveLength(2);
    const payloads = rows.map((r) => JSON.parse(String(r.payload_text)));
    expect(payloads.map((x) => [x.v, x.source.row, x.source.fileSha256, x.source.job])).toEqual([
      [4, 2, sha(csv), job.id],
      [4, 3, sha(csv), job.id],
    ]);
    // Free text only as its salted hash.
    expect(String(rows[0].payload_text)).not.toContain("patient anxious");
    const [done] = await q(`SELECT kind, payload_text FROM ledger_entries WHERE kind = 'import.completed'`);
    expect(JSON.parse(String(done.payload_text))).toMatchObject({ job: job.id, sha256: sha(csv), records: 2 });
    const [ev] = await q(`SELECT detail FROM audit_events WHERE action = 'data.import'`);
    expect(JSON.stringify(ev.detail)).toContain(sha(csv));
  });

  it("an ODM import keeps the source system's user, time and reason as hashed claims; a new version", async () => {
    const job = await importFile("redcap.xml", ODM);
    expect(job.status, job.problemsText ?? job.error ?? "").toBe("done");
    const [r] = await q(
      `SELECT v.source_text, v.reason, v.version, e.payload_text FROM record_versions v JOIN ledger_entries e ` +
        `ON e.id = v.entry_id WHERE v.source_text LIKE '%${job.id}%'`,
    );
    const payload = JSON.parse(String(r.payload_text));
    expect(payload.v).toBe(4);
    expect(payload.source.claims).toMatchObject({ at: "2025-03-04T09:15:00" });
    expect(payload.source.claims.userHash).toMatch(/^[0-9a-f]{64}$/);
    expect(String(r.payload_text)).not.toContain("jsmith_redcap");
    expect(String(r.payload_text)).not.toContain("Transcription error");
    expect(JSON.parse(String(r.source_text)).claims).toMatchObject({
      user: "jsmith_redcap",
      reason: "Transcription error on paper CRF",
    });
  });

  it("the integrity audit is clean after imports and names a tampered source_text and job row", async () => {
    await sealAll(t.ctx);
    const clean = await runIntegrityAudit(t.ctx, { study: S });
    expect(clean.findings.filter((f) => f.severity === "tamper")).toEqual([]);
    const [v] = await q(`SELECT id, record_id, source_text FROM record_versions WHERE source_text LIKE '%jsmith%'`);
    await tamper([
      `UPDATE record_versions SET source_text = replace(source_text, 'jsmith_redcap', 'someone') WHERE id = '${v.id}'`,
      `UPDATE import_jobs SET values = values + 1 WHERE status = 'done' AND NOT dry_run`,
    ]);
    const dirty = await runIntegrityAudit(t.ctx, { study: S });
    const bad = dirty.findings.filter((f) => f.severity === "tamper");
    expect(bad.some((f) => f.table === "record_versions" && f.message.includes(String(v.record_id)))).toBe(true);
    expect(bad.some((f) => f.table === "import_jobs" && f.field === "values")).toBe(true);
    await tamper([
      `UPDATE record_versions SET source_text = replace(source_text, 'someone', 'jsmith_redcap') WHERE id = '${v.id}'`,
      `UPDATE import_jobs SET values = values - 1 WHERE status = 'done' AND NOT dry_run`,
    ]);
    const again = await runIntegrityAudit(t.ctx, { study: S });
    expect(again.findings.filter((f) => f.severity === "tamper")).toEqual([]);
  });
});

/** Review findings: one run per job, as its importer, within their sites, interrupted jobs, stale checks. */
describe(`import jobs run once, as their importer, on ${engineUnderTest()}`, () => {
  const S2 = "IMP-2";
  const admin: Principal = { kind: "user", userId: null, label: "admin", platformAdmin: true, memberships: [] };
  const u: Record<string, Principal> = {};
  const versionsOf = async (jobId: string) =>
    Number((await q(`SELECT count(*)::int AS n FROM record_versions WHERE source_text LIKE '%${jobId}%'`))[0].n);
  const queue = (by: Principal, text: string) =>
    createImportJob(t.ctx, by, S2, { fileName: "v.csv", bytes: enc(text), formCode: "VITALS", dryRun: false });
  const row = "subject,visit,sbp\nS1-001,SCREENING,120\n";

  beforeAll(async () => {
    await createStudy(
      t.ctx,
      {
        code: S2,
        title: "Import 2",
        sites: [
          { code: "S1", name: "1" },
          { code: "S2", name: "2" },
        ],
      },
      null,
    );
    for (const [k, role, site] of [
      ["dm", "data_manager", undefined],
      ["sdm", "data_manager", "S1"],
      ["gone", "data_manager", undefined],
      ["revoked", "data_manager", undefined],
      ["i1", "investigator", "S1"],
      ["i2", "investigator", "S2"],
    ] as const) {
      const user = await createUser(
        t.ctx,
        { email: `${k}@imp2.test`, fullName: k, password: "amber otter winter forty-two", role, study: S2, site },
        null,
      );
      u[k] = (await principalForUser(t.ctx, user.id))!;
    }
    await importForm(
      t.ctx,
      S2,
      {
        code: "VITALS",
        title: "Vitals",
        version: 1,
        visits: ["SCREENING"],
        fields: [{ name: "sbp", label: "Systolic", type: "number" }],
      },
      { actorId: null },
    );
    await enrollParticipant(t.ctx, u.i1, { study: S2, site: "S1" });
    await enrollParticipant(t.ctx, u.i2, { study: S2, site: "S2" });
    for (const s of ["S1-001", "S2-001"]) await giveCompleteConsent(t.ctx, S2, s);
  });

  it("two runs of one job at once import it once; the job ends done and the audit is clean", async () => {
    const job = await queue(u.dm, row);
    const runs = await Promise.all([runImportJob(t.ctx, job.id), runImportJob(t.ctx, job.id)]);
    expect(runs.filter((r) => r.status === "done").length).toBeGreaterThanOrEqual(1);
    expect(runs.some((r) => r.status === "failed")).toBe(false);
    const [j] = await q(`SELECT status FROM import_jobs WHERE id = '${job.id}'`);
    expect(j.status).toBe("done");
    expect(await versionsOf(job.id)).toBe(1);
    const done = await q(
      `SELECT id FROM ledger_entries WHERE kind = 'import.completed' AND payload_text LIKE '%${job.id}%'`,
    );
    expect(done).toHaveLength(1);
    await sealAll(t.ctx);
    const audit = await runIntegrityAudit(t.ctx, { study: S2 });
    expect(audit.findings.filter((f) => f.severity === "tamper")).toEqual([]);
  });

  it("a job runs as its importer: a disabled account or a revoked role fails it, nothing written", async () => {
    const gone = await queue(u.gone, row);
    await q(`UPDATE users SET status = 'disabled' WHERE email = 'gone@imp2.test'`);
    const a = await runImportJob(t.ctx, gone.id);
    expect(a).toMatchObject({ status: "failed", error: "the importer's account is no longer active", fileData: null });
    expect(await versionsOf(gone.id)).toBe(0);
    const revoked = await queue(u.revoked, row);
    const [m] = await q(
      `SELECT m.id FROM memberships m JOIN users x ON x.id = m.user_id WHERE x.email = 'revoked@imp2.test'`,
    );
    await revokeRole(t.ctx, admin, { study: S2, membership: String(m.id) });
    const b = await runImportJob(t.ctx, revoked.id);
    expect(b.status).toBe("failed");
    expect(b.error).toMatch(/revoked@imp2.test may no longer import into IMP-2/);
    expect(await versionsOf(revoked.id)).toBe(0);
  });

  it("a site-scoped data manager imports only at their sites and sees only the jobs they queued", async () => {
    const job = await queue(u.sdm, "subject,visit,sbp\nS1-001,SCREENING,121\nS2-001,SCREENING,122\n");
    const r = await runImportJob(t.ctx, job.id);
    expect(r.status).toBe("problems");
    expect(importReportOf(r.problemsText).problems).toEqual([
      { row: 3, column: "subject", message: "subject S2-001 is at site S2, where you may not import" },
    ]);
    expect(await versionsOf(job.id)).toBe(0);
    const mine = await importJobsOf(t.ctx, u.sdm, S2);
    expect(mine.map((x) => x.id)).toEqual([job.id]);
    const all = await importJobsOf(t.ctx, u.dm, S2);
    expect(all.length).toBeGreaterThan(1);
    const other = all.find((x) => x.id !== job.id)!;
    await expect(importJobOf(t.ctx, u.sdm, S2, other.id)).rejects.toMatchObject({ code: "not_found" });
    expect((await importJobOf(t.ctx, u.dm, S2, job.id)).id).toBe(job.id);
  });

  it("a job left running when the process stopped is failed at the runner's start, its bytes cleared", async () => {
    const job = await queue(u.dm, row);
    await q(`UPDATE import_jobs SET status = 'running', started_at = now() WHERE id = '${job.id}'`);
    const stop = startImportRunner(t.ctx, { pollMs: 600_000 });
    await stop();
    const [j] = await q(`SELECT status, error, file_data FROM import_jobs WHERE id = '${job.id}'`);
    expect(j).toMatchObject({ status: "failed", error: "interrupted: run the import again", file_data: null });
  });

  it("a record changed or a subject withdrawn after resolving fails the job in words, nothing written", async () => {
    const first = await queue(u.dm, "subject,visit,sbp\nS1-001,SCREENING,130\n");
    const second = await queue(u.dm, "subject,visit,sbp\nS1-001,SCREENING,131\n");
    const a = await runImportJob(t.ctx, first.id, {
      beforeWrite: async () => {
        expect((await runImportJob(t.ctx, second.id)).status).toBe("done");
      },
    });
    expect(a.status).toBe("failed");
    expect(a.error).toMatch(/^the record of S1-001 VITALS SCREENING \(row 2\) was changed while the import/);
    expect(a.error).not.toMatch(/duplicate|violates|constraint/);
    expect(await versionsOf(first.id)).toBe(0);
    const third = await queue(u.dm, "subject,visit,sbp\nS1-001,SCREENING,132\n");
    const c = await runImportJob(t.ctx, third.id, {
      beforeWrite: async () => {
        // A full withdrawal committed meanwhile (its participants.status; the paper consent helper's consent is not
        // one recordWithdrawal can withdraw).
        await q(
          `UPDATE participants SET status = 'withdrawn' WHERE subject_code = 'S1-001' AND study_id = ` +
            `(SELECT id FROM studies WHERE code = '${S2}')`,
        );
      },
    });
    expect(c.status).toBe("failed");
    expect(c.error).toMatch(/^subject S1-001 was withdrawn from the study while the import/);
    expect(await versionsOf(third.id)).toBe(0);
  });
  it("the verifier accepts an imported version's proof bundle (file SHA-256, row, claims sealed)", async () => {
    await sealAll(t.ctx);
    const [r] = await q(
      `SELECT v.entry_id, v.source_text FROM record_versions v WHERE v.source_text LIKE '%jsmith_redcap%'`,
    );
    const proof = await proofBundle(t.ctx, (await findEntryByRef(t.ctx, String(r.entry_id)))!);
    expect(proof.status).toBe("sealed");
    const bundle = (proof as { bundle: any }).bundle;
    const source = JSON.parse(String(r.source_text));
    expect(bundle.payload).toMatchObject({ v: 4, source: { job: source.job, fileSha256: sha(ODM), row: source.row } });
    expect(JSON.stringify(bundle)).not.toContain("jsmith_redcap");
    const verdict = await verifyBundle(t.ctx.crypto, bundle, deploymentTrustPolicy(t.ctx));
    expect(verdict.steps.filter((x) => x.status === "failed")).toEqual([]);
    expect(verdict.verdict).toBe("valid");
  });
});
