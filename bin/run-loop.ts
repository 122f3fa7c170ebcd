/**
 * The CLI's long-running loops, `trialseal seal` and `trialseal anchor` without --once (e.g. beside stateless
 * portal replicas): one runner opens the context, starts the loop, and stops it on SIGINT/SIGTERM.
 * Exit codes as everywhere in the CLI: 0 stopped cleanly (or the portal already runs the loop), 1 the database
 * or a ledger could not be opened, 2 bad configuration.
 */
import type { AppContext } from "../app/platform/context.server.ts";
import type { Env } from "../app/platform/env.server.ts";
import { loadCliEnv, openCliContext, say } from "./cli-context.ts";

interface LoopSpec {
  /** What the portal already does when it holds the embedded database: "seals", "anchors". */
  does: string;
  /** Start the loop over the open context: its stop function, or an exit code when it has nothing to run. */
  start(ctx: AppContext, env: Env): Promise<(() => Promise<void>) | number>;
}

export async function runLoop(spec: LoopSpec): Promise<number> {
  const { readPgliteLock } = await import("../db/pglite-lock.ts");
  const env = await loadCliEnv();
  const holder = env.databaseUrl ? null : readPgliteLock(env.pgliteDir);
  if (holder) {
    say(`the portal (process ${holder.pid}) holds the embedded database and already ${spec.does} it`);
    return 0;
  }
  const ctx = await openCliContext(env);
  if ("exitCode" in ctx) {
    say(ctx.message);
    return ctx.exitCode;
  }
  const stop = await spec.start(ctx, env);
  if (typeof stop === "number") {
    await ctx.database.close();
    return stop;
  }
  await new Promise<void>((resolve) => {
    process.once("SIGINT", () => resolve());
    process.once("SIGTERM", () => resolve());
  });
  await stop();
  await ctx.database.close();
  return 0;
}

/** `trialseal seal`: seal what is pending, then every SEAL_INTERVAL_MS. */
export function runSealerLoop(): Promise<number> {
  return runLoop({
    does: "seals",
    async start(ctx, env) {
      const { sealAll, startSealer } = await import("../app/log/sealer.server.ts");
      process.stderr.write(
        `sealing ${ctx.database.engine} ${ctx.database.where} every ${env.sealIntervalMs} ms; Ctrl-C to stop\n`,
      );
      const report = (b: { batchNo: number; size: number; treeSize: number }) =>
        process.stdout.write(`sealed batch ${b.batchNo}: ${b.size} entries, log size ${b.treeSize}\n`);
      (await sealAll(ctx)).forEach(report);
      return startSealer(ctx, { onSealed: report });
    },
  });
}

/** `trialseal anchor`: the anchor worker, each enabled ledger on its own cadence. */
export function runAnchorLoop(): Promise<number> {
  return runLoop({
    does: "anchors",
    async start(ctx) {
      if (ctx.ledgers.length === 0) {
        say("no ledger is enabled (LOCAL_LEDGER=false and no EVM_RPC_URL or TSA_URL)");
        return 2;
      }
      const { startAnchorWorker } = await import("../app/anchor-worker/anchor-worker.server.ts");
      const { describeEvent } = await import("../app/platform/commands.server.ts");
      const ledgers = ctx.ledgers.map((l) => `${l.ledger.name} every ${l.intervalMs} ms`).join(", ");
      process.stderr.write(`anchoring ${ctx.database.engine} ${ctx.database.where} on ${ledgers}; Ctrl-C to stop\n`);
      return startAnchorWorker(ctx, { onEvent: (e) => process.stdout.write(describeEvent(e)) });
    },
  });
}
