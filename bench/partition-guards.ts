/**
 * ADR 0045 follow-up: what the statement guards of migration 0023 cost, in one run on PostgreSQL: two partitioned
 * databases, one with the guards and one without (`ledger_entries_inserted_pending` and the DELETE/INSERT statement
 * triggers dropped). (1) the ingest path: single-row INSERT statements of pending entries and 100-row ones, in
 * blocks taking turns; (2) the seal of the same N pending entries, batches of 10,000 taking turns.
 * `node --import tsx bench/partition-guards.ts [N]` (default 50,000). Not part of `npm run bench`.
 */
import { sealNow } from "../app/log/sealer.server.ts";
import { openTestDatabase, type TestDb } from "../test/helpers/db.ts";

const N = Number(process.argv[2] ?? 50_000);
process.env.TEST_DB_ENGINE = "postgres";
const row = (i: number) =>
  `('00000000-0000-4000-8000-00000000b001', 'BENCH', 'site.added', '{"i":${i}}', sha256('${i}'), now())`;
const cols = "(study_id, study_code, kind, payload_text, payload_hash, at)";

const dbs: TestDb[] = [await openTestDatabase("postgres"), await openTestDatabase("postgres")];
const order = process.env.SWAP ? [1, 0] : [0, 1]; // SWAP=1: the bare database takes its turn first
try {
  const [guarded, bare] = dbs;
  for (const tg of [
    "ledger_entries_inserted_pending ON ledger_entries",
    "ledger_entries_no_delete_statement ON ledger_entries",
    "ledger_entries_pending_no_delete_statement ON ledger_entries_pending",
    "ledger_entries_s0_no_insert_delete ON ledger_entries_s0",
    "ledger_entries_s1_no_insert_delete ON ledger_entries_s1",
  ])
    await bare.database.execute(`DROP TRIGGER ${tg}`);
  for (const t of dbs)
    await t.database.execute(
      `INSERT INTO studies (id, code, title) VALUES ('00000000-0000-4000-8000-00000000b001', 'BENCH', 'Bench')`,
    );
  const ins1 = [0, 0];
  const ins100 = [0, 0];
  let k = 0;
  for (let block = 0; block < 10; block++)
    for (const d of order) {
      let t0 = process.hrtime.bigint();
      for (let i = 0; i < 200; i++)
        await dbs[d].database.execute(`INSERT INTO ledger_entries ${cols} VALUES ${row(k++)}`);
      ins1[d] += Number(process.hrtime.bigint() - t0) / 1e6;
      t0 = process.hrtime.bigint();
      for (let i = 0; i < 20; i++)
        await dbs[d].database.execute(
          `INSERT INTO ledger_entries ${cols} VALUES ${Array.from({ length: 100 }, () => row(k++)).join(", ")}`,
        );
      ins100[d] += Number(process.hrtime.bigint() - t0) / 1e6;
    }
  for (const t of dbs)
    await t.database.execute(`
      INSERT INTO ledger_entries ${cols}
      SELECT '00000000-0000-4000-8000-00000000b001', 'BENCH', 'site.added', '{"g":' || i || '}',
             sha256(i::text::bytea), now()
        FROM generate_series(1, ${N}) i`);
  const ctxs = dbs.map((t) => ({ ...t.ctx, env: { ...t.ctx.env, sealMaxBatch: 10_000 } }));
  const ms = [0, 0];
  for (let more = true; more; ) {
    more = false;
    for (const i of order) {
      const t0 = Date.now();
      more = (await sealNow(ctxs[i])) !== null || more;
      ms[i] += Date.now() - t0;
    }
  }
  const total = Number(
    (await guarded.database.execute(`SELECT count(*)::int AS n FROM ledger_entries WHERE seq IS NOT NULL`))[0].n,
  );
  const us1 = ins1.map((x) => ((x / 2000) * 1000).toFixed(0));
  const ms100 = ins100.map((x) => (x / 200).toFixed(2));
  const rate = ms.map((x) => Math.round((total / x) * 1000));
  console.log(
    `single-row INSERT: ${us1[0]} us guarded, ${us1[1]} us bare (${(ins1[0] / ins1[1]).toFixed(2)}x); ` +
      `100-row INSERT: ${ms100[0]} ms guarded, ${ms100[1]} ms bare (${(ins100[0] / ins100[1]).toFixed(2)}x); ` +
      `seal of ${total} entries: ${rate[0]}/s guarded, ${rate[1]}/s bare (${(ms[1] / ms[0]).toFixed(2)}x)`,
  );
} finally {
  for (const t of dbs) await t.close();
}
process.exit(0);
