/**
 * Who made an import (issue 18, ADR 0037), checked against the log on PGlite and PostgreSQL: the integrity audit
 * names an import_jobs row whose created_by, actor_token_id or actor_token_name was changed behind the log.
 */
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createImportJob, runImportJob } from "../../app/data-import/import-jobs.server.ts";
import { runIntegrityAudit } from "../../app/integrity-audit/integrity-audit.server.ts";
import { enrollParticipant } from "../../app/participants/participants.server.ts";
import type { Principal } from "../../app/platform/permissions.server.ts";
import { importForm } from "../../app/records/forms.server.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { utf8 } from "../../anchoring/log/bytes.ts";
import { giveCompleteConsent } from "../helpers/consent.ts";
import { createStaff } from "../helpers/study-staff.ts";
import { engineUnderTest, openTestDatabase, type TestDb } from "../helpers/db.ts";

const S = "IMA-1";
let t: TestDb;
const p: Record<string, Principal> = {};
let jobId: string;
const rows = async (q: string) => (await t.database.execute(q)) as Record<string, unknown>[];
/** Change rows behind the log (append-only triggers off, as the integrity audit tests do). */
async function tamper(statements: string[]) {
  await t.ctx.db.transaction(async (tx) => {
    await tx.execute(sql.raw("SET LOCAL session_replication_role = replica"));
    for (const s of statements) await tx.execute(sql.raw(s));
  });
}
const importFindings = async () =>
  (await runIntegrityAudit(t.ctx, { study: S })).findings
    .filter((f) => f.severity === "tamper")
    .map((f) => [f.table, f.id, f.field]);

beforeAll(async () => {
  t = await openTestDatabase();
  await createStudy(t.ctx, { code: S, title: "Import attribution", sites: [{ code: "S1", name: "1" }] }, null);
  Object.assign(
    p,
    (
      await createStaff(t.ctx, S, "ima.test", [
        ["inv", "investigator", "S1"],
        ["dm", "data_manager"],
      ])
    ).principals,
  );
  const vitals = { code: "VITALS", title: "Vitals", version: 1, visits: ["SCREENING"], fields: [] as object[] };
  vitals.fields.push({ name: "sbp", label: "Systolic", type: "number" });
  await importForm(t.ctx, S, vitals, { actorId: null });
  await enrollParticipant(t.ctx, p.inv, { study: S, site: "S1" });
  await giveCompleteConsent(t.ctx, S, "S1-001");
  const csv = "subject,visit,sbp\nS1-001,SCREENING,120\n";
  const job = await createImportJob(t.ctx, p.dm, S, {
    fileName: "v.csv",
    bytes: utf8(csv),
    formCode: "VITALS",
    dryRun: false,
  });
  const done = await runImportJob(t.ctx, job.id);
  expect(done.status, done.error ?? "").toBe("done");
  jobId = job.id;
});
afterAll(async () => {
  await t?.close();
});

describe(`who made an import, checked against the log, on ${engineUnderTest()}`, () => {
  it("names an import job whose user, token id or token name was changed behind the log", async () => {
    expect(await importFindings()).toEqual([]);
    const [job] = await rows(`SELECT created_by FROM import_jobs WHERE id = '${jobId}'`);
    expect(job.created_by).toBe(p.dm.userId);
    const [other] = await rows(`SELECT id FROM users WHERE email = 'inv@ima.test'`);
    for (const [column, value, restore] of [
      ["created_by", `'${other.id}'`, `'${job.created_by}'`],
      ["actor_token_id", "'00000000-0000-4000-8000-000000000001'", "NULL"],
      ["actor_token_name", "'Lab bridge'", "NULL"],
    ]) {
      await tamper([`UPDATE import_jobs SET ${column} = ${value} WHERE id = '${jobId}'`]);
      expect(await importFindings(), column).toEqual([["import_jobs", jobId, column]]);
      await tamper([`UPDATE import_jobs SET ${column} = ${restore} WHERE id = '${jobId}'`]);
    }
    expect(await importFindings()).toEqual([]);
  });
});
