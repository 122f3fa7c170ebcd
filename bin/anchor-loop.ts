/** `trialseal anchor` without --once: a standalone anchor worker (e.g. beside stateless portal replicas). */
import { ConfigError, parseEnv } from "../app/platform/env.server.ts";
import { createAppContext } from "../app/platform/context.server.ts";
import { startAnchorWorker } from "../app/anchor-worker/anchor-worker.server.ts";
import { describeEvent } from "../app/platform/commands.server.ts";
import { DatabaseError } from "../db/client.ts";
import { PgliteBusyError, readPgliteLock } from "../db/pglite-lock.ts";

export async function runAnchorLoop(): Promise<number> {
  let env;
  try {
    env = parseEnv();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`trialseal: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  const holder = env.databaseUrl ? null : readPgliteLock(env.pgliteDir);
  if (holder) {
    process.stderr.write(
      `trialseal: the portal (process ${holder.pid}) holds the embedded database and already anchors it\n`,
    );
    return 0;
  }
  let ctx;
  try {
    ctx = await createAppContext(env);
  } catch (err) {
    if (
      err instanceof DatabaseError ||
      err instanceof PgliteBusyError ||
      (err as Error).name === "LocalLedgerCorrupt"
    ) {
      process.stderr.write(`trialseal: ${(err as Error).message}\n`);
      return 1;
    }
    if (err instanceof ConfigError) {
      process.stderr.write(`trialseal: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  if (ctx.ledgers.length === 0) {
    process.stderr.write("trialseal: no ledger is enabled (LOCAL_LEDGER=false and no EVM_RPC_URL or TSA_URL)\n");
    await ctx.database.close();
    return 2;
  }
  process.stderr.write(
    `anchoring ${ctx.database.engine} ${ctx.database.where} on ${ctx.ledgers.map((l) => `${l.ledger.name} every ${l.intervalMs} ms`).join(", ")}; Ctrl-C to stop\n`,
  );
  const stop = startAnchorWorker(ctx, { onEvent: (e) => process.stdout.write(describeEvent(e)) });
  await new Promise<void>((resolve) => {
    process.once("SIGINT", () => resolve());
    process.once("SIGTERM", () => resolve());
  });
  await stop();
  await ctx.database.close();
  return 0;
}
