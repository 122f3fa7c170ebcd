/**
 * A fresh database per test file: PGlite in memory, or a new PostgreSQL database created on the server named
 * by TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test) and dropped afterwards, so runs
 * never collide. The engine comes from TEST_DB_ENGINE (set per vitest project).
 */
import { randomBytes } from "node:crypto";
import postgres from "postgres";
import { openDatabase, type Database } from "../../db/client.ts";
import { contextFor, type AppContext } from "../../app/platform/context.server.ts";
import { testEnv } from "./env.ts";
import { migratedDump, templateKey } from "./pglite-template.ts";

export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";

export function engineUnderTest(): "pglite" | "postgres" {
  const e = process.env.TEST_DB_ENGINE ?? "pglite";
  if (e !== "pglite" && e !== "postgres") throw new Error(`TEST_DB_ENGINE must be pglite or postgres, not ${e}`);
  return e;
}

/**
 * Create a PostgreSQL database, empty or (`migrated`) a copy of one made and migrated once per set of migrations
 * (PostgreSQL's CREATE DATABASE ... TEMPLATE); returns its URL and a function that drops it.
 */
export async function createScratchPostgres(
  opts: { migrated?: boolean } = {},
): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `ts_test_${Date.now().toString(36)}_${randomBytes(4).toString("hex")}`;
  const admin = postgres(TEST_DATABASE_URL, { max: 1, onnotice: () => {} });
  try {
    const template = opts.migrated ? await migratedPostgresTemplate(admin) : null;
    await admin.unsafe(`CREATE DATABASE ${name}${template ? ` TEMPLATE ${template}` : ""}`);
  } catch (err) {
    await admin.end();
    throw new Error(`PostgreSQL tests cannot run: ${TEST_DATABASE_URL} is not usable (${(err as Error).message})`);
  }
  await admin.end();
  const u = new URL(TEST_DATABASE_URL);
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    async drop() {
      const a = postgres(TEST_DATABASE_URL, { max: 1, onnotice: () => {} });
      await a.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await a.end();
    },
  };
}

/** The migrated template database's name, made under an advisory lock by the first worker that needs it. */
async function migratedPostgresTemplate(admin: postgres.Sql): Promise<string> {
  const name = `ts_template_${templateKey()}`;
  await admin`select pg_advisory_lock(7424012)`;
  try {
    const [exists] = await admin`select 1 from pg_database where datname = ${name}`;
    if (!exists) {
      const building = `${name}_${randomBytes(3).toString("hex")}`;
      await admin.unsafe(`CREATE DATABASE ${building}`);
      const u = new URL(TEST_DATABASE_URL);
      u.pathname = `/${building}`;
      const database = await openDatabase({ url: u.toString(), poolSize: 1 });
      await database.close();
      await admin.unsafe(`ALTER DATABASE ${building} RENAME TO ${name}`);
    }
  } finally {
    await admin`select pg_advisory_unlock(7424012)`;
  }
  return name;
}

export interface TestDb {
  database: Database;
  ctx: AppContext;
  /** A URL other processes can use (PostgreSQL only). */
  url?: string;
  close(): Promise<void>;
}

export async function openTestDatabase(engine = engineUnderTest()): Promise<TestDb> {
  const env = testEnv();
  if (engine === "pglite") {
    // From the migrated template (the same migrations run again find nothing to do).
    const database = await openDatabase({ pgliteDir: "memory://", pgliteFrom: await migratedDump() });
    return { database, ctx: contextFor(env, database), close: () => database.close() };
  }
  const scratch = await createScratchPostgres({ migrated: true });
  const database = await openDatabase({ url: scratch.url, poolSize: 20 });
  return {
    database,
    ctx: contextFor({ ...env, databaseUrl: scratch.url }, database),
    url: scratch.url,
    async close() {
      await database.close();
      await scratch.drop();
    },
  };
}
