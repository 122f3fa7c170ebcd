/**
 * Proof bundles served from a sealed log (ADR 0047), called by `npm run bench` (bench/run.ts) on its 1M-entry log.
 * Each request is an entry read by seq plus `proofBundle`, as the API route does. Requests alternate with the
 * baseline (three `select 1` round trips) so that a busy machine slows both alike. Figures: warm (the batch's
 * context is in the proof cache: the portal's steady state once a batch has been asked for) and cold (the cache
 * emptied before each request), and the verification of every bundle served (after serving, so that the verifier's
 * allocations do not land in the serving latencies).
 */
import type { Database } from "../db/client.ts";
import type { AppContext } from "../app/platform/context.server.ts";
import { clearProofCache, findEntryByRef, proofBundle, proofCacheStats } from "../app/log/proofs.server.ts";
import { verifyBundle } from "../anchoring/verifier/verify-bundle.ts";
import { nodeCrypto } from "../anchoring/adapters/crypto-node.ts";
import type { TrustPolicy } from "../anchoring/verifier/trust-policy.ts";

function pct(xs: number[], p: number) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}
async function timeAsync(fn: () => Promise<unknown>): Promise<number> {
  const t = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t) / 1e6;
}

export interface ProofFigures {
  requests: number;
  warm: { p50: number; p95: number; p99: number };
  cold: { p50: number; p95: number; p99: number; requests: number };
  roundTrips3: { p50: number; p95: number; p99: number };
  ratioP99: number;
  coldRatioP99: number;
  firstMs: number;
  warmUpMs: number;
  verifyP50Ms: number;
  verifyP99Ms: number;
  cache: ReturnType<typeof proofCacheStats>;
}

export async function benchProofServing(opts: {
  ctx: AppContext;
  database: Database;
  entries: number;
  batches: number;
  policy: TrustPolicy;
  requests?: number;
  coldRequests?: number;
}): Promise<ProofFigures> {
  const { ctx, database, entries } = opts;
  const requests = opts.requests ?? 1000;
  const coldRequests = opts.coldRequests ?? 200;
  const serve = async (seq: number) => proofBundle(ctx, (await findEntryByRef(ctx, String(seq)))!);
  const baseline = async () => {
    for (let j = 0; j < 3; j++) await database.execute("select 1");
  };
  clearProofCache();
  const firstMs = await timeAsync(() => serve(0));
  // Warm-up: one proof per batch (the cache holds every batch of this log; its bounds: ADR 0047).
  const per = Math.ceil(entries / opts.batches);
  const warmUpMs = await timeAsync(async () => {
    for (let b = 0; b < opts.batches; b++) await serve(Math.min(entries - 1, b * per));
  });
  const warm: number[] = [];
  const rtt: number[] = [];
  const served: { seq: number; r: Awaited<ReturnType<typeof serve>> }[] = [];
  for (let k = 0; k < requests; k++) {
    const seq = Math.floor(Math.random() * entries);
    let r: Awaited<ReturnType<typeof serve>> | undefined;
    warm.push(
      await timeAsync(async () => {
        r = await serve(seq);
      }),
    );
    served.push({ seq, r: r! });
    rtt.push(await timeAsync(baseline));
  }
  const cache = proofCacheStats();
  const cold: number[] = [];
  for (let k = 0; k < coldRequests; k++) {
    clearProofCache();
    const seq = Math.floor(Math.random() * entries);
    cold.push(await timeAsync(() => serve(seq)));
  }
  const vlat: number[] = [];
  for (const { seq, r } of served) {
    if (r.status !== "sealed") throw new Error(`entry ${seq} is not sealed`);
    vlat.push(
      await timeAsync(async () => {
        if ((await verifyBundle(nodeCrypto, r.bundle, opts.policy)).verdict !== "valid")
          throw new Error(`bundle ${seq} does not verify`);
      }),
    );
  }
  const q3 = (xs: number[]) => ({ p50: pct(xs, 50), p95: pct(xs, 95), p99: pct(xs, 99) });
  return {
    requests,
    warm: q3(warm),
    cold: { ...q3(cold), requests: coldRequests },
    roundTrips3: q3(rtt),
    ratioP99: pct(warm, 99) / pct(rtt, 99),
    coldRatioP99: pct(cold, 99) / pct(rtt, 99),
    firstMs,
    warmUpMs,
    verifyP50Ms: pct(vlat, 50),
    verifyP99Ms: pct(vlat, 99),
    cache,
  };
}

const fmt = (ms: number) =>
  ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : ms >= 1 ? `${ms.toFixed(1)} ms` : `${(ms * 1000).toFixed(1)} us`;

export function printProofs(f: ProofFigures, log: (s: string) => void = console.log): void {
  const row = (label: string, v: number, base: number, target?: string) =>
    log(
      `${label.padEnd(44)} ${fmt(v).padStart(10)}   baseline ${fmt(base).padStart(10)}   ratio ` +
        `${(v / base).toFixed(2).padStart(6)}${target ? `   target ${target}` : ""}`,
    );
  log(`${"verify a served bundle, p50 / p99".padEnd(44)} ${`${fmt(f.verifyP50Ms)} / ${fmt(f.verifyP99Ms)}`}`);
  row("proof bundle served, p50 (vs 3 x select 1)", f.warm.p50, f.roundTrips3.p50);
  row("proof bundle served, p95 (vs 3 x select 1)", f.warm.p95, f.roundTrips3.p95);
  row("proof bundle served, p99 (vs 3 x select 1)", f.warm.p99, f.roundTrips3.p99, "<= 3x");
  row("  cold (cache emptied first), p50", f.cold.p50, f.roundTrips3.p50);
  row("  cold (cache emptied first), p99", f.cold.p99, f.roundTrips3.p99);
  log(
    `${"  first request; warm-up (1 proof per batch)".padEnd(44)} ${`${fmt(f.firstMs)}; ${fmt(f.warmUpMs)}`}` +
      `   cache: ${f.cache.batches} batches, ${(f.cache.bytes / 2 ** 20).toFixed(1)} MiB, ${f.cache.hits} hits, ` +
      `${f.cache.misses} misses, ${f.cache.stale} stale, ${f.cache.rejected} rejected`,
  );
}

/** `npx tsx bench/proofs.ts [entries]`: this section alone, on a fresh PostgreSQL database (dropped afterwards). */
async function main(entries: number) {
  const { randomBytes } = await import("node:crypto");
  const { tmpdir } = await import("node:os");
  const path = await import("node:path");
  const postgres = (await import("postgres")).default;
  const { parseEnv } = await import("../app/platform/env.server.ts");
  const { openDatabase } = await import("../db/client.ts");
  const { contextFor } = await import("../app/platform/context.server.ts");
  const { sealAll } = await import("../app/log/sealer.server.ts");
  const { trustPolicy } = await import("../app/keys/log-keys.server.ts");
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
    for (let lo = 0; lo < entries; lo += 200_000) {
      const hi = Math.min(entries, lo + 200_000);
      await database.execute(`
        INSERT INTO ledger_entries (study_id, study_code, kind, payload_text, payload_hash, at)
        SELECT '00000000-0000-4000-8000-00000000b001', 'BENCH', 'site.added', p, sha256(convert_to(p, 'UTF8')),
               timestamptz '2026-01-01' + (i || ' milliseconds')::interval
          FROM (SELECT i, '{"actor":null,"salt":"' || substr(md5(i::text), 1, 22) || '","site":"S' || i
                       || '","v":1}' AS p FROM generate_series(${lo}, ${hi - 1}) AS i) s`);
    }
    const t1 = Date.now();
    const made = await sealAll({ ...ctx, env: { ...ctx.env, sealMaxBatch: 10_000 } });
    console.log(`setup: ${entries} entries sealed in ${made.length} batches in ${(Date.now() - t1) / 1000} s`);
    await database.execute(`VACUUM ANALYZE ledger_entries`);
    await database.execute(`VACUUM ANALYZE batches`);
    const policy = trustPolicy(ctx.crypto, env.logOrigin, ctx.signer);
    const f = await benchProofServing({ ctx, database, entries, batches: made.length, policy });
    printProofs(f);
    console.log(JSON.stringify(f));
    await database.close();
  } finally {
    await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.end();
  }
}

if (process.argv[1] && import.meta.url === (await import("node:url")).pathToFileURL(process.argv[1]).href)
  await main(Number(process.argv[2] ?? 1_000_000));
