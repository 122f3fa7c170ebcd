/**
 * `npm run bench:large` (issue 19; not in CI): the log at scale on PostgreSQL. BENCH_ENTRIES entries (default
 * 10,000,000) of one study are bulk-inserted into a scratch database with generate_series (as `npm run bench` builds
 * its 1M-entry log), sealed by the real sealer (batches of 10,000), then proof bundles are served for 1,000 random
 * entries (p50/p95/p99 beside three `select 1` round trips) and the whole-log audit runs, against the baseline of
 * only reading the same rows, then once more with V8's old space capped (bench/audit.ts HEAP_CAP_MB: what the audit
 * holds, without the collector's slack). Each phase runs in its own child process, so the peak RSS printed for it is
 * its own (sampled every 25 ms from process.memoryUsage().rss). Writes bench/results-large.json.
 *
 * BENCH_DB=name reuses a scratch database left by BENCH_KEEP_DB=1 (its DATA_DIR, with the log key, is kept beside
 * it in the temp directory): ingest and seal are skipped. Disk: 0.90 GB per million entries (measured at 1M and
 * printed as `database size`), so 10M needs about 9-10 GB free under /var/lib/postgresql, plus WAL while loading.
 */
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import postgres from "postgres";
import { childPhase, HEAP_CAP_MB, type PhaseResult } from "./audit.ts";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ADMIN_URL = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const STUDY_ID = "00000000-0000-4000-8000-00000000b001";
const MB = 1024 * 1024;

type Phase = "ingest" | "seal" | "proofs" | "read" | "audit";

function dbUrl(name: string) {
  const u = new URL(ADMIN_URL);
  u.pathname = `/${name}`;
  return u.toString();
}
const dataDirOf = (name: string) => path.join(tmpdir(), name);

/** Peak RSS of this process from now on (sampled). */
export function rssSampler(everyMs = 25) {
  const startRss = process.memoryUsage().rss;
  let peakRss = startRss;
  let peakHeap = process.memoryUsage().heapUsed;
  const t = setInterval(() => {
    const m = process.memoryUsage();
    peakRss = Math.max(peakRss, m.rss);
    peakHeap = Math.max(peakHeap, m.heapUsed);
  }, everyMs);
  t.unref();
  return () => {
    clearInterval(t);
    const m = process.memoryUsage();
    peakRss = Math.max(peakRss, m.rss);
    return { startRssMb: startRss / MB, peakRssMb: peakRss / MB, peakHeapMb: peakHeap / MB };
  };
}

function pct(xs: number[], p: number) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

/** One phase in this (child) process. */
async function runPhase(phase: Phase, name: string, entries: number): Promise<Record<string, unknown>> {
  const { parseEnv } = await import("../app/platform/env.server.ts");
  const { openDatabase } = await import("../db/client.ts");
  const { contextFor } = await import("../app/platform/context.server.ts");
  const env = parseEnv({
    NODE_ENV: "test",
    DATA_DIR: dataDirOf(name),
    SESSION_SECRET: "b".repeat(40),
    DATA_KEY: "22".repeat(32),
    DATABASE_URL: dbUrl(name),
  });
  const database = await openDatabase({ url: dbUrl(name), migrate: phase === "ingest" });
  const ctx = contextFor(env, database);
  try {
    if (phase === "ingest") {
      await database.execute(`INSERT INTO studies (id, code, title) VALUES ('${STUDY_ID}', 'BENCH', 'Bench')`);
      // Valid site.added payloads (JCS text, hashed by PostgreSQL), inserted pending as services would.
      for (let lo = 0; lo < entries; lo += 200_000) {
        const hi = Math.min(entries, lo + 200_000);
        await database.execute(`
          INSERT INTO ledger_entries (study_id, study_code, kind, payload_text, payload_hash, at)
          SELECT '${STUDY_ID}', 'BENCH', 'site.added', p, sha256(convert_to(p, 'UTF8')),
                 timestamptz '2026-01-01' + (i || ' milliseconds')::interval
            FROM (SELECT i, '{"actor":null,"salt":"' || substr(md5(i::text), 1, 22) || '","site":"S' || i
                         || '","v":1}' AS p
                    FROM generate_series(${lo}, ${hi - 1}) AS i) s`);
      }
      return {};
    }
    if (phase === "seal") {
      const { sealAll } = await import("../app/log/sealer.server.ts");
      const made = await sealAll({ ...ctx, env: { ...ctx.env, sealMaxBatch: 10_000 } });
      return { batches: made.length };
    }
    if (phase === "proofs") {
      const { findEntryByRef, proofBundle } = await import("../app/log/proofs.server.ts");
      const t0 = process.hrtime.bigint();
      await proofBundle(ctx, (await findEntryByRef(ctx, "0"))!);
      const firstMs = Number(process.hrtime.bigint() - t0) / 1e6;
      const lat: number[] = [];
      for (let k = 0; k < 1000; k++) {
        const seq = Math.floor(Math.random() * entries);
        const t = process.hrtime.bigint();
        const r = await proofBundle(ctx, (await findEntryByRef(ctx, String(seq)))!);
        lat.push(Number(process.hrtime.bigint() - t) / 1e6);
        if (r.status !== "sealed") throw new Error(`entry ${seq} is not sealed`);
      }
      const rtt: number[] = [];
      for (let k = 0; k < 1000; k++) {
        const t = process.hrtime.bigint();
        for (let j = 0; j < 3; j++) await database.execute("select 1");
        rtt.push(Number(process.hrtime.bigint() - t) / 1e6);
      }
      return {
        firstMs,
        p50Ms: pct(lat, 50),
        p95Ms: pct(lat, 95),
        p99Ms: pct(lat, 99),
        roundTrips3P50Ms: pct(rtt, 50),
        roundTrips3P95Ms: pct(rtt, 95),
        roundTrips3P99Ms: pct(rtt, 99),
        ratioP99: pct(lat, 99) / pct(rtt, 99),
      };
    }
    const { auditPhase } = await import("./audit.ts");
    return await auditPhase(ctx, phase === "read" ? "read" : "audit", entries);
  } finally {
    await database.close();
  }
}

async function child(phase: Phase, name: string, entries: number) {
  const stop = rssSampler();
  const t0 = performance.now();
  const r = await runPhase(phase, name, entries);
  const seconds = (performance.now() - t0) / 1000;
  const mem = stop();
  process.stdout.write(`${JSON.stringify({ ...r, seconds, ...mem })}\n`);
}

async function main() {
  const entries = Number(process.env.BENCH_ENTRIES ?? 10_000_000);
  if (!Number.isInteger(entries) || entries < 1) throw new Error("BENCH_ENTRIES must be a whole number");
  const reuse = process.env.BENCH_DB;
  const keep = process.env.BENCH_KEEP_DB === "1" || !!reuse;
  const name = reuse ?? `ts_large_${randomBytes(4).toString("hex")}`;
  const admin = postgres(ADMIN_URL, { max: 1, onnotice: () => {} });
  const self = fileURLToPath(import.meta.url);
  const results: Record<string, unknown> = {
    at: new Date().toISOString(),
    node: process.version,
    entries,
    database: name,
  };
  const fmtS = (s: number) => `${s.toFixed(1)} s`;
  const row = (label: string, r: PhaseResult, extra = "") =>
    console.log(
      `${label.padEnd(34)} ${fmtS(r.seconds).padStart(9)}   peak RSS ${r.peakRssMb.toFixed(0).padStart(5)} MB` +
        `${extra ? `   ${extra}` : ""}`,
    );
  try {
    const [dfRow] = await admin`select setting from pg_settings where name = 'data_directory'`;
    console.log(`== bench:large: ${entries.toLocaleString("en")} entries (PostgreSQL data in ${dfRow.setting}) ==`);
    if (!reuse) {
      if (existsSync(dataDirOf(name))) throw new Error(`${dataDirOf(name)} exists`);
      mkdirSync(dataDirOf(name), { recursive: true });
      await admin.unsafe(`CREATE DATABASE ${name}`);
      const ingest = await childPhase(self, ["--phase", "ingest", name, String(entries)]);
      row("ingest (generate_series)", ingest, `${Math.round(entries / ingest.seconds)} entries/s`);
      const seal = await childPhase(self, ["--phase", "seal", name, String(entries)]);
      row("seal (real sealer, 10,000/batch)", seal, `${Math.round(entries / seal.seconds)} entries/s`);
      const t = performance.now();
      const vac = postgres(dbUrl(name), { max: 1, onnotice: () => {} });
      await vac.unsafe("VACUUM ANALYZE ledger_entries");
      await vac.unsafe("VACUUM ANALYZE batches");
      await vac.end();
      const vacuumSeconds = (performance.now() - t) / 1000;
      console.log(`${"vacuum analyze".padEnd(34)} ${fmtS(vacuumSeconds).padStart(9)}`);
      Object.assign(results, { ingest, seal, vacuumSeconds });
    }
    const [size] = await admin`select pg_database_size(${name})::bigint AS b`;
    const dbGb = Number(size.b) / 1024 ** 3;
    console.log(
      `${"database size".padEnd(34)} ${`${dbGb.toFixed(2)} GB`.padStart(9)}   ` +
        `(${((dbGb * 1e6) / entries).toFixed(2)} GB per million entries)`,
    );
    results.databaseGb = dbGb;
    const proofs = await childPhase(self, ["--phase", "proofs", name, String(entries)]);
    const ms = (x: unknown) => `${Number(x).toFixed(2)} ms`;
    row("proofs (1,000 random entries)", proofs);
    console.log(
      `${"  proof p50 / p95 / p99".padEnd(34)} ${ms(proofs.p50Ms)} / ${ms(proofs.p95Ms)} / ${ms(proofs.p99Ms)}   ` +
        `3 x select 1: ${ms(proofs.roundTrips3P50Ms)} / ${ms(proofs.roundTrips3P95Ms)} / ` +
        `${ms(proofs.roundTrips3P99Ms)}   p99 ratio ${Number(proofs.ratioP99).toFixed(2)} (target <= 3)`,
    );
    results.proofs = proofs;
    const read = await childPhase(self, ["--phase", "read", name, String(entries)]);
    row(
      "read the log's rows (baseline)",
      read,
      `raw ${fmtS(Number(read.rawSeconds))}, ` + `through drizzle ${fmtS(Number(read.drizzleSeconds))}`,
    );
    const audit = await childPhase(self, ["--phase", "audit", name, String(entries)]);
    const ratio = Number(audit.auditSeconds) / Number(read.rawSeconds);
    row(
      "whole-log audit",
      audit,
      `${Math.round(entries / audit.seconds)} entries/s, ratio to reading ${ratio.toFixed(2)} (target <= 4), ` +
        `${audit.clean ? "clean" : `${audit.findings} findings`}`,
    );
    const capped = await childPhase(self, ["--phase", "audit", name, String(entries)], {
      NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ""} --max-old-space-size=${HEAP_CAP_MB}`.trim(),
    });
    const cappedRatio = Number(capped.auditSeconds) / Number(read.rawSeconds);
    row(`audit, old space capped ${HEAP_CAP_MB} MB`, capped, `ratio to reading ${cappedRatio.toFixed(2)}`);
    results.auditRead = read;
    results.audit = { ...audit, ratio };
    results.auditHeapCapped = { ...capped, heapCapMb: HEAP_CAP_MB, ratio: cappedRatio };
    const out = path.join(HERE, "results-large.json");
    writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`);
    console.log(`wrote ${out}${keep ? `; kept database ${name} (BENCH_DB=${name} reuses it)` : ""}`);
    if (!audit.clean || !capped.clean) process.exitCode = 1;
  } finally {
    if (!keep) await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.end();
  }
}

if (process.argv[2] === "--phase") {
  await child(process.argv[3] as Phase, process.argv[4], Number(process.argv[5]));
  process.exit(0);
} else if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await main();
}
