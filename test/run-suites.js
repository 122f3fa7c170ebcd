#!/usr/bin/env node
// `npm test`: build the portal, then run each suite (vitest project) in turn, printing each one's time,
// and a closing "N passed, N failed" line. The database suite runs on PGlite and on real PostgreSQL;
// if PostgreSQL is unreachable the run fails (no silent skip).
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const suites = (process.env.TEST_SUITES ?? "unit,db-pglite,db-postgres,integration,security,e2e").split(",");
const out = mkdtempSync(path.join(tmpdir(), "trialseal-results-"));
const started = Date.now();
let passed = 0;
let failed = 0;
const lines = [];
const failures = [];

function step(fn) {
  const t0 = Date.now();
  const r = fn();
  const secs = ((Date.now() - t0) / 1000).toFixed(1);
  return { ...r, secs };
}

const build = step(() => {
  const r = spawnSync(process.execPath, [path.join(root, "node_modules/@remix-run/dev/dist/cli.js"), "build"], {
    cwd: root,
    stdio: "inherit",
  });
  const v =
    r.status === 0
      ? spawnSync(process.execPath, [path.join(root, "bin", "build-verifier.mjs")], { cwd: root, stdio: "inherit" })
      : r;
  // The CLI bundle (bin/build-cli.mjs): tests run `trialseal` as users do, from the bundle built ahead of time.
  const c =
    v.status === 0
      ? spawnSync(process.execPath, [path.join(root, "bin", "build-cli.mjs")], { cwd: root, stdio: "inherit" })
      : v;
  return { ok: r.status === 0 && v.status === 0 && c.status === 0 };
});
lines.push(`build        ${build.ok ? "ok" : "FAILED"} in ${build.secs}s`);
if (!build.ok) failed++;

for (const suite of suites) {
  const file = path.join(out, `${suite}.json`);
  console.log(`\n=== suite ${suite} ===`);
  const r = step(() => {
    const p = spawnSync(
      process.execPath,
      [
        path.join(root, "node_modules/vitest/vitest.mjs"),
        "run",
        "--project",
        suite,
        "--reporter=default",
        "--reporter=json",
        `--outputFile.json=${file}`,
      ],
      { cwd: root, stdio: "inherit", env: process.env },
    );
    let counts = { numPassedTests: 0, numFailedTests: 0, numTotalTestSuites: 0, numFailedTestSuites: 0 };
    try {
      counts = JSON.parse(readFileSync(file, "utf8"));
    } catch {
      counts.numFailedTests = 1; // the runner itself failed
    }
    // Name each failed test (file, title, first line of its error) and each file that failed to load, so a red run
    // says what failed without the full log; and the three slowest files, to watch the suite's time.
    const files = counts.testResults ?? [];
    for (const f of files) {
      const rel = path.relative(root, f.name ?? "");
      const bad = (f.assertionResults ?? []).filter((a) => a.status === "failed");
      for (const a of bad) {
        const msg = String(a.failureMessages?.[0] ?? "")
          .split("\n")[0]
          .slice(0, 200);
        failures.push(`${suite}: ${rel} > ${a.fullName ?? a.title}: ${msg}`);
      }
      if (bad.length === 0 && f.status === "failed") {
        failures.push(
          `${suite}: ${rel}: ${String(f.message ?? "failed to run")
            .split("\n")[0]
            .slice(0, 200)}`,
        );
      }
    }
    const slowest = files
      .map((f) => ({ rel: path.relative(root, f.name ?? ""), secs: ((f.endTime ?? 0) - (f.startTime ?? 0)) / 1000 }))
      .sort((a, b) => b.secs - a.secs)
      .slice(0, 3)
      .map((f) => `${f.rel} ${f.secs.toFixed(0)}s`);
    // A file that failed to load counts as a failure even when it had no test to fail.
    const failedTests = counts.numFailedTests + (p.status !== 0 && counts.numFailedTests === 0 ? 1 : 0);
    return { passed: counts.numPassedTests, failed: failedTests, slowest };
  });
  passed += r.passed;
  failed += r.failed;
  lines.push(`${suite.padEnd(12)} ${r.passed} passed, ${r.failed} failed in ${r.secs}s`);
  if (r.slowest?.length) lines.push(`             slowest: ${r.slowest.join(", ")}`);
}

console.log("\n=== summary ===");
for (const l of lines) console.log(l);
if (failures.length > 0) {
  console.log("\n=== failed ===");
  for (const f of failures) console.log(f);
}
console.log(`total time ${((Date.now() - started) / 1000).toFixed(1)}s`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed > 0 ? 1 : 0);
