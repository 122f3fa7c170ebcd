#!/usr/bin/env node
// `npm start`: build the portal when the build is missing or older than the sources, then serve it. With
// WEB_CONCURRENCY workers (ADR 0043) the workers run this file too: only the primary checks and builds.
import cluster from "node:cluster";
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { register } from "tsx/esm/api";
import { BUNDLE_DIR, bundleIsCurrent } from "./bundle-current.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const buildFile = path.join(root, "build", "index.js");

function newest(dir) {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

const sources = ["app", "db", "anchoring"].map((d) => path.join(root, d)).filter(existsSync);
const stale =
  cluster.isPrimary &&
  (!existsSync(buildFile) ||
    Math.max(...sources.map(newest), statSync(path.join(root, "remix.config.js")).mtimeMs) >
      statSync(buildFile).mtimeMs);
if (stale) {
  console.log("Building the portal...");
  const remix = path.join(root, "node_modules", "@remix-run", "dev", "dist", "cli.js");
  const r = spawnSync(process.execPath, [remix, "build"], { cwd: root, stdio: ["ignore", "inherit", "inherit"] });
  const v =
    r.status === 0
      ? spawnSync(process.execPath, [path.join(root, "bin", "build-verifier.mjs")], {
          cwd: root,
          stdio: ["ignore", "inherit", "inherit"],
        })
      : r;
  if (r.status !== 0 || v.status !== 0) {
    console.error("trialseal: the portal build failed (see above)");
    process.exit(1);
  }
}
// The server bundled ahead of time (bin/build-cli.mjs) while its sources are unchanged; else the sources via tsx.
if (bundleIsCurrent()) {
  await import(pathToFileURL(path.join(BUNDLE_DIR, "serve.mjs")).href);
} else {
  register();
  await import("./serve.ts");
}
