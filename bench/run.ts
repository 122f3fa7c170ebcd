/**
 * `npm run bench`: integrity-core benchmarks. Each figure is printed next to a baseline measured in the same
 * run, as a ratio; medians of repeated runs (machines here are small and noisy). Writes bench/results.json.
 * Not part of `npm test`. BENCH_QUICK=1 shrinks the sizes for a smoke run.
 */
import { hash, createHash, randomBytes } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { MerkleTree } from "merkletreejs";
import postgres from "postgres";
import { nodeCrypto } from "../anchoring/adapters/crypto-node.ts";
import { nobleCrypto } from "../anchoring/log/crypto-noble.ts";
import { rootOf, verifyInclusion, leafHash } from "../anchoring/log/merkle.ts";
import { MerkleLevels } from "../anchoring/log/tree.ts";
import { verifyBundle } from "../anchoring/verifier/verify-bundle.ts";
import { buildLog, POLICY } from "../test/vectors/bundles/generate.ts";
import { parseEnv } from "../app/platform/env.server.ts";
import { openDatabase } from "../db/client.ts";
import { contextFor } from "../app/platform/context.server.ts";
import { sealAll } from "../app/log/sealer.server.ts";
import { findEntryByRef, proofBundle } from "../app/log/proofs.server.ts";
import { trustPolicy } from "../app/keys/log-keys.server.ts";
import { benchHttp, benchIngest } from "./ingest.ts";
import { benchAudit } from "./audit.ts";
import { benchGas } from "./gas.ts";
import { ensureBuilt } from "../test/helpers/portal.ts";
import { benchCli, printCli } from "./cli.ts";
import { benchPackageMemory } from "./package-memory.ts";
import { benchImport, printImport } from "./import.ts";

const QUICK = process.env.BENCH_QUICK === "1";
const results: Record<string, unknown> = { at: new Date().toISOString(), node: process.version, quick: QUICK };

function median(xs: number[]) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}
function pct(xs: number[], p: number) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}
function time(fn: () => unknown): number {
  const t = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t) / 1e6;
}
function repeat(n: number, fn: () => unknown): number {
  return median(Array.from({ length: n }, () => time(fn)));
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

// ---------------------------------------------------------------- Merkle
console.log("\n== Merkle trees (ours vs the raw per-call SHA-256 limit and merkletreejs) ==");
const sizes = QUICK ? [1_000, 10_000] : [1_000, 10_000, 100_000, 1_000_000];
const merkle: Record<string, unknown>[] = [];
for (const n of sizes) {
  const leaves = Array.from({ length: n }, (_, i) => leafHash(nodeCrypto, new TextEncoder().encode(`leaf ${i}`)));
  const reps = n >= 1_000_000 ? 3 : 5;
  const buf = new Uint8Array(65);
  buf[0] = 1;
  // Baseline: n-1 calls of crypto.hash on 65 bytes, doing nothing else: the per-call limit.
  const raw = repeat(reps, () => {
    for (let i = 1; i < n; i++) hash("sha256", buf, "buffer");
  });
  const levels = repeat(reps, () => MerkleLevels.fromLeaves(nodeCrypto, leaves).root());
  const stack = repeat(reps, () => rootOf(nodeCrypto, leaves));
  const tree = MerkleLevels.fromLeaves(nodeCrypto, leaves);
  // Exact: the level buffers the tree holds (the leaves themselves are level 0).
  const bytesPerLeaf = tree.byteLength / n;
  const sha = (d: Buffer) => createHash("sha256").update(d).digest();
  const mtLeaves = leaves.map((l) => Buffer.from(l));
  const mt =
    n <= 1_000_000
      ? repeat(n >= 1_000_000 ? 1 : 3, () =>
          new MerkleTree(mtLeaves, sha, {
            concatenator: ([l, r]: Buffer[]) => Buffer.concat([Buffer.from([1]), l, r]),
          }).getRoot(),
        )
      : NaN;
  const allPaths = time(() => {
    for (let i = 0; i < n; i++) tree.inclusionProof(i);
  });
  const root = tree.root();
  const proof = tree.inclusionProof(n >> 1);
  const verifyUs = repeat(5, () => {
    for (let k = 0; k < 1000; k++) verifyInclusion(nodeCrypto, n >> 1, n, leaves[n >> 1], proof, root);
  });
  line(`root over ${n} leaves (levels)`, fmt(levels), fmt(raw), levels / raw, "<= 1.2");
  line(`root over ${n} leaves (stack, O(log n) memory)`, fmt(stack), fmt(raw), stack / raw);
  line(`root over ${n} leaves, merkletreejs`, fmt(mt), fmt(levels), mt / levels);
  console.log(
    `${"  memory of the stored tree".padEnd(44)} ${bytesPerLeaf.toFixed(1).padStart(10)} B/leaf   target <= 80`,
  );
  console.log(
    `${"  all inclusion paths".padEnd(44)} ${fmt(allPaths).padStart(10)}   ` +
      `(${Math.round(n / (allPaths / 1000))} proofs/s)`,
  );
  console.log(
    `${"  inclusion verifications".padEnd(44)} ${Math.round(1000 / (verifyUs / 1000))
      .toString()
      .padStart(10)} /s`,
  );
  merkle.push({
    leaves: n,
    rawMs: raw,
    levelsMs: levels,
    stackMs: stack,
    merkletreejsMs: mt,
    ratioToRaw: levels / raw,
    bytesPerLeaf,
    allPathsMs: allPaths,
    verifyPerSec: 1000 / (verifyUs / 1000),
  });
}
results.merkle = merkle;

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
  ing.ratio,
  ">= 3000/s",
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

console.log("\n== Ingest over HTTP: POST /api/v1/studies/:code/records, autocannon, 50 connections ==");
ensureBuilt();
const http = await benchHttp(adminUrlIngest, { connections: 50, seconds: QUICK ? 5 : 20, log: console.log });
line(
  "HTTP records/s (vs GET forms, same stack)",
  `${Math.round(http.perSec)}/s`,
  `${Math.round(http.baselinePerSec)}/s`,
  http.perSec / http.baselinePerSec,
);
line(
  "HTTP latency p50 (vs GET forms)",
  fmt(http.latencyMs.p50),
  fmt(http.baselineLatencyMs.p50),
  http.latencyMs.p50 / http.baselineLatencyMs.p50,
);
line(
  "HTTP latency p99 (vs GET forms)",
  fmt(http.latencyMs.p99),
  fmt(http.baselineLatencyMs.p99),
  http.latencyMs.p99 / http.baselineLatencyMs.p99,
  "<= 100 ms",
);
const httpTail = `${fmt(http.latencyMs.p97_5)} / ${fmt(http.latencyMs.max)}; ${http.non2xx}; ${http.errors}`;
console.log(`${"  p97.5 / max; non-2xx; errors".padEnd(44)} ${httpTail.padStart(10)}`);
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
  const first = time(() => {});
  const t2 = process.hrtime.bigint();
  await proofBundle(ctx, (await findEntryByRef(ctx, "0"))!);
  const firstMs = Number(process.hrtime.bigint() - t2) / 1e6 + first;
  // Serving alone first (as the portal does: it never verifies what it serves), then verifying every bundle
  // served, so the verifier's allocations do not land in the serving latencies.
  const lat: number[] = [];
  const vlat: number[] = [];
  const served: { seq: number; bundle: Awaited<ReturnType<typeof proofBundle>> }[] = [];
  for (let k = 0; k < 1000; k++) {
    const seq = Math.floor(Math.random() * entries);
    const t = process.hrtime.bigint();
    const e = await findEntryByRef(ctx, String(seq));
    const r = await proofBundle(ctx, e!);
    lat.push(Number(process.hrtime.bigint() - t) / 1e6);
    served.push({ seq, bundle: r });
  }
  for (const { seq, bundle: r } of served) {
    if (r.status !== "sealed") throw new Error("not sealed");
    vlat.push(
      await timeAsync(async () => {
        if ((await verifyBundle(nodeCrypto, r.bundle, policy)).verdict !== "valid")
          throw new Error(`bundle ${seq} does not verify`);
      }),
    );
  }
  const warm = lat;
  // Baseline: three trivial round trips (what a proof costs at least: entry, batch + checkpoint, tree nodes).
  const rtt: number[] = [];
  for (let k = 0; k < 1000; k++) {
    const t = process.hrtime.bigint();
    for (let j = 0; j < 3; j++) await database.execute("select 1");
    rtt.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  line("verify a served bundle, p50 (node:crypto)", fmt(pct(vlat, 50)), "1 ms", pct(vlat, 50), "< 1 ms");
  line(
    "proof bundle served, p50 (vs 3 x select 1)",
    fmt(pct(warm, 50)),
    fmt(pct(rtt, 50)),
    pct(warm, 50) / pct(rtt, 50),
    "<= 10 ms",
  );
  line(
    "proof bundle served, p95 (vs 3 x select 1)",
    fmt(pct(warm, 95)),
    fmt(pct(rtt, 95)),
    pct(warm, 95) / pct(rtt, 95),
    "<= 10 ms",
  );
  line(
    "proof bundle served, p99 (vs 3 x select 1)",
    fmt(pct(warm, 99)),
    fmt(pct(rtt, 99)),
    pct(warm, 99) / pct(rtt, 99),
    "<= 10 ms",
  );
  console.log(`${"  first request (loads the batch-log tree)".padEnd(44)} ${fmt(firstMs).padStart(10)}`);
  line("verify a served bundle, p99 (node:crypto)", fmt(pct(vlat, 99)), "1 ms", pct(vlat, 99), "< 1 ms");
  console.log(`\n== Whole-log audit of the same ${entries}-entry log ==`);
  const au = await benchAudit(ctx, entries);
  line(
    `audit of ${entries} entries (vs reading them)`,
    fmt(au.seconds * 1000),
    fmt(au.readSeconds * 1000),
    au.ratio,
    "<= 60 s",
  );
  console.log(
    `${"  entries/s; clean; findings".padEnd(44)} ` +
      `${`${Math.round(au.entriesPerSec)}/s; ${au.clean}; ${au.findings}`.padStart(10)}`,
  );
  const memory = `${au.peakRssMb.toFixed(0)} MB (+${au.rssGrowthMb.toFixed(0)} MB), ${au.peakHeapMb.toFixed(0)} MB`;
  console.log(`${"  memory: peak RSS (growth), peak heap".padEnd(44)} ${memory.padStart(10)}`);
  results.audit = au;
  results.proofs = {
    entries,
    batches: made.length,
    insertSeconds: insertS,
    sealSeconds: sealS,
    sealEntriesPerSec: entries / sealS,
    serveP50Ms: pct(warm, 50),
    serveP95Ms: pct(warm, 95),
    serveP99Ms: pct(warm, 99),
    roundTrips3P50Ms: pct(rtt, 50),
    roundTrips3P99Ms: pct(rtt, 99),
    firstMs,
    verifyP99Ms: pct(vlat, 99),
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

// ---------------------------------------------------------------- CLI start-up (alone: npm run bench:cli)
console.log("\n== CLI start-up (bundle built ahead of time; ratios to node -e '' in the same run) ==");
results.cli = await benchCli({ adminUrl: adminUrlIngest, quick: QUICK, log: console.log });
printCli(results.cli as Awaited<ReturnType<typeof benchCli>>);

const out = path.join(path.dirname(fileURLToPath(import.meta.url)), "results.json");
mkdirSync(path.dirname(out), { recursive: true });
writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`);
console.log(`\nwrote ${out}`);
