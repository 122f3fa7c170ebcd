/**
 * ADR 0045: what partitioning ledger_entries by seq range (migration 0023) costs the sealer and a lookup by id,
 * measured side by side in one run on PostgreSQL: a database on the schema before 0023 (one table, id primary key)
 * and one on the partitioned schema, each with the same N pending entries sealed in batches of 10,000; then
 * findEntryById for random entries, with the partitions the log needs and with 20 more (empty) ones.
 * `node --import tsx bench/partition-seal.ts [N]` (default 100,000). Not part of `npm test` or `npm run bench`.
 */
import { sealOnce } from "../anchoring/log/sealer.ts";
import { sealNow } from "../app/log/sealer.server.ts";
import { findEntryById } from "../db/queries/log.ts";
import { ledgerStore } from "../db/log-store.ts";
import { openTestDatabase, type TestDb } from "../test/helpers/db.ts";
import { openDatabaseBefore } from "../test/helpers/migrated-before.ts";

const N = Number(process.argv[2] ?? 100_000);
process.env.TEST_DB_ENGINE = "postgres";

async function populate(t: TestDb) {
  await t.database.execute(
    `INSERT INTO studies (id, code, title) VALUES ('00000000-0000-4000-8000-00000000b001', 'BENCH', 'Bench')`,
  );
  for (let lo = 0; lo < N; lo += 100_000) {
    const hi = Math.min(N, lo + 100_000);
    await t.database.execute(`
      INSERT INTO ledger_entries (study_id, study_code, kind, payload_text, payload_hash, at)
      SELECT '00000000-0000-4000-8000-00000000b001', 'BENCH', 'site.added', p, sha256(convert_to(p, 'UTF8')),
             timestamptz '2026-01-01' + (i || ' milliseconds')::interval
        FROM (SELECT i, '{"actor":null,"salt":"' || substr(md5(i::text), 1, 22) || '","site":"S' || i || '","v":1}' AS p
                FROM generate_series(${lo}, ${hi - 1}) AS i) s`);
  }
  await t.database.execute(`VACUUM ANALYZE ledger_entries`);
}

/** Microseconds per findEntryById for `ids`, in blocks of 100 alternating between the databases. */
async function lookups(dbs: TestDb[], k = 2000): Promise<number[]> {
  const ids = await Promise.all(
    dbs.map(async (t) =>
      (await t.database.execute(`SELECT id FROM ledger_entries ORDER BY random() LIMIT ${k}`)).map((r) => String(r.id)),
    ),
  );
  const us = dbs.map(() => 0);
  for (let i = 0; i < dbs.length; i++) for (const id of ids[i].slice(0, 100)) await findEntryById(dbs[i].ctx.db, id);
  for (let lo = 0; lo < k; lo += 100)
    for (let i = 0; i < dbs.length; i++) {
      const t0 = process.hrtime.bigint();
      for (const id of ids[i].slice(lo, lo + 100)) await findEntryById(dbs[i].ctx.db, id);
      us[i] += Number(process.hrtime.bigint() - t0) / 1e3;
    }
  return us.map((u) => u / k);
}

// Both databases populated alike, then sealed one batch of 10,000 each in turn, so that the machine's load (shared
// with other work) weighs on both alike; the time of each seal is summed per database.
const before = await openDatabaseBefore("0023_partition-ledger");
const after = await openTestDatabase("postgres");
try {
  await populate(before);
  await populate(after);
  const ctxBefore = { ...before.ctx, env: { ...before.ctx.env, sealMaxBatch: 10_000 } };
  const ctxAfter = { ...after.ctx, env: { ...after.ctx.env, sealMaxBatch: 10_000 } };
  const oldSeal = () =>
    sealOnce(ledgerStore(ctxBefore.db), {
      origin: ctxBefore.env.logOrigin,
      maxBatch: 10_000,
      crypto: ctxBefore.crypto,
      signer: ctxBefore.signer,
    });
  const ms = [0, 0];
  for (let more = true; more; ) {
    let t0 = Date.now();
    more = (await oldSeal()) !== null; // the sealer before 0023 (no partitions to make)
    ms[0] += Date.now() - t0;
    t0 = Date.now();
    more = (await sealNow(ctxAfter)) !== null || more;
    ms[1] += Date.now() - t0;
  }
  await before.database.execute(`VACUUM ANALYZE ledger_entries`);
  await after.database.execute(`VACUUM ANALYZE ledger_entries`);
  const [usBefore, usAfter] = await lookups([before, after]);
  const plan = await after.database.execute(
    `EXPLAIN SELECT * FROM ledger_entries WHERE id = '00000000-0000-4000-8000-000000000001'`,
  );
  await after.database.execute(`SELECT trialseal_ledger_partition(n) FROM generate_series(2, 21) n`);
  await after.database.execute(`VACUUM ANALYZE ledger_entries`);
  const [usBefore2, usAfter22] = await lookups([before, after]);
  const out = {
    entries: N,
    sealPerSec: { before: Math.round((N / ms[0]) * 1000), after: Math.round((N / ms[1]) * 1000) },
    lookupUs: { before: usBefore, after3Partitions: usAfter, beforeAgain: usBefore2, after22Partitions: usAfter22 },
    plan: plan.map((r) => String(r["QUERY PLAN"]).trim()).join(" | "),
  };
  console.log(JSON.stringify(out, null, 1));
  console.log(
    `seal: ${out.sealPerSec.before}/s before, ${out.sealPerSec.after}/s after ` +
      `(${(ms[0] / ms[1]).toFixed(2)}x); lookup by id: ${usBefore.toFixed(0)} us before, ${usAfter.toFixed(0)} us ` +
      `after (3 partitions, ${(usAfter / usBefore).toFixed(2)}x); ${usBefore2.toFixed(0)} us before vs ` +
      `${usAfter22.toFixed(0)} us with 22 partitions (${(usAfter22 / usBefore2).toFixed(2)}x)`,
  );
} finally {
  await before.close();
  await after.close();
}
process.exit(0);
