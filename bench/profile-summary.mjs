// Summarize the newest .cpuprofile in a directory: self time by function, and by area of the code.
import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";

const dir = process.argv[2] ?? "bench/profile";
const files = readdirSync(dir)
  .filter((f) => f.endsWith(".cpuprofile"))
  .map((f) => path.join(dir, f));
files.sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
if (!files.length) throw new Error(`no .cpuprofile in ${dir}`);
const prof = JSON.parse(readFileSync(files[0], "utf8"));
const self = new Map(prof.nodes.map((n) => [n.id, 0]));
const dt = prof.timeDeltas;
for (let i = 0; i < prof.samples.length; i++)
  self.set(prof.samples[i], (self.get(prof.samples[i]) ?? 0) + (dt[i] ?? 0));
const total = [...self.values()].reduce((a, b) => a + b, 0);
const byFn = new Map();
const byArea = new Map();
const area = (url, name) => {
  if (name === "(idle)" || name === "(program)" || name === "(garbage collector)") return name;
  if (!url) return "node internals / native";
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (m) return `dependency: ${m[1]}`;
  const own = /\/(anchoring|app|db|bench)\//.exec(url);
  if (own) return `ours: ${own[1]}/`;
  return url.startsWith("node:") ? "node internals / native" : "other";
};
for (const n of prof.nodes) {
  const t = self.get(n.id) ?? 0;
  const { functionName, url, lineNumber } = n.callFrame;
  const file = url?.replace(/^file:\/\/.*?\/(node_modules|anchoring|app|db|bench)\//, "$1/");
  const key = `${functionName || "(anonymous)"} ${url ? `${file}:${lineNumber + 1}` : ""}`;
  byFn.set(key, (byFn.get(key) ?? 0) + t);
  const a = area(url, functionName);
  byArea.set(a, (byArea.get(a) ?? 0) + t);
}
const pct = (t) => `${((100 * t) / total).toFixed(1).padStart(5)}%`;
console.log(`profile ${path.basename(files[0])}: ${(total / 1e6).toFixed(1)} s sampled`);
console.log("\nby area:");
for (const [k, t] of [...byArea].sort((a, b) => b[1] - a[1]).slice(0, 12)) console.log(`  ${pct(t)}  ${k}`);
console.log("\ntop functions (self time):");
for (const [k, t] of [...byFn].sort((a, b) => b[1] - a[1]).slice(0, 15)) console.log(`  ${pct(t)}  ${k}`);
