/** The application context: configuration + database + crypto, built once per process. */
import { openDatabase, openReadReplica, type Database, type Db, type ReadReplica } from "../../db/client.ts";
import { nodeCrypto } from "../../anchoring/adapters/crypto-node.ts";
import type { Crypto, Signer } from "../../anchoring/log/crypto.ts";
import { logSigner } from "../keys/log-keys.server.ts";
import type { Env } from "./env.server.ts";
import { buildLedgers, type ConfiguredLedger } from "../anchor-worker/ledger-factory.server.ts";
import { setDeploymentDataKey } from "../audit-trail/address-hmac.server.ts";
import { sealLegacyAuditEvents } from "../audit-trail/seal-legacy.server.ts";

export interface AppContext {
  env: Env;
  database: Database;
  db: Db;
  crypto: Crypto;
  /** The log's checkpoint signing key (kept in <DATA_DIR>/keys, outside the database). */
  signer: Signer;
  /** The anchoring ledgers enabled by configuration (tests may replace them). */
  ledgers: ConfiguredLedger[];
  /**
   * The read replica (DATABASE_REPLICA_URL, ADR 0044): read only through `sealedRead`
   * (app/platform/sealed-reads.server.ts), which decides per read whether it has replayed enough. Closed with
   * `database`.
   */
  replica?: ReadReplica;
}

/** The parts of the context that need no database: configuration, crypto, the key rings, the ledgers. */
export type OfflineContext = Pick<AppContext, "env" | "crypto" | "signer" | "ledgers">;

export function offlineContext(env: Env): OfflineContext {
  setDeploymentDataKey(env.dataKey); // the audit trail's address HMACs (ADR 0016)
  return { env, crypto: nodeCrypto, signer: logSigner(env.dataDir), ledgers: buildLedgers(env, nodeCrypto) };
}

export async function createAppContext(
  env: Env,
  opts: { lockInfo?: Record<string, unknown>; migrate?: boolean } = {},
): Promise<AppContext> {
  const database = await openDatabase({
    url: env.databaseUrl,
    pgliteDir: env.pgliteDir,
    migrate: opts.migrate,
    lockInfo: opts.lockInfo,
  });
  // After the migrations: seal once the audit-trail events written before migration 0016 (ADR 0016).
  if (opts.migrate !== false)
    await sealLegacyAuditEvents(database.db, nodeCrypto).catch(async (err) => {
      await database.close().catch(() => {});
      throw new Error(`sealing the audit-trail events from before migration 0016 failed: ${(err as Error).message}`);
    });
  if (!env.databaseReplicaUrl) return { ...offlineContext(env), database, db: database.db };
  // The replica connects lazily (an unreachable one must not stop a start: reads fall back to the primary).
  const replica = await openReadReplica(env.databaseReplicaUrl);
  return contextFor(env, withReplicaClosed(database, replica), replica);
}

/** The database whose close() also closes the replica's pool. */
function withReplicaClosed(database: Database, replica: ReadReplica): Database {
  return {
    ...database,
    async close() {
      await replica.close().catch(() => {});
      await database.close();
    },
  };
}

/** Context over an already-open database (tests), optionally with a read replica the caller closes. */
export function contextFor(env: Env, database: Database, replica?: ReadReplica): AppContext {
  return { ...offlineContext(env), database, db: database.db, ...(replica ? { replica } : {}) };
}
