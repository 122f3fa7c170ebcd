#!/usr/bin/env node
// The `trialseal` CLI entry. It runs the bundle built ahead of time (build/cli/trialseal.mjs, by bin/build-cli.mjs
// in `npm run build` and `npm install`) while none of the sources it was built from changed since; otherwise (a
// fresh clone, or sources edited after the build) it registers tsx and runs the TypeScript sources as they are.
import { readFileSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const out = path.join(root, "build", "cli");

function bundleIsCurrent() {
  let manifest;
  try {
    manifest = JSON.parse(readFileSync(path.join(out, "inputs.json"), "utf8"));
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

if (bundleIsCurrent()) {
  await import(pathToFileURL(path.join(out, "trialseal.mjs")).href);
} else {
  const { register } = await import("tsx/esm/api");
  register();
  await import("./cli.ts");
}
