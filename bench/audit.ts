/**
 * The whole-log audit over a large log (the 1M-entry log of `npm run bench`, the log of `npm run bench:large`): time
 * and peak memory, against the baseline of only reading the same rows. Each runs in its own child process
 * (bench/large.ts `--phase read|audit`), so the peak RSS (sampled every 25 ms) is the audit's own, not that of
 * whatever the benchmark process did before. The baseline reads every batch and its entries in seq order, as raw
 * rows over one cursor (the fastest way we have to read them: the I/O floor; everything the audit adds is
 * recomputation), and, for comparison with earlier runs, batch by batch through drizzle as the audit once did.
 */
import { spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { runIntegrityAudit } from "../app/integrity-audit/integrity-audit.server.ts";
import { batchesFrom, entriesInSeqRange, streamLogEntries } from "../db/queries/integrity-audit.ts";
import type { AppContext } from "../app/platform/context.server.ts";

export type PhaseResult = Record<string, unknown> & { seconds: number; peakRssMb: number; startRssMb: number };

/** Run one phase in a child process; its last stdout line is the phase's JSON. */
export function childPhase(script: string, args: string[], env: Record<string, string> = {}): Promise<PhaseResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", script, ...args], {
      stdio: ["ignore", "pipe", "inherit"],
      env: { ...process.env, ...env },
    });
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
    });
    child.on("error", reject);
    child.on("close", (code) => {
      const last = out.trim().split("\n").at(-1) ?? "";
      if (code !== 0) return reject(new Error(`${args.join(" ")} exited with ${code}: ${last}`));
      try {
        resolve(JSON.parse(last) as PhaseResult);
      } catch {
        reject(new Error(`${args.join(" ")} printed no result: ${last}`));
      }
    });
  });
}

export interface AuditBench {
  entries: number;
  seconds: number;
  readSeconds: number;
  readDrizzleSeconds: number;
  ratio: number;
  ratioToDrizzleRead: number;
  entriesPerSec: number;
  clean: boolean;
  findings: number;
  peakRssMb: number;
  startRssMb: number;
  readPeakRssMb: number;
  peakHeapMb: number;
  /** The same audit with V8's old space capped (HEAP_CAP_MB): what it holds, without the collector's slack. */
  capped: { seconds: number; peakRssMb: number; peakHeapMb: number; clean: boolean };
}

/** The old-space cap (MB) of the second audit run: `node --max-old-space-size`, as an operator may start the CLI. */
export const HEAP_CAP_MB = 128;

/** One side of the comparison, in this process (the child of bench/large.ts). */
export async function auditPhase(ctx: AppContext, mode: "read" | "audit", entries: number) {
  if (mode === "read") {
    const t0 = performance.now();
    let read = 0;
    for await (const page of streamLogEntries(ctx.db, 0)) read += page.length;
    const raw = (performance.now() - t0) / 1000;
    if (read !== entries) throw new Error(`read ${read} entries, expected ${entries}`);
    const t1 = performance.now();
    let last = -1;
    read = 0;
    for (;;) {
      const page = await batchesFrom(ctx.db, last, 200);
      if (!page.length) break;
      for (const b of page) {
        read += (await entriesInSeqRange(ctx.db, b.firstSeq, b.firstSeq + b.size)).length;
        last = b.batchNo;
      }
    }
    if (read !== entries) throw new Error(`read ${read} entries through drizzle, expected ${entries}`);
    return { entries: read, rawSeconds: raw, drizzleSeconds: (performance.now() - t1) / 1000 };
  }
  const t0 = performance.now();
  const report = await runIntegrityAudit(ctx);
  const auditSeconds = (performance.now() - t0) / 1000;
  if (report.checked.entries !== entries)
    throw new Error(`the audit checked ${report.checked.entries} entries, expected ${entries}`);
  return { entries: report.checked.entries, auditSeconds, clean: report.clean, findings: report.findings.length };
}

/** The audit of the bench log in `ctx`'s database (DATA_DIR must be tmpdir/<database name>, as bench/run.ts does). */
export async function benchAudit(ctx: AppContext, entries: number): Promise<AuditBench> {
  const name = new URL(ctx.env.databaseUrl!).pathname.slice(1);
  const script = path.join(path.dirname(fileURLToPath(import.meta.url)), "large.ts");
  const read = await childPhase(script, ["--phase", "read", name, String(entries)]);
  const audit = await childPhase(script, ["--phase", "audit", name, String(entries)]);
  const capped = await childPhase(script, ["--phase", "audit", name, String(entries)], {
    NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ""} --max-old-space-size=${HEAP_CAP_MB}`.trim(),
  });
  const readSeconds = Number(read.rawSeconds);
  const seconds = Number(audit.auditSeconds);
  return {
    entries,
    seconds,
    readSeconds,
    readDrizzleSeconds: Number(read.drizzleSeconds),
    ratio: seconds / readSeconds,
    ratioToDrizzleRead: seconds / Number(read.drizzleSeconds),
    entriesPerSec: entries / seconds,
    clean: audit.clean as boolean,
    findings: audit.findings as number,
    peakRssMb: audit.peakRssMb,
    startRssMb: audit.startRssMb,
    readPeakRssMb: read.peakRssMb,
    peakHeapMb: Number(audit.peakHeapMb),
    capped: {
      seconds: Number(capped.auditSeconds),
      peakRssMb: capped.peakRssMb,
      peakHeapMb: Number(capped.peakHeapMb),
      clean: capped.clean as boolean,
    },
  };
}
