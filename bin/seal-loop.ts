/** `trialseal seal` without --once: a standalone sealer process (e.g. beside stateless portal replicas). */
import { ConfigError, parseEnv } from "../app/platform/env.server.ts";
import { createAppContext } from "../app/platform/context.server.ts";
import { sealAll, startSealer } from "../app/log/sealer.server.ts";
import { DatabaseError } from "../db/client.ts";
import { PgliteBusyError, readPgliteLock } from "../db/pglite-lock.ts";

export async function runSealerLoop(): Promise<number> {
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
      `trialseal: the portal (process ${holder.pid}) holds the embedded database and already seals it\n`,
    );
    return 0;
  }
  let ctx;
  try {
    ctx = await createAppContext(env);
  } catch (err) {
    if (err instanceof DatabaseError || err instanceof PgliteBusyError) {
      process.stderr.write(`trialseal: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
  process.stderr.write(
    `sealing ${ctx.database.engine} ${ctx.database.where} every ${env.sealIntervalMs} ms; Ctrl-C to stop\n`,
  );
  const report = (b: { batchNo: number; size: number; treeSize: number }) =>
    process.stdout.write(`sealed batch ${b.batchNo}: ${b.size} entries, log size ${b.treeSize}\n`);
  (await sealAll(ctx)).forEach(report);
  const stop = startSealer(ctx, { onSealed: report });
  await new Promise<void>((resolve) => {
    process.once("SIGINT", () => resolve());
    process.once("SIGTERM", () => resolve());
  });
  await stop();
  await ctx.database.close();
  return 0;
}
