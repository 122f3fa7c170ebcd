/**
 * `npm run bench`: integrity-core benchmarks. Each figure is printed next to a baseline measured in the same
 * run, as a ratio; medians of repeated runs (machines here are small and noisy). Writes bench/results.json.
 * Not part of `npm test`. BENCH_QUICK=1 shrinks the sizes for a smoke run.
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import postgres from "postgres";
import { nodeCrypto } from "../anchoring/adapters/crypto-node.ts";
import { nobleCrypto } from "../anchoring/log/crypto-noble.ts";
import { verifyBundle } from "../anchoring/verifier/verify-bundle.ts";
import { buildLog, POLICY } from "../test/vectors/bundles/generate.ts";
import { parseEnv } from "../app/platform/env.server.ts";
import { openDatabase } from "../db/client.ts";
import { contextFor } from "../app/platform/context.server.ts";
import { sealAll } from "../app/log/sealer.server.ts";
import { trustPolicy } from "../app/keys/log-keys.server.ts";
import { benchIngest } from "./ingest.ts";
import { benchHttp } from "./http.ts";
import { benchAudit, HEAP_CAP_MB } from "./audit.ts";
import { benchGas } from "./gas.ts";
import { ensureBuilt } from "../test/helpers/portal.ts";
import { benchCli, printCli } from "./cli.ts";
import { benchPackageMemory } from "./package-memory.ts";
import { benchImport, printImport } from "./import.ts";
import { benchMerkle } from "./merkle.ts";
import { benchProofServing, printProofs } from "./proofs.ts";
import { benchBatchApi, printBatchApi } from "./batch-api.ts";

const QUICK = process.env.BENCH_QUICK === "1";
const results: Record<string, unknown> = { at: new Date().toISOString(), node: process.version, quick: QUICK };

function median(xs: number[]) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}
function time(fn: () => unknown): number {
  const t = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t) / 1e6;
}
async function timeAsync(fn: () => Promise<unknown>): Promise<number> {
  const t = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t) / 1e6;
}
async function repeatAsync(n: number, fn: () => Promise<unknown>): Promise<number> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(await timeAsync(fn));
  return median(out);
}
const fmt = (ms: number) =>
  ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : ms >= 1 ? `${ms.toFixed(1)} ms` : `${(ms * 1000).toFixed(1)} us`;
const line = (label: string, value: string, baseline: string, ratio: number, target?: string) =>
  console.log(
    `${label.padEnd(44)} ${value.padStart(10)}   baseline ${baseline.padStart(10)}   ratio ` +
      `${ratio.toFixed(2).padStart(6)}${target ? `   target ${target}` : ""}`,
  );

// ---------------------------------------------------------------- Merkle (bench/merkle.ts, ADR 0046)
console.log("\n== Merkle trees: level hashing vs the per-call crypto.hash floor, per-call levels, merkletreejs ==");
results.merkle = benchMerkle(QUICK ? [1_000, 10_000] : [1_000, 10_000, 100_000, 1_000_000]);

// ---------------------------------------------------------------- offline bundle verification
console.log("\n== Offline bundle verification ==");
const { bundles } = buildLog();
const iters = 2000;
const nodeMs =
  (await repeatAsync(5, async () => {
    for (let i = 0; i < iters; i++) await verifyBundle(nodeCrypto, bundles[i % bundles.length], POLICY);
  })) / iters;
const nobleMs =
  (await repeatAsync(3, async () => {
    for (let i = 0; i < 200; i++) await verifyBundle(nobleCrypto, bundles[i % bundles.length], POLICY);
  })) / 200;
line("verify one bundle, node:crypto", fmt(nodeMs), "1 ms", nodeMs / 1, "< 1 ms");
line("verify one bundle, @noble (browser)", fmt(nobleMs), fmt(nodeMs), nobleMs / nodeMs);
results.verify = { nodeMsPerBundle: nodeMs, nobleMsPerBundle: nobleMs };

// ---------------------------------------------------------------- ingest
const adminUrlIngest = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
console.log("\n== Ingest through the service layer, 16 concurrent writers (PostgreSQL) ==");
const ing = await benchIngest(adminUrlIngest, { writers: 16, subjectsPerWriter: QUICK ? 2 : 10, log: console.log });
line(
  "records/s through saveRecord (vs plain INSERT)",
  `${Math.round(ing.servicePerSec)}/s`,
  `${Math.round(ing.plainPerSec)}/s`,
  ing.speedup,
  ">= 2.5x",
);
const serviceLatency = ing.serviceLatencyMs;
const serviceLatencies = `${fmt(serviceLatency.p50)} / ${fmt(serviceLatency.p95)} / ${fmt(serviceLatency.p99)}`;
console.log(`${"  saveRecord latency p50 / p95 / p99".padEnd(44)} ${serviceLatencies.padStart(10)}`);
line(
  "seal merge delay p50 (vs SEAL_INTERVAL_MS)",
  fmt(ing.mergeDelayMs.p50),
  fmt(ing.sealIntervalMs),
  ing.mergeDelayMs.p50 / ing.sealIntervalMs,
);
line(
  "seal merge delay p99 (vs SEAL_INTERVAL_MS)",
  fmt(ing.mergeDelayMs.p99),
  fmt(ing.sealIntervalMs),
  ing.mergeDelayMs.p99 / ing.sealIntervalMs,
  "<= 2 s",
);
results.ingest = ing;

console.log("\n== HTTP: POST /api/v1/studies/:code/records vs authenticated GET /forms, autocannon ==");
ensureBuilt();
const http = await benchHttp(adminUrlIngest, { rate: 200, connections: 50, seconds: QUICK ? 5 : 20, log: console.log });
line(
  `HTTP POST p50 at ${http.rate}/s (vs GET forms)`,
  fmt(http.post.latencyMs.p50),
  fmt(http.get.latencyMs.p50),
  http.post.latencyMs.p50 / http.get.latencyMs.p50,
);
line(
  `HTTP POST p99 at ${http.rate}/s (vs GET forms)`,
  fmt(http.post.latencyMs.p99),
  fmt(http.get.latencyMs.p99),
  http.post.latencyMs.p99 / http.get.latencyMs.p99,
  "<= 100 ms, <= 3x",
);
const hp = http.post;
const httpTail = `${fmt(hp.latencyMs.p97_5)} / ${fmt(hp.latencyMs.max)}; ${hp.non2xx}; ${hp.errors}`;
console.log(`${"  POST p97.5 / max; non-2xx; errors".padEnd(44)} ${httpTail.padStart(10)}`);
console.log(
  `${`  POST closed loop, ${http.closed.connections} connections`.padEnd(44)} ` +
    `${`${Math.round(http.closed.perSec)}/s, p99 ${fmt(http.closed.latencyMs.p99)}`.padStart(10)}`,
);
results.http = http;

// ---------------------------------------------------------------- proofs served from PostgreSQL
const entries = QUICK ? 20_000 : 1_000_000;
console.log(`\n== Proof bundles served for random entries of a ${entries}-entry log (PostgreSQL, real sealer) ==`);
const adminUrl = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const name = `ts_bench_${randomBytes(4).toString("hex")}`;
const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
await admin.unsafe(`CREATE DATABASE ${name}`);
const url = new URL(adminUrl);
url.pathname = `/${name}`;
try {
  const env = parseEnv({
    NODE_ENV: "test",
    DATA_DIR: path.join(tmpdir(), name),
    SESSION_SECRET: "b".repeat(40),
    DATA_KEY: "22".repeat(32),
    DATABASE_URL: url.toString(),
  });
  const database = await openDatabase({ url: url.toString() });
  const ctx = contextFor(env, database);
  await database.execute(
    `INSERT INTO studies (id, code, title) VALUES ('00000000-0000-4000-8000-00000000b001', 'BENCH', 'Bench')`,
  );
  const tIns = time(() => {});
  const t0 = Date.now();
  // Valid site.added payloads (JCS text, hashed by PostgreSQL), inserted pending as services would.
  for (let lo = 0; lo < entries; lo += 200_000) {
    const hi = Math.min(entries, lo + 200_000);
    await database.execute(`
      INSERT INTO ledger_entries (study_id, study_code, kind, payload_text, payload_hash, at)
      SELECT '00000000-0000-4000-8000-00000000b001', 'BENCH', 'site.added', p, sha256(convert_to(p, 'UTF8')),
             timestamptz '2026-01-01' + (i || ' milliseconds')::interval
        FROM (SELECT i, '{"actor":null,"salt":"' || substr(md5(i::text), 1, 22) || '","site":"S' || i || '","v":1}' AS p
                FROM generate_series(${lo}, ${hi - 1}) AS i) s`);
  }
  const insertS = (Date.now() - t0) / 1000 + tIns;
  const t1 = Date.now();
  const made = await sealAll({ ...ctx, env: { ...ctx.env, sealMaxBatch: 10_000 } });
  const sealS = (Date.now() - t1) / 1000;
  console.log(
    `setup: inserted ${entries} entries in ${insertS.toFixed(1)} s; ` +
      `sealed ${made.length} batches in ${sealS.toFixed(1)} s (${Math.round(entries / sealS)} entries/s)`,
  );
  const policy = trustPolicy(ctx.crypto, env.logOrigin, ctx.signer);
  // What autovacuum would do after a bulk load, done now so it does not run in the middle of the measurement.
  await database.execute(`VACUUM ANALYZE ledger_entries`);
  await database.execute(`VACUUM ANALYZE batches`);
  // Warm (proof cache) and cold serving, alternating with the 3 x select 1 baseline (bench/proofs.ts, ADR 0047).
  const pf = await benchProofServing({ ctx, database, entries, batches: made.length, policy });
  printProofs(pf);
  console.log(`\n== Whole-log audit of the same ${entries}-entry log ==`);
  // Audit and baseline each in a child process (bench/audit.ts): the peak RSS is the audit's own.
  const au = await benchAudit(ctx, entries);
  line(
    `audit of ${entries} entries (vs reading them)`,
    fmt(au.seconds * 1000),
    fmt(au.readSeconds * 1000),
    au.ratio,
    "<= 4",
  );
  line(
    "  vs reading them through drizzle",
    fmt(au.seconds * 1000),
    fmt(au.readDrizzleSeconds * 1000),
    au.ratioToDrizzleRead,
  );
  console.log(
    `${"  entries/s; clean; findings".padEnd(44)} ` +
      `${`${Math.round(au.entriesPerSec)}/s; ${au.clean}; ${au.findings}`.padStart(10)}`,
  );
  line(
    "  audit peak RSS, MB (vs the read's)",
    au.peakRssMb.toFixed(0),
    au.readPeakRssMb.toFixed(0),
    au.peakRssMb / au.readPeakRssMb,
    "<= 300 MB",
  );
  const start = `${au.startRssMb.toFixed(0)} MB, ${au.peakHeapMb.toFixed(0)} MB`;
  console.log(`${"  audit process: RSS at start, peak heap".padEnd(44)} ${start.padStart(10)}`);
  line(
    `  peak RSS, MB, old space capped at ${HEAP_CAP_MB} MB`,
    au.capped.peakRssMb.toFixed(0),
    au.readPeakRssMb.toFixed(0),
    au.capped.peakRssMb / au.readPeakRssMb,
    "<= 300 MB",
  );
  console.log(
    `${"  capped: audit time (ratio to reading)".padEnd(44)} ` +
      `${fmt(au.capped.seconds * 1000).padStart(10)}   (${(au.capped.seconds / au.readSeconds).toFixed(2)})`,
  );
  results.audit = au;
  results.proofs = {
    entries,
    batches: made.length,
    insertSeconds: insertS,
    sealSeconds: sealS,
    sealEntriesPerSec: entries / sealS,
    ...pf,
  };
  await database.close();
} finally {
  await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.end();
}

// ---------------------------------------------------------------- anchoring cost
console.log("\n== Anchoring cost on the local EVM node (Hardhat) ==");
const intervalMs = Number(process.env.EVM_ANCHOR_INTERVAL_MS ?? 300_000); // the default of EVM_ANCHOR_INTERVAL_MS
const gas = await benchGas(intervalMs);
line(
  "gas per anchor, steady state (vs a transfer)",
  String(gas.steadyAnchorGas),
  String(gas.transferGas),
  gas.ratioToTransfer,
  "<= 30000",
);
console.log(
  `${"  first anchor (cold storage slot); deploy".padEnd(44)} ` +
    `${`${gas.firstAnchorGas}; ${gas.deployGas}`.padStart(10)}`,
);
console.log(
  `${"  anchors per hour at the default cadence".padEnd(44)} ${gas.anchorsPerHour.toFixed(0).padStart(10)}   ` +
    `(${(gas.gasPerDay / 1e6).toFixed(2)}M gas/day, whatever the entry count)`,
);
for (const [n, g] of Object.entries(gas.gasPerEntry))
  console.log(
    `${`  gas per entry at ${Number(n).toLocaleString("en")} entries per anchor`.padEnd(44)} ` +
      `${g.toFixed(3).padStart(10)}`,
  );
results.gas = gas;

// ---------------------------------------------------------------- verify-package memory (issue 16 item 6)
console.log("\n== verify-package peak memory for a genuine package of N entries (child process RSS) ==");
results.packageMemory = await benchPackageMemory(QUICK ? [2_000, 5_000] : [10_000, 40_000]);

// ---------------------------------------------------------------- import of existing data (issue 18, ADR 0037)
console.log("\n== Import 100,000 values from a CSV file on PostgreSQL (one job, one transaction) ==");
results.import = await benchImport(adminUrlIngest);
printImport(results.import as Awaited<ReturnType<typeof benchImport>>);

// ---------------------------------------------------------------- batch API (issue 19, ADR 0040)
console.log("\n== Batch API: saveRecordBatch, 1,000 records per call, vs COPY of the same rows (PostgreSQL) ==");
results.batchApi = await benchBatchApi(adminUrlIngest, { batches: QUICK ? 3 : 10 });
printBatchApi(results.batchApi as Awaited<ReturnType<typeof benchBatchApi>>);

// ---------------------------------------------------------------- CLI start-up (alone: npm run bench:cli)
console.log("\n== CLI start-up (bundle built ahead of time; ratios to node -e '' in the same run) ==");
results.cli = await benchCli({ adminUrl: adminUrlIngest, quick: QUICK, log: console.log });
printCli(results.cli as Awaited<ReturnType<typeof benchCli>>);

const out = path.join(path.dirname(fileURLToPath(import.meta.url)), "results.json");
mkdirSync(path.dirname(out), { recursive: true });
writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`);
console.log(`\nwrote ${out}`);
