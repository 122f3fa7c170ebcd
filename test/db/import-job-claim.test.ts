/**
 * An import job's claim (ADR 0043), on PGlite and PostgreSQL: a job is failed as interrupted only when the process
 * running it no longer holds it (on PostgreSQL a session advisory lock per job, held by the runner; a new duties
 * leader's recovery leaves a job whose runner is alive alone), and the runner's end never overwrites a job another
 * process failed meanwhile: nothing is written, the job stays failed, and the run says so.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createStaff } from "../helpers/study-staff.ts";
import { openTestDatabase, engineUnderTest, type TestDb } from "../helpers/db.ts";
import { giveCompleteConsent } from "../helpers/consent.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { importForm } from "../../app/records/forms.server.ts";
import { enrollParticipant } from "../../app/participants/participants.server.ts";
import { createImportJob, failInterrupted, runImportJob } from "../../app/data-import/import-jobs.server.ts";
import { openDatabase, type Database } from "../../db/client.ts";
import type { AppContext } from "../../app/platform/context.server.ts";
import type { Principal } from "../../app/platform/permissions.server.ts";
import { utf8 } from "../../anchoring/log/bytes.ts";

const S = "CLM-1";
let t: TestDb;
let dm: Principal;
/** Another portal process on the same PostgreSQL database (its own pool), as a new duties leader would be. */
let other: { database: Database; ctx: AppContext } | null = null;
const q = async (text: string) => t.database.execute(text);
const queue = () =>
  createImportJob(t.ctx, dm, S, {
    fileName: "v.csv",
    bytes: utf8("subject,visit,sbp\nS1-001,SCREENING,120\n"),
    formCode: "VITALS",
    dryRun: false,
  });
const versionsOf = async (jobId: string) =>
  Number((await q(`SELECT count(*)::int AS n FROM record_versions WHERE source_text LIKE '%${jobId}%'`))[0].n);
const statusOf = async (jobId: string) =>
  (await q(`SELECT status, error FROM import_jobs WHERE id = '${jobId}'`))[0] as { status: string; error: string };

beforeAll(async () => {
  t = await openTestDatabase();
  await createStudy(t.ctx, { code: S, title: "Claims", sites: [{ code: "S1", name: "1" }] }, null);
  const staff = await createStaff(t.ctx, S, "clm.test", [
    ["inv", "investigator", "S1"],
    ["dm", "data_manager"],
  ]);
  dm = staff.principals.dm;
  await importForm(
    t.ctx,
    S,
    {
      code: "VITALS",
      title: "Vitals",
      version: 1,
      visits: ["SCREENING"],
      fields: [{ name: "sbp", label: "Systolic", type: "number" }],
    },
    { actorId: null },
  );
  await enrollParticipant(t.ctx, staff.principals.inv, { study: S, site: "S1" });
  await giveCompleteConsent(t.ctx, S, "S1-001");
  if (t.url) {
    const database = await openDatabase({ url: t.url, poolSize: 2 });
    other = { database, ctx: { ...t.ctx, database, db: database.db } };
  }
}, 120_000);
afterAll(async () => {
  await other?.database.close();
  await t?.close();
});

describe(`an import job's claim (${engineUnderTest()})`, () => {
  it.runIf(engineUnderTest() === "postgres")(
    "another process's recovery leaves a job its runner still holds; the run ends once, done",
    async () => {
      const job = await queue();
      let failed = -1;
      const r = await runImportJob(t.ctx, job.id, {
        beforeWrite: async () => {
          failed = await failInterrupted(other!.ctx);
          expect((await statusOf(job.id)).status).toBe("running");
        },
      });
      expect(failed).toBe(0);
      expect(r.status).toBe("done");
      expect(await statusOf(job.id)).toMatchObject({ status: "done" });
      expect(await versionsOf(job.id)).toBe(1);
    },
    60_000,
  );

  it.runIf(engineUnderTest() === "postgres")(
    "a job whose runner lost its claim is failed by the recovery, and the runner writes nothing and keeps it failed",
    async () => {
      const job = await queue();
      let failed = -1;
      const r = await runImportJob(t.ctx, job.id, {
        beforeWrite: async () => {
          // The runner's claim connection dies (the job's advisory lock goes with it).
          // (This test database's claims only; waits until the backend is gone.)
          const [k] = await q(
            "SELECT count(*)::int AS n FROM (SELECT pg_terminate_backend(pid, 10000) FROM pg_locks " +
              "WHERE locktype = 'advisory' AND granted AND classid = 7424014 AND pid <> pg_backend_pid() " +
              "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())) t",
          );
          expect(k.n).toBe(1);
          failed = await failInterrupted(other!.ctx);
        },
      });
      expect(failed).toBe(1);
      expect(r.status).toBe("failed");
      expect(r.error).toBe("interrupted: run the import again");
      expect(await statusOf(job.id)).toMatchObject({ status: "failed", error: "interrupted: run the import again" });
      expect(await versionsOf(job.id)).toBe(0);
    },
    60_000,
  );

  it("the runner's end does not overwrite a job another process failed meanwhile", async () => {
    const job = await queue();
    const r = await runImportJob(t.ctx, job.id, {
      beforeWrite: async () => {
        await q(`UPDATE import_jobs SET status = 'failed', error = 'failed elsewhere' WHERE id = '${job.id}'`);
      },
    });
    expect(r.status).toBe("failed");
    expect(r.error).toBe("failed elsewhere");
    expect(await statusOf(job.id)).toMatchObject({ status: "failed", error: "failed elsewhere" });
    expect(await versionsOf(job.id)).toBe(0);
  }, 60_000);
});
