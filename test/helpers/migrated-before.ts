/**
 * A database migrated only up to (not including) a given migration, so a test can populate it on the previous
 * schema and then run the committed migrations that follow (`database.migrate()` applies only those: drizzle's
 * journal in the database names the ones applied). Both engines, as openTestDatabase.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { MIGRATIONS_DIR, openDatabase, type Database } from "../../db/client.ts";
import { contextFor } from "../../app/platform/context.server.ts";
import { createScratchPostgres, engineUnderTest, type TestDb } from "./db.ts";
import { testEnv } from "./env.ts";

/** A folder holding the migrations before `tag` (e.g. "0023_partition-ledger") and their journal. */
function migrationsBefore(tag: string): { dir: string; remove: () => void } {
  const journal = JSON.parse(readFileSync(path.join(MIGRATIONS_DIR, "meta", "_journal.json"), "utf8")) as {
    entries: { idx: number; tag: string }[];
  };
  const at = journal.entries.findIndex((e) => e.tag === tag);
  if (at < 0) throw new Error(`no migration ${tag}`);
  const dir = mkdtempSync(path.join(tmpdir(), "ts-migrations-"));
  mkdirSync(path.join(dir, "meta"));
  const kept = journal.entries.slice(0, at);
  for (const e of kept) copyFileSync(path.join(MIGRATIONS_DIR, `${e.tag}.sql`), path.join(dir, `${e.tag}.sql`));
  writeFileSync(path.join(dir, "meta", "_journal.json"), JSON.stringify({ ...journal, entries: kept }));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export async function openDatabaseBefore(tag: string, engine = engineUnderTest()): Promise<TestDb> {
  const env = testEnv();
  const m = migrationsBefore(tag);
  try {
    if (engine === "pglite") {
      const database = await openDatabase({ pgliteDir: "memory://", migrate: false });
      await migrateFrom(database, m.dir);
      return { database, ctx: contextFor(env, database), close: () => database.close() };
    }
    const scratch = await createScratchPostgres();
    const database = await openDatabase({ url: scratch.url, poolSize: 10, migrate: false });
    await migrateFrom(database, m.dir);
    return {
      database,
      ctx: contextFor({ ...env, databaseUrl: scratch.url }, database),
      url: scratch.url,
      async close() {
        await database.close();
        await scratch.drop();
      },
    };
  } finally {
    m.remove();
  }
}

async function migrateFrom(database: Database, migrationsFolder: string) {
  if (database.engine === "pglite") {
    const { migrate } = await import("drizzle-orm/pglite/migrator");
    await migrate(database.db as unknown as Parameters<typeof migrate>[0], { migrationsFolder });
  } else {
    const { migrate } = await import("drizzle-orm/postgres-js/migrator");
    await migrate(database.db as unknown as Parameters<typeof migrate>[0], { migrationsFolder });
  }
}

/**
 * The objects a later migration creates (new tables, functions, triggers: nothing it changes), applied ahead on a
 * database opened before an earlier one, so today's services and audit, which read those tables, run on the
 * previous schema; `dropLater` removes them again (they must be empty) before the real migrations run.
 * Statements are the migration's own, split at drizzle's breakpoints.
 */
export async function applyLater(t: TestDb, tag: string): Promise<{ dropLater: () => Promise<void> }> {
  const text = readFileSync(path.join(MIGRATIONS_DIR, `${tag}.sql`), "utf8");
  const statements = text
    .split("--> statement-breakpoint")
    .map((x) => x.trim())
    .filter(Boolean);
  for (const st of statements) await t.database.execute(st);
  const tables = [...text.matchAll(/^CREATE TABLE "([a-z_]+)"/gm)].map((m) => m[1]);
  const functions = [...text.matchAll(/^CREATE FUNCTION ([a-z_]+)\(\)/gm)].map((m) => m[1]);
  // Columns the migration adds to tables it does not create (0026: study_settings), dropped again the same way.
  const columns = [...text.matchAll(/^ALTER TABLE "([a-z_]+)" ADD COLUMN "([a-z_]+)"/gm)].filter(
    (m) => !tables.includes(m[1]),
  );
  return {
    async dropLater() {
      await t.database.execute(`DROP TABLE ${tables.map((x) => `"${x}"`).join(", ")} CASCADE`);
      for (const [, table, column] of columns)
        await t.database.execute(`ALTER TABLE "${table}" DROP COLUMN "${column}"`);
      for (const f of functions) await t.database.execute(`DROP FUNCTION ${f}()`);
    },
  };
}
