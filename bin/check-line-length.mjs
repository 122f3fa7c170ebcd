#!/usr/bin/env node
// `npm run lint` part two: no line of the project's own source, docs or scripts is longer than 120 characters.
// Biome's formatter wraps code but not long strings or comments; this check covers those. Exit 1 names each line.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";

const MAX = 120;
const SKIP = [/^test\/vectors\//, /^test\/schemas\//, /^db\/migrations\//, /evm-artifact\.ts$/, /\.json$/, /\.md$/];
const files = execFileSync("git", ["ls-files", "--cached", "--others", "--exclude-standard"], { encoding: "utf8" })
  .split("\n")
  .filter((f) => /\.(ts|tsx|js|mjs|cjs|css|sol|sh)$/.test(f) || f === ".ci/run")
  .filter((f) => !SKIP.some((re) => re.test(f)));
let bad = 0;
for (const f of files) {
  let text;
  try {
    text = readFileSync(f, "utf8");
  } catch {
    continue; // deleted in the working tree
  }
  text.split("\n").forEach((line, i) => {
    if ([...line].length > MAX) {
      bad++;
      if (bad <= 200) console.log(`${f}:${i + 1}: ${[...line].length} characters (at most ${MAX})`);
    }
  });
}
if (bad) {
  console.log(`${bad} line(s) longer than ${MAX} characters`);
  process.exit(1);
}
console.log(`line length: ${files.length} files, every line at most ${MAX} characters`);
