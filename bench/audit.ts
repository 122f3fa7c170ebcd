/**
 * The whole-log audit over a large log (the 1M-entry log of the proof benchmark): time, and peak memory while
 * it runs (sampled RSS and heap), against the baseline of only reading the same rows, batch by batch, with the
 * same queries (the I/O floor: everything the audit adds is recomputation).
 */
import { runIntegrityAudit } from "../app/integrity-audit/integrity-audit.server.ts";
import { batchesFrom, entriesInSeqRange } from "../db/queries/integrity-audit.ts";
import type { AppContext } from "../app/platform/context.server.ts";

export interface AuditBench {
  entries: number;
  seconds: number;
  readSeconds: number;
  ratio: number;
  entriesPerSec: number;
  clean: boolean;
  findings: number;
  peakRssMb: number;
  rssGrowthMb: number;
  peakHeapMb: number;
}

function sampler() {
  const start = process.memoryUsage();
  let peakRss = start.rss;
  let peakHeap = start.heapUsed;
  const t = setInterval(() => {
    const m = process.memoryUsage();
    peakRss = Math.max(peakRss, m.rss);
    peakHeap = Math.max(peakHeap, m.heapUsed);
  }, 25);
  return () => {
    clearInterval(t);
    return { startRss: start.rss, peakRss, peakHeap };
  };
}

export async function benchAudit(ctx: AppContext, entries: number): Promise<AuditBench> {
  // Baseline: read every batch and its entries, as the audit does, and nothing else.
  const t0 = performance.now();
  let last = -1;
  let read = 0;
  for (;;) {
    const page = await batchesFrom(ctx.db, last, 200);
    if (!page.length) break;
    for (const b of page) {
      read += (await entriesInSeqRange(ctx.db, b.firstSeq, b.firstSeq + b.size)).length;
      last = b.batchNo;
    }
  }
  const readSeconds = (performance.now() - t0) / 1000;
  if (global.gc) global.gc();
  const stop = sampler();
  const t1 = performance.now();
  const report = await runIntegrityAudit(ctx);
  const seconds = (performance.now() - t1) / 1000;
  const mem = stop();
  const mb = (b: number) => b / 1024 / 1024;
  if (read !== entries) throw new Error(`read ${read} entries, expected ${entries}`);
  return {
    entries,
    seconds,
    readSeconds,
    ratio: seconds / readSeconds,
    entriesPerSec: entries / seconds,
    clean: report.clean,
    findings: report.findings.length,
    peakRssMb: mb(mem.peakRss),
    rssGrowthMb: mb(mem.peakRss - mem.startRss),
    peakHeapMb: mb(mem.peakHeap),
  };
}
