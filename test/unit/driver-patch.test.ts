/**
 * postgres.js 3.4.9 crashes the process when a buffered write fires after its connection closed (a PostgreSQL
 * restart under load: porsager/postgres#1154, #1208). patches/postgres+3.4.9.patch (applied by `patch-package`
 * at install) guards it; this test fails if the install did not apply the patch to either build of the driver.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT } from "../helpers/portal.ts";

describe("postgres.js patch", () => {
  it("guards nextWrite against a closed socket in the ESM and CJS builds", () => {
    for (const build of ["src", "cjs/src"]) {
      const text = readFileSync(path.join(ROOT, "node_modules", "postgres", build, "connection.js"), "utf8");
      const nextWrite = text.slice(text.indexOf("function nextWrite("), text.indexOf("function connectTimedOut("));
      expect(nextWrite, build).toMatch(/if \(!socket\) \{[\s\S]*error\(Errors\.connection\('CONNECTION_CLOSED'/);
      expect(
        text.match(/^ {4}clearImmediate\(nextWriteTimer\)\n {4}chunk = nextWriteTimer = null/gm)?.length,
        build,
      ).toBe(2); // terminate() and closed()
    }
  });
});
