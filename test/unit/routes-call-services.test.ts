/**
 * Routes call services only: no file under app/routes/ imports the database (drizzle-orm, the postgres driver,
 * PGlite, or anything under db/). Loaders and actions parse input, check permission and call a service in the
 * capability folder that owns the data (ADR 0010). Route files sit in area folders (app/routes/AREA/).
 */
import { readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const ROUTES = path.join(ROOT, "app", "routes");
// The same three forms test/unit/pure-core.test.ts reads: import/export ... from "x", import "x", import("x").
const IMPORT = new RegExp(
  [
    /^\s*(?:import|export)[^'"]*?from\s+["']([^"']+)["']/.source,
    /^\s*import\s+["']([^"']+)["']/.source,
    /import\(\s*["']([^"']+)["']\s*\)/.source,
  ].join("|"),
  "gm",
);
const DATABASE = /^(drizzle-orm|postgres|pg|@electric-sql\/pglite)(\/|$)/;

function importsOf(file: string): string[] {
  const text = readFileSync(file, "utf8");
  return [...text.matchAll(IMPORT)].map((m) => m[1] ?? m[2] ?? m[3]);
}

const files = readdirSync(ROUTES, { recursive: true })
  .map(String)
  .filter((f) => /\.tsx?$/.test(f));

describe("routes call services only", () => {
  it("finds the route files in their area folders", () => {
    expect(files.length).toBeGreaterThan(30);
    for (const f of files) expect(f.split(path.sep).length, `app/routes/${f}: not in an area folder`).toBe(2);
  });

  it("no route file imports drizzle-orm, a database driver, or anything under db/", () => {
    for (const f of files) {
      for (const spec of importsOf(path.join(ROUTES, f))) {
        expect(spec, `app/routes/${f}`).not.toMatch(DATABASE);
        if (spec.startsWith(".")) {
          const target = path.relative(ROOT, path.resolve(ROUTES, path.dirname(f), spec));
          expect(target.split(path.sep)[0], `app/routes/${f} imports ${spec}`).not.toBe("db");
        }
      }
    }
  });

  // drizzle is opened with the schema, so `ctx.db.query.<table>` needs no import: routes must not touch the
  // database handle either (context.ctx is passed on to services whole).
  const HANDLE = /\bctx\.(db|database)\b|\.ctx\.(db|database)\b/;

  it("no route file uses the database handle directly", () => {
    for (const f of files) expect(readFileSync(path.join(ROUTES, f), "utf8"), `app/routes/${f}`).not.toMatch(HANDLE);
    expect("const rows = await context.ctx.db.query.studies.findMany();").toMatch(HANDLE);
  });

  it("the import scan sees a database import when there is one", () => {
    const probe = 'import { eq } from "drizzle-orm";\nimport { studies } from "../../../db/schema/index.ts";\n';
    const specs = [...probe.matchAll(IMPORT)].map((m) => m[1] ?? m[2] ?? m[3]);
    expect(specs).toEqual(["drizzle-orm", "../../../db/schema/index.ts"]);
    expect(specs[0]).toMatch(DATABASE);
    expect(path.relative(ROOT, path.resolve(ROUTES, "studies", specs[1])).split(path.sep)[0]).toBe("db");
  });
});
