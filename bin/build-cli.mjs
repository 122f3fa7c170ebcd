// Build the `trialseal` CLI and the portal's server ahead of time: bin/cli.ts and bin/serve.ts and the sources they
// import (app/, db/, anchoring/) bundled by esbuild into build/cli/trialseal.mjs and build/cli/serve.mjs, sharing
// one chunk per lazily imported module (build/cli/chunks/), so that a run loads only what its command uses and no
// TypeScript is compiled at startup (through tsx, a portal start spent about 15 s of CPU resolving and compiling
// its modules). Packages stay external: native addons and WASM (PGlite, argon2) load from node_modules as usual.
// build/cli/inputs.json lists the sources and when the build read them: bin/trialseal.js and bin/start.js run the
// bundles only while none of them changed since (bin/bundle-current.js), else the sources through tsx. Run by
// `npm run build` and on `npm install` (postinstall).
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "./esbuild.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const CLI_OUT = path.join(root, "build", "cli");

export async function buildCli() {
  // Sources changed from this instant on are newer than the bundle (even if esbuild read the new text).
  const startedAt = Date.now();
  rmSync(CLI_OUT, { recursive: true, force: true });
  const r = await build({
    absWorkingDir: root,
    entryPoints: { trialseal: path.join(root, "bin", "cli.ts"), serve: path.join(root, "bin", "serve.ts") },
    outdir: CLI_OUT,
    outExtension: { ".js": ".mjs" },
    chunkNames: "chunks/[name]-[hash]",
    bundle: true,
    splitting: true,
    format: "esm",
    platform: "node",
    target: "node20",
    packages: "external",
    metafile: true,
    legalComments: "none",
    logLevel: "warning",
  });
  const inputs = Object.keys(r.metafile.inputs)
    .filter((f) => !f.split(/[\\/]/).includes("node_modules"))
    .sort();
  mkdirSync(CLI_OUT, { recursive: true });
  writeFileSync(path.join(CLI_OUT, "inputs.json"), `${JSON.stringify({ startedAt, inputs }, null, 1)}\n`);
  const bytes = Object.values(r.metafile.outputs).reduce((n, o) => n + o.bytes, 0);
  return { inputs: inputs.length, outputs: Object.keys(r.metafile.outputs).length, bytes };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const t = Date.now();
  const b = await buildCli();
  console.log(
    `built build/cli/trialseal.mjs and serve.mjs from ${b.inputs} sources ` +
      `(${b.outputs} files, ${Math.round(b.bytes / 1024)} KiB) in ${Date.now() - t} ms`,
  );
}
