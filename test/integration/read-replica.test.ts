/**
 * The read replica (issue 19, ADR 0044) against a real streaming replica: a second PostgreSQL cluster made with
 * `pg_basebackup -R` from the test server, started as a hot standby on a free port. The context opens its read-only
 * pool from DATABASE_REPLICA_URL; the integrity audit, the evidence package's log and sealed reads are served there
 * (the replica's own statistics and sessions show it) with the same results as on the primary; with replay paused on
 * the replica (it lags), new sealed entries are read from the primary, correctly, and from the replica again once it
 * has replayed them; an unreachable replica falls back to the primary and is reported once.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { unzipSync } from "fflate";
import { sql } from "drizzle-orm";
import { createScratchPostgres, TEST_DATABASE_URL } from "../helpers/db.ts";
import { testEnv } from "../helpers/env.ts";
import { waitFor } from "../helpers/wait.ts";
import { startReplica, type PgReplica } from "../helpers/pg-replica.ts";
import { createAppContext, type AppContext } from "../../app/platform/context.server.ts";
import { openReadReplica } from "../../db/client.ts";
import { rowsOf } from "../../db/queries/rows.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { sealAll } from "../../app/log/sealer.server.ts";
import { runIntegrityAudit, type AuditReport } from "../../app/integrity-audit/integrity-audit.server.ts";
import { exportStudy, OPERATOR } from "../../app/exports/study-exports.server.ts";
import { sealedRead, sealedReadStats } from "../../app/platform/sealed-reads.server.ts";

let replica: PgReplica | undefined;
let scratch: { url: string; drop: () => Promise<void> } | undefined;
let ctx: AppContext;
let dbName = "";

const primaryOnly = () => ({ ...ctx, replica: undefined });
const stats = () => sealedReadStats(ctx);

async function onPrimary<T = Record<string, unknown>>(text: string): Promise<T[]> {
  return (await ctx.database.execute(text)) as T[];
}
async function lastSeq(): Promise<number> {
  return Number((await onPrimary<{ n: string }>("SELECT max(seq)::text AS n FROM ledger_entries"))[0].n);
}
const envelopeOf = (seq: number) => async (db: AppContext["db"]) =>
  rowsOf<{ envelope_text: string | null }>(
    await db.execute(sql`SELECT envelope_text FROM ledger_entries WHERE seq = ${seq}`),
  )[0]?.envelope_text ?? null;
const comparable = (r: AuditReport) => ({ clean: r.clean, checked: r.checked, findings: r.findings });

beforeAll(async () => {
  replica = await startReplica(TEST_DATABASE_URL);
  scratch = await createScratchPostgres({ migrated: true });
  dbName = new URL(scratch.url).pathname.slice(1);
  ctx = await createAppContext(testEnv({ DATABASE_URL: scratch.url, DATABASE_REPLICA_URL: replica.urlFor(dbName) }));
  for (let i = 1; i <= 4; i++) {
    await createStudy(ctx, { code: `RR-${i}`, title: `Replicated ${i}`, sites: [{ code: "S1", name: "One" }] }, null);
    await sealAll(ctx);
  }
  // The replica has replayed everything sealed so far.
  const seq = await lastSeq();
  await waitFor(
    async () =>
      (await replica!.query(`SELECT 1 FROM ledger_entries WHERE seq = ${seq}`, dbName).catch(() => [])).length,
    { what: "the replica replaying the seeded log", timeoutMs: 120_000 },
  );
});

afterAll(async () => {
  try {
    await replica?.query("SELECT pg_wal_replay_resume()").catch(() => {});
    await ctx?.database.close();
  } finally {
    try {
      await replica?.destroy();
    } finally {
      await scratch?.drop();
    }
  }
});

describe("a read replica made with pg_basebackup -R", () => {
  it("the context opens a read-only pool on the hot standby", async () => {
    expect(ctx.replica).toBeDefined();
    const [r] = await ctx.replica!.execute(
      "SELECT pg_is_in_recovery() AS standby, current_setting('default_transaction_read_only') AS ro, " +
        "current_setting('port') AS port, current_setting('application_name') AS app",
    );
    expect(r).toEqual({ standby: true, ro: "on", port: String(replica!.port), app: "trialseal-replica" });
    await expect(ctx.replica!.execute("CREATE TABLE replica_write_probe (a int)")).rejects.toThrow(/read-only/);
  });

  it("serves the integrity audit, the evidence package's log and sealed reads, as the primary would", async () => {
    const before = stats();
    const report = await runIntegrityAudit(ctx, { study: "RR-2" });
    expect(stats().replica).toBe(before.replica + 1);
    expect(report.clean).toBe(true);
    expect(comparable(report)).toEqual(comparable(await runIntegrityAudit(primaryOnly(), { study: "RR-2" })));
    // The replica's own view: the pool's sessions there, under their own name, last ran the audit's reads of the
    // log (its last checks, of the audit trail), not only the lag check on checkpoints.
    const sessions = await replica!.query<{ query: string }>(
      `SELECT query FROM pg_stat_activity WHERE application_name = 'trialseal-replica' AND datname = '${dbName}'`,
    );
    const auditReads = sessions.filter((x) => /\bledger_entries\b/.test(x.query) && !/c\.tree_size/.test(x.query));
    expect(auditReads.length).toBeGreaterThan(0);

    // The evidence package: its log (checkpoints, headers, every envelope) read on the replica once it has replayed
    // the checkpoint the export itself sealed; the envelopes are exactly the primary's.
    const mid = stats();
    const file = await exportStudy(ctx, OPERATOR, "RR-1", "evidence");
    // The log part, then each batch's proof bundles (app/log/proofs.server.ts reads them through sealedRead too).
    expect(stats().replica).toBeGreaterThan(mid.replica);
    expect(stats().primary).toBe(mid.primary);
    const envelopes = new TextDecoder().decode(unzipSync(file.data)["log/envelopes.jsonl"]);
    const expected = await onPrimary<{ t: string }>(
      "SELECT envelope_text AS t FROM ledger_entries WHERE seq IS NOT NULL ORDER BY seq",
    );
    expect(envelopes).toBe(expected.map((e) => `${e.t}\n`).join(""));

    // A sealed read of one entry (as a proof reads it).
    const seq = await lastSeq();
    const s0 = stats();
    const env = await sealedRead(ctx, envelopeOf(seq), { minSealedSeq: seq });
    expect(stats().replica).toBe(s0.replica + 1);
    expect(env).toBe(await envelopeOf(seq)(primaryOnly().db));
  });

  it("reads from the primary while the replica lags (replay paused), from the replica once it catches up", async () => {
    await replica!.query("SELECT pg_wal_replay_pause()");
    try {
      await waitFor(
        async () =>
          (await replica!.query<{ s: string }>("SELECT pg_get_wal_replay_pause_state() AS s"))[0].s === "paused",
        { what: "replay paused on the replica" },
      );
      await createStudy(
        ctx,
        { code: "RR-LAG", title: "Sealed while paused", sites: [{ code: "S1", name: "One" }] },
        null,
      );
      await sealAll(ctx);
      const seq = await lastSeq();
      // The replica has not got it.
      expect(await replica!.query(`SELECT 1 FROM ledger_entries WHERE seq = ${seq}`, dbName)).toEqual([]);

      const s0 = stats();
      const env = await sealedRead(ctx, envelopeOf(seq), { minSealedSeq: seq });
      expect(env).not.toBeNull();
      expect(env).toBe(await envelopeOf(seq)(primaryOnly().db));
      expect(stats()).toEqual({ ...s0, primary: s0.primary + 1 });

      // The whole audit runs on the primary (the replica has not replayed its latest checkpoint) and covers it all.
      const report = await runIntegrityAudit(ctx);
      expect(stats()).toEqual({ ...s0, primary: s0.primary + 2 });
      expect(report.clean).toBe(true);
      expect(comparable(report)).toEqual(comparable(await runIntegrityAudit(primaryOnly())));

      // The evidence package of the new study: its log from the primary, with the new entries in it.
      const file = await exportStudy(ctx, OPERATOR, "RR-LAG", "evidence");
      // Its log part from the primary; the proof bundles of batches the replica already has may come from it.
      const s1 = stats();
      expect(s1.primary).toBeGreaterThanOrEqual(s0.primary + 3);
      expect(s1.fallbacks).toBe(s0.fallbacks);
      const envelopes = new TextDecoder().decode(unzipSync(file.data)["log/envelopes.jsonl"]).trim().split("\n");
      expect(envelopes.length).toBe((await lastSeq()) + 1);
      expect(envelopes).toContain(env);
    } finally {
      await replica!.query("SELECT pg_wal_replay_resume()");
    }
    const seq = await lastSeq();
    await waitFor(
      async () => {
        const before = stats().replica;
        const env = await sealedRead(ctx, envelopeOf(seq), { minSealedSeq: seq });
        return stats().replica === before + 1 && env !== null;
      },
      { what: "the replica serving the entries sealed while it was paused", timeoutMs: 120_000 },
    );
  });

  it("an unreachable replica: reads go to the primary, reported once", async () => {
    const dead = await openReadReplica(`postgres://postgres@127.0.0.1:1/${dbName}`);
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    try {
      const c: AppContext = { ...ctx, replica: dead };
      const seq = await lastSeq();
      const expected = await envelopeOf(seq)(primaryOnly().db);
      expect(await sealedRead(c, envelopeOf(seq), { minSealedSeq: seq })).toBe(expected);
      expect(await sealedRead(c, envelopeOf(seq), { minSealedSeq: seq })).toBe(expected);
      const report = await runIntegrityAudit(c, { study: "RR-3" });
      expect(report.clean).toBe(true);
      // The first failure marks it down for a while: the next reads go straight to the primary.
      const st = sealedReadStats(c);
      expect(st.replica).toBe(0);
      expect(st.fallbacks).toBeGreaterThanOrEqual(1);
      expect(st.primary + st.fallbacks).toBe(3);
      expect(warn).toHaveBeenCalledTimes(1);
      expect(String(warn.mock.calls[0][0])).toMatch(/read replica postgres:\/\/postgres@127\.0\.0\.1:1\/.* failed/);
    } finally {
      warn.mockRestore();
      await dead.close();
    }
  });
});
