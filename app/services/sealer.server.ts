/** Running the sealer: once (CLI, tests) or every SEAL_INTERVAL_MS inside the portal. */
import { sealOnce, type SealResult } from "../../anchoring/sealer.ts";
import { ledgerStore } from "../../db/ledger-store.ts";
import type { AppContext } from "./context.server.ts";

export function sealNow(ctx: AppContext): Promise<SealResult | null> {
  return sealOnce(ledgerStore(ctx.db), { origin: ctx.env.logOrigin, maxBatch: ctx.env.sealMaxBatch, crypto: ctx.crypto, signer: ctx.signer });
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

/** The background sealer: every interval, seal whatever is pending. Returns a stop function. */
export function startSealer(
  ctx: AppContext,
  opts: { onError?: (err: unknown) => void; onSealed?: (r: SealResult) => void } = {},
) {
  const onError = opts.onError ?? ((e: unknown) => console.error(`sealer: ${(e as Error).message}`));
  let stopped = false;
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<unknown> = Promise.resolve();
  const tick = () => {
    if (stopped) return;
    running = sealAll(ctx)
      .then((made) => made.forEach((r) => opts.onSealed?.(r)))
      .catch(onError)
      .finally(() => {
        if (!stopped) timer = setTimeout(tick, ctx.env.sealIntervalMs);
      });
  };
  timer = setTimeout(tick, ctx.env.sealIntervalMs);
  return async () => {
    stopped = true;
    if (timer) clearTimeout(timer);
    await running;
  };
}
