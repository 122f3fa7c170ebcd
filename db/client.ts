/**
 * The one database client module. PGlite (embedded, in-process) when no DATABASE_URL is given, postgres.js
 * when it is. Both yield the same drizzle `Db` type, so every query function serves both engines.
 * Migrations (db/migrations, committed) run on open unless told otherwise.
 */
import { mkdirSync } from "node:fs";
import path from "node:path";
import type { PGlite } from "@electric-sql/pglite";
import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core";
import * as schema from "./schema/index.ts";
import { acquirePgliteLock, type PgliteLock } from "./pglite-lock.ts";
import { DatabaseError, parseDatabaseUrl, redactUrl } from "./url.ts";
import { packagePath } from "../app/platform/package-root.server.ts";

// Each engine's driver is imported when a database of that kind is opened: a PostgreSQL deployment never
// loads PGlite (and its WASM), and commands that need no database load neither.
export { DatabaseError, parseDatabaseUrl, redactUrl };

export type Schema = typeof schema;
export type Db = PgDatabase<PgQueryResultHKT, Schema>;
/** A transaction handle has the same query API as `Db`. */
export type Tx = Parameters<Parameters<Db["transaction"]>[0]>[0];
export type DbOrTx = Db | Tx;

/** The committed migrations, found from the package root (this module may be bundled elsewhere). */
export const MIGRATIONS_DIR = packagePath("db", "migrations");

export type Engine = "pglite" | "postgres";

export interface Database {
  db: Db;
  engine: Engine;
  /** Human-readable location (URL without password, or the PGlite directory). */
  where: string;
  /** Raw SQL escape hatch for tests and maintenance (returns rows). */
  execute(sql: string): Promise<Record<string, unknown>[]>;
  /** Apply the committed migrations (db/migrations). */
  migrate(): Promise<void>;
  close(): Promise<void>;
}

export interface OpenOptions {
  /** postgres:// URL; when absent, PGlite is used. */
  url?: string;
  /** PGlite data directory, or "memory://" for an in-memory database. */
  pgliteDir?: string;
  /** Run migrations after opening (default true). */
  migrate?: boolean;
  /** Connection pool size for PostgreSQL (default 10). */
  poolSize?: number;
  /** Extra data stored in the PGlite lock file (e.g. the control socket of a running portal). */
  lockInfo?: Record<string, unknown>;
  /**
   * A PGlite data directory dump (`dumpDataDir`) to start an in-memory database from instead of an empty one: the
   * tests start each database from one made and migrated once (test/helpers/pglite-template.ts).
   */
  pgliteFrom?: Blob;
}

export async function openDatabase(opts: OpenOptions): Promise<Database> {
  const database = opts.url
    ? await openPostgres(opts.url, opts.poolSize ?? 10)
    : await openPglite(opts.pgliteDir ?? "./data/pglite", opts.lockInfo, opts.pgliteFrom);
  if (opts.migrate !== false) {
    try {
      await database.migrate();
    } catch (err) {
      await database.close().catch(() => {});
      throw new DatabaseError(`database migration failed: ${(err as Error).message}`, { cause: err });
    }
  }
  return database;
}

/** Seconds before the next connection attempt after `failures` failed ones: 50 ms doubling, at most 1 s. */
export function reconnectBackoffSeconds(failures: number): number {
  return (0.5 + Math.random() / 2) * Math.min(0.05 * 2 ** failures, 1);
}

async function openPostgres(url: string, poolSize: number): Promise<Database> {
  const u = parseDatabaseUrl(url);
  const { default: postgres } = await import("postgres");
  const { drizzle: drizzlePostgres } = await import("drizzle-orm/postgres-js");
  const { migrate: migratePostgres } = await import("drizzle-orm/postgres-js/migrator");
  const client = postgres(url, {
    max: poolSize,
    onnotice: () => {},
    connect_timeout: 10,
    idle_timeout: 60,
    // Wait before reconnecting after a failed attempt, in seconds. postgres.js grows this with the failed attempts
    // of the whole pool up to 20 s, so after an outage of a few seconds the first requests waited up to 20 s for a
    // connection (the server was back long before); capped at 1 s here, with jitter.
    backoff: reconnectBackoffSeconds,
    connection: { application_name: "trialseal" },
  });
  try {
    await client`select 1`;
  } catch (err) {
    await client.end({ timeout: 1 }).catch(() => {});
    const e = err as NodeJS.ErrnoException & { code?: string };
    const reason = e.code && /^[A-Z]/.test(e.code) ? `${e.code}${e.message ? ` (${e.message})` : ""}` : e.message;
    throw new DatabaseError(`cannot connect to PostgreSQL at ${redactUrl(u)}: ${reason}`, { cause: err });
  }
  const db = drizzlePostgres(client, { schema }) as unknown as Db;
  return {
    db,
    engine: "postgres",
    where: redactUrl(u),
    async execute(sql) {
      return (await client.unsafe(sql)) as unknown as Record<string, unknown>[];
    },
    async migrate() {
      // One connection holds a session-level advisory lock while it migrates, so that several processes
      // starting at once on a shared PostgreSQL migrate exactly once.
      const single = postgres(url, { max: 1, onnotice: () => {}, connect_timeout: 10 });
      try {
        await single`select pg_advisory_lock(${MIGRATION_LOCK_KEY})`;
        try {
          await migratePostgres(drizzlePostgres(single, { schema }), { migrationsFolder: MIGRATIONS_DIR });
        } finally {
          await single`select pg_advisory_unlock(${MIGRATION_LOCK_KEY})`;
        }
      } finally {
        await single.end({ timeout: 5 });
      }
    },
    async close() {
      await client.end({ timeout: 5 });
    },
  };
}

/**
 * A read-only pool on a streaming replica of the PostgreSQL database (DATABASE_REPLICA_URL, ADR 0044): every
 * transaction is read-only (`default_transaction_read_only`), it is never migrated, and it connects lazily, so an
 * unreachable replica does not stop a start (reads fall back to the primary: app/platform/sealed-reads.server.ts).
 */
export interface ReadReplica {
  db: Db;
  where: string;
  /** Raw SQL on the replica (returns rows). */
  execute(sql: string): Promise<Record<string, unknown>[]>;
  close(): Promise<void>;
}

export async function openReadReplica(url: string, opts: { poolSize?: number } = {}): Promise<ReadReplica> {
  const u = parseDatabaseUrl(url);
  const { default: postgres } = await import("postgres");
  const { drizzle: drizzlePostgres } = await import("drizzle-orm/postgres-js");
  const client = postgres(url, {
    max: opts.poolSize ?? 10,
    onnotice: () => {},
    connect_timeout: 5,
    idle_timeout: 60,
    backoff: reconnectBackoffSeconds,
    connection: { application_name: "trialseal-replica", default_transaction_read_only: true },
  });
  return {
    db: drizzlePostgres(client, { schema }) as unknown as Db,
    where: redactUrl(u),
    async execute(sql) {
      return (await client.unsafe(sql)) as unknown as Record<string, unknown>[];
    },
    async close() {
      await client.end({ timeout: 5 });
    },
  };
}

async function openPglite(dir: string, lockInfo?: Record<string, unknown>, from?: Blob): Promise<Database> {
  let lock: PgliteLock | null = null;
  const memory = dir.startsWith("memory://");
  if (!memory) {
    mkdirSync(path.dirname(path.resolve(dir)), { recursive: true });
    lock = acquirePgliteLock(dir, lockInfo ?? {}); // throws a clear error when another process holds it
  }
  let pg: PGlite;
  try {
    const { PGlite } = await import("@electric-sql/pglite");
    pg = memory
      ? await PGlite.create(from ? { loadDataDir: from } : undefined)
      : await PGlite.create(dir, from ? { loadDataDir: from } : undefined);
  } catch (err) {
    lock?.release();
    throw new DatabaseError(`cannot open the embedded database at ${dir}: ${(err as Error).message}`, { cause: err });
  }
  const { drizzle: drizzlePglite } = await import("drizzle-orm/pglite");
  const { migrate: migratePglite } = await import("drizzle-orm/pglite/migrator");
  const db = drizzlePglite(pg, { schema }) as unknown as Db;
  return {
    db,
    engine: "pglite",
    where: memory ? "memory://" : path.resolve(dir),
    async execute(sql) {
      const results = await pg.exec(sql);
      return (results.at(-1)?.rows ?? []) as Record<string, unknown>[];
    },
    async migrate() {
      await migratePglite(drizzlePglite(pg, { schema }), { migrationsFolder: MIGRATIONS_DIR });
    },
    async close() {
      await pg.close();
      lock?.release();
    },
  };
}

const MIGRATION_LOCK_KEY = 7_424_011; // advisory lock id: one migrator at a time on a shared PostgreSQL
