/**
 * The package's root folder (where package.json, db/migrations, build/ and app/studies/demo live), found by
 * walking up from this module. It works from the sources (run by tsx), from the portal's server build
 * (build/) and from the bundled CLI (build/cli/trialseal.mjs), where import.meta.url names the bundle, not
 * the source file: files are located from the root, never relative to import.meta.url.
 */
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

let root: string | undefined;

export function packageRoot(): string {
  if (root) return root;
  const start = path.dirname(fileURLToPath(import.meta.url));
  for (let dir = start; ; dir = path.dirname(dir)) {
    const file = path.join(dir, "package.json");
    if (existsSync(file)) {
      try {
        if ((JSON.parse(readFileSync(file, "utf8")) as { name?: string }).name === "trialseal") {
          root = dir;
          return root;
        }
      } catch {
        // not ours (unreadable): keep walking up
      }
    }
    if (path.dirname(dir) === dir) throw new Error(`cannot find the trialseal package root above ${start}`);
  }
}

/** A path inside the package. */
export function packagePath(...parts: string[]): string {
  return path.join(packageRoot(), ...parts);
}
