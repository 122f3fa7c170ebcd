// Whether the bundles of bin/build-cli.mjs (build/cli/trialseal.mjs, the CLI, and build/cli/serve.mjs, the portal's
// server) may be run: built, and none of the sources they were built from changed or removed since the build read
// them (build/cli/inputs.json). Otherwise bin/trialseal.js and bin/start.js run the TypeScript sources through tsx.
import { readFileSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const BUNDLE_DIR = path.join(root, "build", "cli");

export function bundleIsCurrent() {
  let manifest;
  try {
    manifest = JSON.parse(readFileSync(path.join(BUNDLE_DIR, "inputs.json"), "utf8"));
  } catch {
    return false; // not built
  }
  if (typeof manifest.startedAt !== "number" || !Array.isArray(manifest.inputs)) return false;
  for (const file of manifest.inputs) {
    const stat = statSync(path.join(root, file), { throwIfNoEntry: false });
    if (!stat || stat.mtimeMs > manifest.startedAt) return false; // edited or removed since the build
  }
  return true;
}
