/**
 * Configuration and the application context for CLI commands, each loaded only when a command asks for it:
 * offline commands (verify, verify-package, monitor, verifier-html) load neither, `trust-policy` needs the
 * configuration and key rings but no database, the others open the database.
 */
import type { AppContext, OfflineContext } from "../app/platform/context.server.ts";
import type { Env } from "../app/platform/env.server.ts";

export const say = (m: string) => process.stderr.write(`trialseal: ${m}\n`);

/**
 * The parsed configuration, or exit 2 naming the variable at fault. Unless `mayCreateKeys` (db migrate, keys
 * init), DATA_DIR must already hold the deployment's keys (and, outside production, its secrets): a command run
 * from the wrong directory refuses, naming DATA_DIR, instead of creating a second set (issue 16 item 12).
 */
export async function loadCliEnv(opts: { mayCreateKeys?: boolean } = {}): Promise<Env> {
  const { ConfigError, noKeysMessage, parseEnv } = await import("../app/platform/env.server.ts");
  let env: Env;
  try {
    env = parseEnv(process.env, { createDevSecrets: opts.mayCreateKeys ?? false });
  } catch (err) {
    if (err instanceof ConfigError) {
      say(err.message);
      process.exit(2);
    }
    throw err;
  }
  if (!opts.mayCreateKeys) {
    const { ringExists } = await import("../app/keys/key-ring.server.ts");
    if (!ringExists(env.dataDir, "log")) {
      say(noKeysMessage(env.dataDir));
      process.exit(2);
    }
  }
  return env;
}

type OpenFailure = { exitCode: 1 | 2; message: string };

async function opening<T>(open: () => Promise<T>): Promise<T | OpenFailure> {
  const { ConfigError } = await import("../app/platform/env.server.ts");
  const { DatabaseError } = await import("../db/url.ts");
  const { PgliteBusyError } = await import("../db/pglite-lock.ts");
  try {
    return await open();
  } catch (err) {
    if (err instanceof DatabaseError || err instanceof PgliteBusyError || (err as Error).name === "LocalLedgerCorrupt")
      return { exitCode: 1, message: (err as Error).message };
    if (err instanceof ConfigError) return { exitCode: 2, message: err.message };
    throw err;
  }
}

/** Open the application context (database included), or say why it cannot be opened and with which exit code. */
export async function openCliContext(env: Env): Promise<AppContext | OpenFailure> {
  const { createAppContext } = await import("../app/platform/context.server.ts");
  return opening(() => createAppContext(env));
}

/** The context without a database (configuration, crypto, key rings, ledgers), or why it cannot be built. */
export async function openOfflineContext(env: Env): Promise<OfflineContext | OpenFailure> {
  const { offlineContext } = await import("../app/platform/context.server.ts");
  return opening(async () => offlineContext(env));
}
