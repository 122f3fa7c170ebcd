/**
 * One migrated PGlite database per set of migrations, made once and reused by every test that needs an empty,
 * migrated database: creating a PGlite database (initdb in WebAssembly) costs seconds of CPU per test file and
 * per portal start, loading a dump of one costs about a second. The template is keyed by the migrations' contents
 * and the PGlite version, and written atomically, so parallel workers and later runs share it safely. Tests of a
 * first start (an empty data directory) do not use it.
 */
import { createHash, randomBytes } from "node:crypto";
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { MIGRATIONS_DIR } from "../../db/client.ts";
import { ROOT } from "./portal.ts";

const CACHE = path.join(tmpdir(), "trialseal-pglite-templates");

/** Names a template: the PGlite version and the migrations' contents. */
export function templateKey(): string {
  const h = createHash("sha256");
  h.update(readFileSync(path.join(ROOT, "node_modules", "@electric-sql", "pglite", "package.json")));
  for (const dir of [MIGRATIONS_DIR, path.join(MIGRATIONS_DIR, "meta")])
    for (const f of readdirSync(dir).sort()) {
      const file = path.join(dir, f);
      if (f.endsWith(".sql") || f.endsWith(".json")) h.update(f).update(readFileSync(file));
    }
  return h.digest("hex").slice(0, 16);
}

let dump: Promise<Blob> | null = null;

/** The dump of an empty, migrated database (made on first use, then read from the cache). */
export function migratedDump(): Promise<Blob> {
  dump ??= (async () => {
    const file = path.join(CACHE, `pglite-${templateKey()}.tar`);
    if (!existsSync(file)) {
      const { PGlite } = await import("@electric-sql/pglite");
      const { drizzle } = await import("drizzle-orm/pglite");
      const { migrate } = await import("drizzle-orm/pglite/migrator");
      const pg = await PGlite.create();
      await migrate(drizzle(pg), { migrationsFolder: MIGRATIONS_DIR });
      const tar = Buffer.from(await (await pg.dumpDataDir("none")).arrayBuffer());
      await pg.close();
      mkdirSync(CACHE, { recursive: true });
      const tmp = `${file}.${randomBytes(6).toString("hex")}`;
      writeFileSync(tmp, tar);
      renameSync(tmp, file); // atomic: a parallel worker writes the same bytes
    }
    return new Blob([readFileSync(file)]);
  })();
  return dump;
}

/**
 * A new portal data directory (DATA_DIR) whose embedded database already exists, empty and migrated: the portal
 * opens it like any existing data directory (and seeds the demo study, as on a first start).
 */
export async function dataDirWithDatabase(): Promise<string> {
  const tpl = path.join(CACHE, `datadir-${templateKey()}`);
  if (!existsSync(tpl)) {
    const blob = await migratedDump();
    const { PGlite } = await import("@electric-sql/pglite");
    const tmp = `${tpl}.${randomBytes(6).toString("hex")}`;
    mkdirSync(tmp, { recursive: true });
    const pg = await PGlite.create(path.join(tmp, "pglite"), { loadDataDir: blob });
    await pg.close();
    try {
      renameSync(tmp, tpl);
    } catch {
      rmSync(tmp, { recursive: true, force: true }); // another worker made it first
    }
  }
  const dir = path.join(tmpdir(), `trialseal-it-${randomBytes(6).toString("hex")}`);
  cpSync(tpl, dir, { recursive: true });
  return dir;
}
