/**
 * The database lock, the study's unblinding and the allocations file (issue 20, ADR 0054) on PGlite and PostgreSQL:
 * the lock seals the analysis data set's SHA-256 with the study-wide lock in one transaction; writes refused while it
 * holds; the download re-checks the hash; unlock with a reason, then edits are clean and a re-lock seals a new data
 * set; a record version written behind the services under the lock is named (DATA_CHANGED_UNDER_LOCK); the audit
 * names database_locks and randomization_unblindings rows changed, deleted or inserted; unblinding needs a committed
 * list and the lock; the allocations file parses and verifies.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { sql } from "drizzle-orm";
import { unzipSync } from "fflate";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { toHex, utf8 } from "../../anchoring/log/bytes.ts";
import { AllocationsFileSchema } from "../../anchoring/randomization/allocations-file.ts";
import { verifyAllocations } from "../../anchoring/randomization/verify-allocations.ts";
import { deploymentTrustPolicy } from "../../app/anchor-worker/anchor-worker.server.ts";
import { setLock } from "../../app/clinical-monitoring/clinical-monitoring.server.ts";
import { createImportJob, runImportJob } from "../../app/data-import/import-jobs.server.ts";
import {
  analysisDataSet,
  databaseLockHistory,
  databaseLockInForce,
  lockDatabase,
  unlockDatabase,
} from "../../app/database-lock/database-lock.server.ts";
import { exportStudy } from "../../app/exports/study-exports.server.ts";
import { runIntegrityAudit, type AuditReport } from "../../app/integrity-audit/integrity-audit.server.ts";
import { sealAll } from "../../app/log/sealer.server.ts";
import { setDisposition } from "../../app/participants/disposition.server.ts";
import { enrollParticipant } from "../../app/participants/participants.server.ts";
import type { Principal } from "../../app/platform/permissions.server.ts";
import { buildAllocationsFile } from "../../app/randomization/allocations-export.server.ts";
import { emergencyUnblind } from "../../app/randomization/emergency-unblinding.server.ts";
import { commitList, createGeneratedList } from "../../app/randomization/lists.server.ts";
import { randomizeParticipant } from "../../app/randomization/randomize.server.ts";
import { armsVisible } from "../../app/randomization/unblinding-state.server.ts";
import { unblindStudy } from "../../app/randomization/unblinding.server.ts";
import { saveRecordBatch } from "../../app/records/batch.server.ts";
import { importForm } from "../../app/records/forms.server.ts";
import { correctRecord, saveRecord, todayIn } from "../../app/records/records.server.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { giveCompleteConsent } from "../helpers/consent.ts";
import { engineUnderTest, openTestDatabase, type TestDb } from "../helpers/db.ts";
import { ROOT } from "../helpers/portal.ts";
import { createStaff } from "../helpers/study-staff.ts";

let t: TestDb;
let p: Record<string, Principal>;
const S = "DBL-1";
const rows = async (q: string) => (await t.database.execute(q)) as Record<string, unknown>[];
const text = (b: Uint8Array) => new TextDecoder().decode(b);
const tamperFindings = (r: AuditReport) => r.findings.filter((f) => f.severity === "tamper");
const audit = (study = S) => runIntegrityAudit(t.ctx, { study });
async function tamper(statements: string[]) {
  await t.ctx.db.transaction(async (tx) => {
    await tx.execute(sql.raw("SET LOCAL session_replication_role = replica"));
    for (const s of statements) await tx.execute(sql.raw(s));
  });
}

const VS = {
  code: "VS",
  title: "Vital signs",
  version: 1,
  visits: ["V1", "V2"],
  fields: [{ name: "sbp", label: "Systolic BP", type: "number", required: true }],
};
const DESIGN = {
  v: 1,
  arms: [
    { code: "A", name: "Active", ratio: 1 },
    { code: "P", name: "Placebo", ratio: 1 },
  ],
  blockSizes: [2, 4],
  factors: [],
  sites: ["S1"],
  slotsPerStratum: 8,
  kitTypes: { KA: "A", KP: "P" },
};
let recordId: string;

beforeAll(async () => {
  t = await openTestDatabase();
  await createStudy(t.ctx, { code: S, title: "Database lock", sites: [{ code: "S1", name: "One" }] }, null);
  p = (
    await createStaff(t.ctx, S, "dbl.test", [
      ["inv", "investigator", "S1"],
      ["coord", "coordinator", "S1"],
      ["dm", "data_manager"],
      ["mon", "monitor"],
      ["stat", "unblinded_statistician"],
    ])
  ).principals;
  await importForm(t.ctx, S, VS, { actorId: null });
  for (let i = 1; i <= 4; i++) {
    await enrollParticipant(t.ctx, p.inv, { study: S, site: "S1" });
    await giveCompleteConsent(t.ctx, S, `S1-00${i}`);
  }
  recordId = (await saveRecord(t.ctx, p.inv, S, { subject: "S1-001", form: "VS", visit: "V1", data: { sbp: 120 } })).id;
  await saveRecord(t.ctx, p.inv, S, { subject: "S1-002", form: "VS", visit: "V1", data: { sbp: 131 } });
  const { listId } = await createGeneratedList(t.ctx, p.stat, S, { design: DESIGN });
  await commitList(t.ctx, p.stat, S, listId);
  for (const s of ["S1-001", "S1-002", "S1-003"]) await randomizeParticipant(t.ctx, p.inv, S, s, { factors: {} });
  await emergencyUnblind(t.ctx, p.inv, S, "S1-002", { reason: "anaphylaxis, treating physician asks" });
}, 120_000);
afterAll(async () => {
  await t?.close();
});

describe(`database lock and unblinding on ${engineUnderTest()}`, () => {
  it("unblinding is refused before the database lock, and the allocations file before unblinding", async () => {
    await expect(unblindStudy(t.ctx, p.stat, S)).rejects.toMatchObject({
      code: "conflict",
      message: expect.stringMatching(/not locked/),
    });
    await expect(buildAllocationsFile(t.ctx, p.mon, S)).rejects.toMatchObject({
      code: "conflict",
      message: expect.stringMatching(/not unblinded yet/),
    });
    expect(await armsVisible(t.ctx, p.coord, { studyId: await studyId(), siteId: null })).toBe(false);
  });

  it("locks with a reason: the study-wide lock, the analysis data set, its sealed SHA-256", async () => {
    await expect(lockDatabase(t.ctx, p.dm, S, { reason: "  " })).rejects.toMatchObject({ field: "reason" });
    await expect(lockDatabase(t.ctx, p.coord, S, { reason: "final" })).rejects.toMatchObject({ code: "forbidden" });
    const entriesBefore = await count("ledger_entries");
    const r = await lockDatabase(t.ctx, p.dm, S, { reason: "final database lock" });
    const kinds = (await rows(`SELECT kind FROM ledger_entries ORDER BY at, id`)).map((x) => x.kind);
    expect(kinds.slice(entriesBefore)).toEqual(expect.arrayContaining(["lock.set", "database.locked"]));
    const [e] = await rows(`SELECT payload_text FROM ledger_entries WHERE kind = 'database.locked'`);
    const payload = JSON.parse(String(e.payload_text));
    expect(payload).toMatchObject({ databaseLock: r.databaseLockId, lock: r.lockId, records: 2, actor: p.dm.userId });
    const d = await databaseLockInForce(t.ctx.db, await studyId());
    expect(d).toMatchObject({ id: r.databaseLockId, lockId: r.lockId, reason: "final database lock", records: 2 });
    const data = new Uint8Array(d!.analysisData);
    expect(toHex(t.ctx.crypto.sha256(data))).toBe(payload.analysisSha256);
    expect(data.length).toBe(payload.analysisBytes);
    // The analysis data set: the study's CSV, every record's current values, no arm.
    const files = unzipSync(data);
    expect(Object.keys(files).sort()).toEqual(["CHOICES.txt", `${S}-VS.csv`]);
    const csv = text(files[`${S}-VS.csv`]);
    expect(csv).toContain("S1-001");
    expect(csv).toMatch(/,131\r\n/);
    expect(csv).not.toMatch(/Active|Placebo|\bKA\b|\bKP\b/);
    const [ev] = await rows(`SELECT count(*)::int AS n FROM audit_events WHERE action = 'database.lock'`);
    expect(Number(ev.n)).toBe(1);
    await expect(lockDatabase(t.ctx, p.dm, S, { reason: "again" })).rejects.toMatchObject({
      code: "conflict",
      message: expect.stringMatching(/already locked/),
    });
    expect(tamperFindings(await audit())).toEqual([]);
  });

  it("while locked, saves, corrections, batches, imports and randomizations are refused", async () => {
    const before = await count("record_versions");
    await expect(
      saveRecord(t.ctx, p.inv, S, { subject: "S1-003", form: "VS", visit: "V1", data: { sbp: 110 } }),
    ).rejects.toMatchObject({ code: "locked" });
    await expect(
      correctRecord(t.ctx, p.inv, S, recordId, { data: { sbp: 121 }, reason: "typo" }),
    ).rejects.toMatchObject({ code: "locked" });
    const b = await saveRecordBatch(t.ctx, p.inv, S, {
      records: [{ subject: "S1-003", form: "VS", visit: "V1", data: { sbp: 110 } }],
    });
    expect(b.results[0].error).toMatchObject({ code: "locked" });
    const job = await createImportJob(t.ctx, p.dm, S, {
      fileName: "vs.csv",
      bytes: utf8("subject,visit,sbp\nS1-003,V2,112\n"),
      formCode: "VS",
      dryRun: false,
    });
    const imported = await runImportJob(t.ctx, job.id);
    expect(imported.status).not.toBe("done");
    expect(`${imported.error ?? ""} ${imported.problemsText ?? ""}`).toMatch(/locked/);
    await expect(randomizeParticipant(t.ctx, p.inv, S, "S1-004", { factors: {} })).rejects.toMatchObject({
      code: "locked",
    });
    expect(await count("record_versions")).toBe(before);
  });

  it("a disposition while locked is refused (423); the audit has nothing under the lock", async () => {
    await expect(
      setDisposition(t.ctx, p.inv, S, "S1-004", { status: "discontinued", date: todayIn("UTC"), reason: "moved" }),
    ).rejects.toMatchObject({ code: "locked", message: expect.stringContaining("since") });
    const r = await audit();
    expect(tamperFindings(r)).toEqual([]);
    expect(r.findings.filter((f) => f.code === "DATA_CHANGED_UNDER_LOCK")).toEqual([]);
  });

  it("the download re-checks the sealed hash; the audit names database_locks rows changed or deleted", async () => {
    const d = (await databaseLockInForce(t.ctx.db, await studyId()))!;
    const got = await analysisDataSet(t.ctx, p.stat, S, d.id);
    expect(got.name).toMatch(new RegExp(`^${S}-analysis-data-set-\\d{8}-\\d{6}\\.zip$`));
    await expect(analysisDataSet(t.ctx, p.coord, S, d.id)).rejects.toMatchObject({ code: "forbidden" });
    // Altered bytes (hash column left as sealed): not served; the audit names the column.
    const [saved] = await rows(`SELECT * FROM database_locks WHERE id = '${d.id}'`);
    await tamper([`UPDATE database_locks SET analysis_data = '\\x00'::bytea || analysis_data WHERE id = '${d.id}'`]);
    await expect(analysisDataSet(t.ctx, p.dm, S, d.id)).rejects.toMatchObject({
      code: "conflict",
      message: expect.stringMatching(/does not match its sealed SHA-256/),
    });
    let f = tamperFindings(await audit());
    expect(f.map((x) => [x.table, x.id, x.field])).toEqual([
      ["database_locks", d.id, "analysisData"],
      ["database_locks", d.id, "analysisDataBytes"],
    ]);
    await tamper([`UPDATE database_locks SET analysis_data = substring(analysis_data from 2) WHERE id = '${d.id}'`]);
    expect(tamperFindings(await audit())).toEqual([]);
    // The record count changed.
    await tamper([`UPDATE database_locks SET records = 7 WHERE id = '${d.id}'`]);
    f = tamperFindings(await audit());
    expect(f.map((x) => [x.table, x.id, x.field])).toEqual([["database_locks", d.id, "records"]]);
    await tamper([`UPDATE database_locks SET records = 2 WHERE id = '${d.id}'`]);
    // Deleted: the entry has no row.
    await tamper([`DELETE FROM database_locks WHERE id = '${d.id}'`]);
    f = tamperFindings(await audit());
    expect(f.map((x) => [x.code, x.table])).toEqual([["DATA_ROW_MISSING", "database_locks"]]);
    await tamper([
      `INSERT INTO database_locks (id, study_id, lock_id, analysis_file_name, analysis_sha256, analysis_bytes,
        analysis_data, records, actor_user_id, created_at, entry_id)
       SELECT '${saved.id}', '${saved.study_id}', '${saved.lock_id}', '${saved.analysis_file_name}',
        '\\x${toHex(saved.analysis_sha256 as Uint8Array)}'::bytea, ${saved.analysis_bytes},
        '\\x${toHex(saved.analysis_data as Uint8Array)}'::bytea, ${saved.records}, '${saved.actor_user_id}', now(),
        '${saved.entry_id}'`,
    ]);
    expect(tamperFindings(await audit())).toEqual([]);
    // Inserted: a row with no database.locked entry behind it.
    await tamper([
      `INSERT INTO database_locks (study_id, lock_id, analysis_file_name, analysis_sha256, analysis_bytes,
        analysis_data, records, entry_id)
       VALUES ('${saved.study_id}', '${saved.lock_id}', 'x.zip', '\\x00'::bytea, 1, '\\x00'::bytea, 0,
        (SELECT id FROM ledger_entries WHERE kind = 'lock.set' LIMIT 1))`,
    ]);
    f = tamperFindings(await audit());
    expect(f.map((x) => [x.code, x.table])).toEqual([["DATA_ROW_UNLOGGED", "database_locks"]]);
    await tamper([`DELETE FROM database_locks WHERE analysis_file_name = 'x.zip'`]);
    expect(tamperFindings(await audit())).toEqual([]);
  });

  it("unlock with a reason, then edits are clean; a re-lock seals a new analysis data set", async () => {
    await expect(unlockDatabase(t.ctx, p.dm, S, "")).rejects.toMatchObject({ field: "reason" });
    await unlockDatabase(t.ctx, p.dm, S, "late lab value from site S1");
    expect(await databaseLockInForce(t.ctx.db, await studyId())).toBeNull();
    await expect(unlockDatabase(t.ctx, p.dm, S, "again")).rejects.toMatchObject({ code: "conflict" });
    await correctRecord(t.ctx, p.inv, S, recordId, { data: { sbp: 122 }, reason: "late lab value" });
    const r = await audit();
    expect(tamperFindings(r)).toEqual([]);
    expect(r.findings.filter((f) => f.code === "DATA_CHANGED_UNDER_LOCK")).toEqual([]);
    const second = await lockDatabase(t.ctx, p.dm, S, { reason: "database lock after the late value" });
    const history = await databaseLockHistory(t.ctx, p.mon, S);
    expect(history.map((h) => [h.id, h.releasedAt === null, h.releaseReason])).toEqual([
      [second.databaseLockId, true, null],
      [expect.any(String), false, "late lab value from site S1"],
    ]);
    expect(history[0].sha256).not.toBe(history[1].sha256);
    const got = await analysisDataSet(t.ctx, p.dm, S, second.databaseLockId);
    expect(text(unzipSync(got.data)[`${S}-VS.csv`])).toMatch(/,122\r\n/);
  });

  it("unblinds with the lock in force: arms visible to every role, the allocations file verifies", async () => {
    await expect(unblindStudy(t.ctx, p.dm, S)).rejects.toMatchObject({ code: "forbidden" });
    await unblindStudy(t.ctx, p.stat, S);
    await expect(unblindStudy(t.ctx, p.stat, S)).rejects.toMatchObject({
      code: "conflict",
      message: expect.stringMatching(/already unblinded/),
    });
    expect(await armsVisible(t.ctx, p.coord, { studyId: await studyId(), siteId: null })).toBe(true);
    await expect(buildAllocationsFile(t.ctx, p.inv, S)).rejects.toMatchObject({ code: "forbidden" });
    const file = await buildAllocationsFile(t.ctx, p.mon, S);
    expect(AllocationsFileSchema.safeParse(JSON.parse(JSON.stringify(file))).success).toBe(true);
    expect(file.allocations).toHaveLength(3);
    expect(file.emergencyUnblindings).toHaveLength(1);
    expect(file.strata[0].slots.length).toBeGreaterThanOrEqual(8);
    expect(file.trustPolicyText).toBe(`${JSON.stringify(deploymentTrustPolicy(t.ctx), null, 2)}\n`);
    const report = await verifyAllocations(
      t.ctx.crypto,
      JSON.parse(JSON.stringify(file)),
      deploymentTrustPolicy(t.ctx),
    );
    expect(report.problems).toEqual([]);
    expect(report).toMatchObject({ valid: true, checked: { allocations: 3, emergencyUnblindings: 1 } });
    // The same file through the export dispatcher (the CLI's and the download's).
    const exported = await exportStudy(t.ctx, p.mon, S, "allocations");
    expect(exported.name).toBe(`${S}-allocations.json`);
    expect(AllocationsFileSchema.parse(JSON.parse(text(exported.data))).study).toBe(S);
    expect(tamperFindings(await audit())).toEqual([]);
  });

  it("the audit names a randomization_unblindings row changed, deleted or inserted", async () => {
    const [u] = await rows(`SELECT * FROM randomization_unblindings`);
    await tamper([`UPDATE randomization_unblindings SET actor_user_id = '${p.dm.userId}' WHERE id = '${u.id}'`]);
    let f = tamperFindings(await audit());
    expect(f.map((x) => [x.table, x.id, x.field])).toEqual([["randomization_unblindings", u.id, "actor"]]);
    await tamper([`UPDATE randomization_unblindings SET actor_user_id = '${u.actor_user_id}' WHERE id = '${u.id}'`]);
    await tamper([`DELETE FROM randomization_unblindings WHERE id = '${u.id}'`]);
    f = tamperFindings(await audit());
    expect(f.map((x) => [x.code, x.table])).toEqual([["DATA_ROW_MISSING", "randomization_unblindings"]]);
    await tamper([
      `INSERT INTO randomization_unblindings (id, study_id, list_id, database_lock_id, actor_user_id, entry_id)
       VALUES ('${u.id}', '${u.study_id}', '${u.list_id}', '${u.database_lock_id}', '${u.actor_user_id}',
        '${u.entry_id}')`,
    ]);
    expect(tamperFindings(await audit())).toEqual([]);
    await tamper([`DELETE FROM randomization_unblindings WHERE id = '${u.id}'`]);
    await tamper([
      `INSERT INTO randomization_unblindings (study_id, list_id, database_lock_id, actor_user_id, entry_id)
       VALUES ('${u.study_id}', '${u.list_id}', '${u.database_lock_id}', '${u.actor_user_id}',
        (SELECT id FROM ledger_entries WHERE kind = 'lock.set' LIMIT 1))`,
    ]);
    f = tamperFindings(await audit());
    expect(f.map((x) => [x.code, x.table])).toContainEqual(["DATA_ROW_UNLOGGED", "randomization_unblindings"]);
    await tamper([
      `DELETE FROM randomization_unblindings`,
      `INSERT INTO randomization_unblindings (id, study_id, list_id, database_lock_id, actor_user_id, entry_id)
       VALUES ('${u.id}', '${u.study_id}', '${u.list_id}', '${u.database_lock_id}', '${u.actor_user_id}',
        '${u.entry_id}')`,
    ]);
    expect(tamperFindings(await audit())).toEqual([]);
  });

  it("a record version written behind the services under the lock is named; one after an unlock is not", async () => {
    const T = "DBL-2";
    await createStudy(t.ctx, { code: T, title: "Sneaked", sites: [{ code: "S1", name: "One" }] }, null);
    const q = (
      await createStaff(t.ctx, T, "dbl2.test", [
        ["inv", "investigator", "S1"],
        ["dm", "data_manager"],
      ])
    ).principals;
    await importForm(t.ctx, T, VS, { actorId: null });
    await enrollParticipant(t.ctx, q.inv, { study: T, site: "S1" });
    await giveCompleteConsent(t.ctx, T, "S1-001");
    const rec = await saveRecord(t.ctx, q.inv, T, { subject: "S1-001", form: "VS", visit: "V1", data: { sbp: 100 } });
    const { lockId } = await lockDatabase(t.ctx, q.dm, T, { reason: "final" });
    expect(tamperFindings(await audit(T))).toEqual([]);
    // Behind the services: the lock row marked released for a moment (no lock.released entry), a correction saved,
    // the lock row put back. Every row matches its entry; only the log order tells.
    await tamper([`UPDATE locks SET released_at = now() WHERE id = '${lockId}'`]);
    await correctRecord(t.ctx, q.inv, T, rec.id, { data: { sbp: 160 }, reason: "after the lock" });
    await tamper([`UPDATE locks SET released_at = NULL WHERE id = '${lockId}'`]);
    await sealAll(t.ctx);
    const f = tamperFindings(await audit(T));
    expect(f).toEqual([
      expect.objectContaining({
        code: "DATA_CHANGED_UNDER_LOCK",
        message: expect.stringContaining(`record ${rec.id} version 2`),
      }),
    ]);
    // Unlocked with a reason, then edited: that edit is not named (the one under the lock still is).
    await unlockDatabase(t.ctx, q.dm, T, "query on the late correction");
    await correctRecord(t.ctx, q.inv, T, rec.id, { data: { sbp: 150 }, reason: "source verified" });
    const after = tamperFindings(await audit(T));
    expect(after.map((x) => x.message)).toEqual([expect.stringContaining(`record ${rec.id} version 2`)]);
  });

  it("trialseal export --format allocations writes CODE-allocations.json after unblinding only", async () => {
    // Another process opens the database: PostgreSQL only (PGlite here is in this process's memory).
    if (!t.url) return;
    const dir = mkdtempSync(path.join(tmpdir(), "dbl-cli-"));
    const env = {
      ...process.env,
      DATABASE_URL: t.url,
      DATA_DIR: t.ctx.env.dataDir,
      DATA_KEY: "11".repeat(32),
      SESSION_SECRET: "test-session-secret-that-is-long-enough-0123456789",
    };
    const cli = (args: string[]) =>
      spawnSync(process.execPath, [path.join(ROOT, "bin", "trialseal.js"), ...args], {
        encoding: "utf8",
        env,
        cwd: dir,
      });
    const run = cli(["export", "--study", S, "--format", "allocations"]);
    expect(run.stderr).toBe("");
    expect(run.status).toBe(0);
    const out = path.join(dir, `${S}-allocations.json`);
    expect(run.stdout).toMatch(/^wrote .*DBL-1-allocations\.json \(\d+ bytes, sha256 [0-9a-f]{64}\)\n$/);
    const file = AllocationsFileSchema.parse(JSON.parse(readFileSync(out, "utf8")));
    expect(file.allocations).toHaveLength(3);
    // `trialseal verify-allocations` checks the exported file offline against the pinned policy: exit 0.
    const pin = toHex(t.ctx.crypto.sha256(utf8(file.trustPolicyText)));
    const v = cli(["verify-allocations", out, "--pin", pin]);
    expect(v.stderr).toBe("");
    expect(v.status).toBe(0);
    expect(cli(["verify-allocations", out, "--pin", "0".repeat(64)]).status).toBe(1);
    // DBL-2 is locked but not unblinded: exit code and one line naming why.
    const refused = cli(["export", "--study", "DBL-2", "--format", "allocations"]);
    expect(refused.status).not.toBe(0);
    expect(refused.stderr.trim().split("\n")).toEqual([expect.stringMatching(/not unblinded yet/)]);
    expect(existsSync(path.join(dir, "DBL-2-allocations.json"))).toBe(false);
  }, 180_000);

  it("a study lock set on the participants page is refused a database lock until released", async () => {
    const T = "DBL-3";
    await createStudy(t.ctx, { code: T, title: "Plain lock", sites: [{ code: "S1", name: "One" }] }, null);
    const q = (await createStaff(t.ctx, T, "dbl3.test", [["dm", "data_manager"]])).principals;
    await setLock(t.ctx, q.dm, T, { scope: "study", reason: "interim" });
    await expect(lockDatabase(t.ctx, q.dm, T, { reason: "final" })).rejects.toMatchObject({ code: "conflict" });
    await expect(unlockDatabase(t.ctx, q.dm, T, "x")).rejects.toMatchObject({ message: "the database is not locked" });
  });
});

async function studyId() {
  const [s] = await rows(`SELECT id FROM studies WHERE code = '${S}'`);
  return String(s.id);
}
async function count(table: string) {
  const [r] = await rows(`SELECT count(*)::int AS n FROM ${table}`);
  return Number(r.n);
}
