/** Running the sealer: once (CLI, tests) or every SEAL_INTERVAL_MS inside the portal. */
import { sql } from "drizzle-orm";
import { sealOnce, type SealResult } from "../../anchoring/log/sealer.ts";
import { ledgerStore } from "../../db/log-store.ts";
import { pendingAtLeast } from "../../db/queries/log.ts";
import type { AppContext } from "../platform/context.server.ts";

export async function sealNow(ctx: AppContext): Promise<SealResult | null> {
  // ledger_entries is partitioned by seq range (ADR 0045): the partitions up to one range past the next seq exist
  // before the seal (one cheap statement; it creates one only when the log enters a new range).
  await ctx.db.execute(sql`select trialseal_ledger_partitions_ahead()`);
  return sealOnce(ledgerStore(ctx.db), {
    origin: ctx.env.logOrigin,
    maxBatch: ctx.env.sealMaxBatch,
    crypto: ctx.crypto,
    signer: ctx.signer,
  });
}

/** Seal until nothing is pending; returns the batches made. */
export async function sealAll(ctx: AppContext): Promise<SealResult[]> {
  const out: SealResult[] = [];
  for (;;) {
    const r = await sealNow(ctx);
    if (!r) return out;
    out.push(r);
  }
}

/**
 * The background sealer: every SEAL_INTERVAL_MS it seals whatever is pending, and in between it checks
 * (every 100 ms at most) whether SEAL_MAX_BATCH entries are already pending, and if so seals at once.
 * Returns a stop function that waits for a seal in progress.
 */
export function startSealer(
  ctx: AppContext,
  opts: { onError?: (err: unknown) => void; onSealed?: (r: SealResult) => void } = {},
) {
  const onError = opts.onError ?? ((e: unknown) => console.error(`sealer: ${(e as Error).message}`));
  let stopped = false;
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<unknown> = Promise.resolve();
  const poll = Math.min(100, ctx.env.sealIntervalMs);
  let due = Date.now() + ctx.env.sealIntervalMs;
  const tick = () => {
    if (stopped) return;
    running = (async () => {
      const full = Date.now() < due && (await pendingAtLeast(ctx.db, ctx.env.sealMaxBatch));
      if (Date.now() >= due || full) {
        due = Date.now() + ctx.env.sealIntervalMs;
        (await sealAll(ctx)).forEach((r) => {
          opts.onSealed?.(r);
        });
      }
    })()
      .catch(onError)
      .finally(() => {
        if (!stopped) timer = setTimeout(tick, poll);
      });
  };
  timer = setTimeout(tick, poll);
  return async () => {
    stopped = true;
    if (timer) clearTimeout(timer);
    await running;
  };
}
