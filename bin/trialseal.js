#!/usr/bin/env node
// The `trialseal` CLI entry. It runs the bundle built ahead of time (build/cli/trialseal.mjs, by bin/build-cli.mjs
// in `npm run build` and `npm install`) while none of the sources it was built from changed since; otherwise (a
// fresh clone, or sources edited after the build) it registers tsx and runs the TypeScript sources as they are.
import path from "node:path";
import { pathToFileURL } from "node:url";
import { bundleIsCurrent, BUNDLE_DIR } from "./bundle-current.js";

if (bundleIsCurrent()) {
  await import(pathToFileURL(path.join(BUNDLE_DIR, "trialseal.mjs")).href);
} else {
  const { register } = await import("tsx/esm/api");
  register();
  await import("./cli.ts");
}
