import { defineConfig } from "vitest/config";

// Suites (projects). `npm test` (test/run-suites.js) runs them one after another and prints each one's time.
// The database suite runs twice: on PGlite and on real PostgreSQL.
// Time budgets are sized for a loaded machine (both cores busy: a CLI run takes 5-10 s, a portal start up to a
// minute), never for a fast one: a budget only bounds a hang, a passing test never waits for it. Tests wait for
// conditions (test/helpers/wait.ts), never for fixed times, and assert no wall-clock durations (see `npm run bench`).
const dbSuite = (engine: "pglite" | "postgres") => ({
  test: {
    name: `db-${engine}`,
    include: ["test/db/**/*.test.ts"],
    env: { TEST_DB_ENGINE: engine },
    // Two files at once even on a 2-core machine (vitest's default there is one): each file has its own database,
    // and the PostgreSQL suite mostly waits on the server, so this shortens the suite without sharing any state.
    maxWorkers: 2,
    // Files share their worker's module cache (no test mocks modules or changes the environment; each file opens
    // its own database): importing the app again for every file cost about two seconds of CPU per file.
    isolate: false,
    testTimeout: 180_000,
    hookTimeout: 180_000,
  },
});

// The suites that start portals (integration, security, e2e) run two files at once: each file has its own portal
// process on a port the system picks (PORT=0), its own database (a scratch PostgreSQL database, a PostgreSQL server of
// its own on a free port, or PGlite in its own data directory), its own data directory and temporary files, its own
// Chromium, TSA and hardhat node on free ports; no test changes a shared server's settings or another file's rows.
// A file mostly waits on its portal, database or browser, so two share a 2-core machine well. The demo study most of
// them start from is seeded once per run and cloned (test/helpers/demo-snapshot.ts, under a lock file).
const portalFiles = { fileParallelism: true, maxWorkers: 2 };

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "unit",
          include: ["anchoring/**/*.test.ts", "app/**/*.test.ts", "db/**/*.test.ts", "test/unit/**/*.test.ts"],
          // Two files at once (vitest's default on 2 cores is one, which left a core idle for most of the suite).
          maxWorkers: 2,
          testTimeout: 120_000,
          hookTimeout: 120_000, // hooks start an openssl TSA or an EVM node
        },
      },
      dbSuite("pglite"),
      dbSuite("postgres"),
      {
        test: {
          name: "integration",
          include: ["test/integration/**/*.test.ts"],
          testTimeout: 300_000,
          hookTimeout: 600_000,
          // Two files at once (see `portalFiles` above).
          ...portalFiles,
        },
      },
      {
        // Security regressions (issue 16): each exploit run against a real portal the test starts.
        test: {
          name: "security",
          include: ["test/security/**/*.test.ts"],
          testTimeout: 300_000,
          hookTimeout: 600_000,
          ...portalFiles,
        },
      },
      {
        // Browser tests: playwright-core driving Debian's Chromium against a portal the test starts.
        test: {
          name: "e2e",
          include: ["test/e2e/**/*.test.ts"],
          testTimeout: 600_000,
          hookTimeout: 600_000,
          ...portalFiles,
          // expect.poll waits for the page (default 1 s: sized to a fast machine).
          expect: { poll: { timeout: 60_000, interval: 100 } },
        },
      },
      {
        test: {
          name: "long",
          // The full ranges of tests whose default run checks a bounded sample (TRIALSEAL_LONG=1).
          include: ["test/long/**/*.test.ts", "test/unit/fuzz.test.ts", "anchoring/log/sha256-nodes.test.ts"],
          testTimeout: 1_800_000,
          hookTimeout: 300_000,
        },
      },
    ],
  },
});
