/**
 * The CLI's start-up cost, each figure a ratio to `node -e ''` measured in the same run (medians of repeated
 * runs): `trialseal verify` (offline: time and peak RSS), `trialseal trust-policy` (no database) and
 * `trialseal checkpoint` on PostgreSQL (a fresh database, created and dropped here). The bundle built ahead of
 * time (build/cli/, built here when missing or stale) is what bin/trialseal.js runs; the tsx fallback (the
 * sources compiled at start) is measured beside it. Part of `npm run bench`; alone: `npm run bench:cli`, which
 * merges its figures into bench/results.json (key `cli`) and keeps every other figure there.
 */
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import postgres from "postgres";
import { buildLog, POLICY } from "../test/vectors/bundles/generate.ts";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const LAUNCHER = path.join(ROOT, "bin", "trialseal.js");
const TIME = "/usr/bin/time";
// Without /usr/bin/time, the child reports its own peak RSS when it exits.
const RSS_HOOK =
  'data:text/javascript,import{writeFileSync}from"node:fs";' +
  'process.on("exit",()=>writeFileSync(process.env.BENCH_RSS_FILE,String(process.resourceUsage().maxRSS)))';

export interface Run {
  ms: number;
  rssMb: number;
  /** `node -e ''` measured between these runs (the machine's load changes; each ratio uses its own baseline). */
  baseMs: number;
}

export interface CliBench {
  mode: "bundle";
  runs: number;
  nodeMs: number;
  nodeRssMb: number;
  verifyMs: number;
  verifyRssMb: number;
  verifyRatio: number;
  verifyTsxMs: number;
  verifyTsxRssMb: number;
  helpMs: number;
  trustPolicyMs: number;
  trustPolicyRssMb: number;
  trustPolicyRatio: number;
  checkpointMs: number;
  checkpointRssMb: number;
  checkpointRatio: number;
  checkpointTsxMs: number;
  checkpointTsxRssMb: number;
  checkpointTsxRatio: number;
  verifyTsxRatio: number;
  helpRatio: number;
  /** Each command's own baseline: the median of the `node -e ''` runs interleaved with its runs. */
  baselines: Record<"verify" | "verifyTsx" | "help" | "trustPolicy" | "checkpoint" | "checkpointTsx", number>;
  targets: { verifyRatio: number; verifyRssMb: number; checkpointRatio: number };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** One run of `node ...args`: wall time and peak RSS. Throws when it exits other than `expect`. */
function runOnce(args: string[], env: NodeJS.ProcessEnv, cwd: string, expect = 0): Omit<Run, "baseMs"> {
  const rssFile = path.join(tmpdir(), `ts-bench-rss-${randomBytes(4).toString("hex")}`);
  const useTime = existsSync(TIME);
  const cmd = useTime ? TIME : process.execPath;
  const argv = useTime ? ["-f", "%M", "-o", rssFile, process.execPath, ...args] : ["--import", RSS_HOOK, ...args];
  const t = process.hrtime.bigint();
  const r = spawnSync(cmd, argv, { cwd, env: { ...env, BENCH_RSS_FILE: rssFile }, encoding: "utf8" });
  const ms = Number(process.hrtime.bigint() - t) / 1e6;
  if (r.status !== expect)
    throw new Error(`node ${args.join(" ")} exited ${r.status} (expected ${expect}): ${r.stderr.slice(0, 500)}`);
  // /usr/bin/time -f %M: KiB (a "Command exited with non-zero status" line may come first); maxRSS: KiB too.
  const kb = Number(readFileSync(rssFile, "utf8").trim().split("\n").at(-1));
  rmSync(rssFile, { force: true });
  return { ms, rssMb: kb / 1024 };
}

/** n runs of the command, each right after a run of `node -e ''`: medians of both. */
function measure(n: number, args: string[], env: NodeJS.ProcessEnv, cwd: string, expect = 0): Run {
  runOnce(args, env, cwd, expect); // warm the file cache
  const runs: Omit<Run, "baseMs">[] = [];
  const base: number[] = [];
  for (let i = 0; i < n; i++) {
    base.push(runOnce(["-e", ""], env, cwd).ms);
    runs.push(runOnce(args, env, cwd, expect));
  }
  return { ms: median(runs.map((r) => r.ms)), rssMb: median(runs.map((r) => r.rssMb)), baseMs: median(base) };
}

/** Whether bin/trialseal.js will run the bundle (the same check it makes). */
function bundleIsCurrent(): boolean {
  const file = path.join(ROOT, "build", "cli", "inputs.json");
  if (!existsSync(file)) return false;
  const m = JSON.parse(readFileSync(file, "utf8")) as { startedAt: number; inputs: string[] };
  return m.inputs.every((f) => {
    const s = statSync(path.join(ROOT, f), { throwIfNoEntry: false });
    return !!s && s.mtimeMs <= m.startedAt;
  });
}

export async function benchCli(o: { adminUrl: string; quick: boolean; log: (s: string) => void }): Promise<CliBench> {
  if (!bundleIsCurrent()) {
    o.log("building the CLI bundle (bin/build-cli.mjs)");
    const { buildCli } = (await import("../bin/build-cli.mjs")) as { buildCli: () => Promise<unknown> };
    await buildCli();
  }
  const n = o.quick ? 5 : 15;
  const dir = mkdtempSync(path.join(tmpdir(), "ts-bench-cli-"));
  const { bundles } = buildLog();
  writeFileSync(path.join(dir, "policy.json"), JSON.stringify(POLICY));
  writeFileSync(path.join(dir, "bundle.json"), JSON.stringify(bundles[0]));
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    NODE_ENV: "development",
    DATA_DIR: path.join(dir, "data"),
    SESSION_SECRET: "c".repeat(40),
    DATA_KEY: "33".repeat(32),
    SEED_DEMO: "false",
  };
  // The fallback bin/trialseal.js takes when the bundle is stale: the sources through tsx (resolved from here,
  // since the runs' working folder is outside the package).
  const tsx = ["--import", import.meta.resolve("tsx"), path.join(ROOT, "bin", "cli.ts")];
  const verifyArgs = ["verify", "--trust", "policy.json", "bundle.json"];

  const node = measure(n, ["-e", ""], env, dir);
  const verify = measure(n, [LAUNCHER, ...verifyArgs], env, dir);
  const verifyTsx = measure(o.quick ? 3 : 5, [...tsx, ...verifyArgs], env, dir);
  const help = measure(n, [LAUNCHER, "--help"], env, dir);
  // trust-policy reads the deployment's keys (DATA_DIR/keys): made once, as `trialseal keys init` makes them.
  runOnce([LAUNCHER, "keys", "init"], env, dir);
  const trust = measure(n, [LAUNCHER, "trust-policy"], env, dir);

  const name = `ts_bench_cli_${randomBytes(4).toString("hex")}`;
  const admin = postgres(o.adminUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`CREATE DATABASE ${name}`);
  let checkpoint: Run;
  let checkpointTsx: Run;
  try {
    const url = new URL(o.adminUrl);
    url.pathname = `/${name}`;
    const pg = { ...env, DATABASE_URL: url.toString() };
    runOnce([LAUNCHER, "studies", "create", "--code", "BENCH-1", "--title", "Bench", "--site", "S1"], pg, dir);
    runOnce([LAUNCHER, "seal", "--once"], pg, dir);
    checkpoint = measure(n, [LAUNCHER, "checkpoint"], pg, dir);
    checkpointTsx = measure(o.quick ? 3 : 5, [...tsx, "checkpoint"], pg, dir);
  } finally {
    await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.end();
    rmSync(dir, { recursive: true, force: true });
  }
  return {
    mode: "bundle",
    runs: n,
    nodeMs: node.ms,
    nodeRssMb: node.rssMb,
    verifyMs: verify.ms,
    verifyRssMb: verify.rssMb,
    verifyRatio: verify.ms / verify.baseMs,
    verifyTsxMs: verifyTsx.ms,
    verifyTsxRssMb: verifyTsx.rssMb,
    helpMs: help.ms,
    trustPolicyMs: trust.ms,
    trustPolicyRssMb: trust.rssMb,
    trustPolicyRatio: trust.ms / trust.baseMs,
    checkpointMs: checkpoint.ms,
    checkpointRssMb: checkpoint.rssMb,
    checkpointRatio: checkpoint.ms / checkpoint.baseMs,
    checkpointTsxRatio: checkpointTsx.ms / checkpointTsx.baseMs,
    verifyTsxRatio: verifyTsx.ms / verifyTsx.baseMs,
    helpRatio: help.ms / help.baseMs,
    checkpointTsxMs: checkpointTsx.ms,
    checkpointTsxRssMb: checkpointTsx.rssMb,
    baselines: {
      verify: verify.baseMs,
      verifyTsx: verifyTsx.baseMs,
      help: help.baseMs,
      trustPolicy: trust.baseMs,
      checkpoint: checkpoint.baseMs,
      checkpointTsx: checkpointTsx.baseMs,
    },
    targets: { verifyRatio: 8, verifyRssMb: 120, checkpointRatio: 20 },
  };
}

const fmtMs = (ms: number) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(0)} ms`);

/** Print the figures in bench/run.ts's layout. */
export function printCli(c: CliBench, log: (s: string) => void = console.log): void {
  const line = (label: string, value: string, baseline: string, ratio: number, target?: string) =>
    log(
      `${label.padEnd(44)} ${value.padStart(10)}   baseline ${baseline.padStart(10)}   ` +
        `ratio ${ratio.toFixed(2).padStart(6)}${target ? `   target ${target}` : ""}`,
    );
  // Each ratio is to the node -e '' runs interleaved with that command's runs; the baseline shown is their median.
  const b = c.baselines;
  line("trialseal verify (vs node -e '')", fmtMs(c.verifyMs), fmtMs(b.verify), c.verifyRatio, "<= 8");
  line(
    "  peak RSS (vs node -e '')",
    `${c.verifyRssMb.toFixed(0)} MB`,
    `${c.nodeRssMb.toFixed(0)} MB`,
    c.verifyRssMb / c.nodeRssMb,
    "<= 120 MB",
  );
  line("  the same through tsx (no bundle)", fmtMs(c.verifyTsxMs), fmtMs(b.verifyTsx), c.verifyTsxRatio);
  log(`${"  its peak RSS through tsx".padEnd(44)} ${`${c.verifyTsxRssMb.toFixed(0)} MB`.padStart(10)}`);
  line("trialseal --help", fmtMs(c.helpMs), fmtMs(b.help), c.helpRatio);
  line("trialseal trust-policy (no database)", fmtMs(c.trustPolicyMs), fmtMs(b.trustPolicy), c.trustPolicyRatio);
  log(`${"  its peak RSS".padEnd(44)} ${`${c.trustPolicyRssMb.toFixed(0)} MB`.padStart(10)}`);
  line("trialseal checkpoint, PostgreSQL", fmtMs(c.checkpointMs), fmtMs(b.checkpoint), c.checkpointRatio, "<= 20");
  log(`${"  its peak RSS".padEnd(44)} ${`${c.checkpointRssMb.toFixed(0)} MB`.padStart(10)}`);
  line("  the same through tsx (no bundle)", fmtMs(c.checkpointTsxMs), fmtMs(b.checkpointTsx), c.checkpointTsxRatio);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const quick = process.env.BENCH_QUICK === "1";
  console.log("\n== CLI start-up (bundle built ahead of time; ratios to node -e '' in the same run) ==");
  const c = await benchCli({
    adminUrl: process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test",
    quick,
    log: console.log,
  });
  printCli(c);
  // Merge: the other figures in results.json stay as the last full run wrote them.
  const out = path.join(ROOT, "bench", "results.json");
  const results = existsSync(out) ? (JSON.parse(readFileSync(out, "utf8")) as Record<string, unknown>) : {};
  results.cli = { at: new Date().toISOString(), node: process.version, quick, ...c };
  writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`);
  console.log(`\nwrote the cli figures into ${out}`);
}
