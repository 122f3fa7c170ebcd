import { defineConfig } from "vitest/config";

// Suites (projects). `npm test` (test/run-suites.js) runs them one after another and prints each one's time.
// The database suite runs twice: on PGlite and on real PostgreSQL.
const dbSuite = (engine: "pglite" | "postgres") => ({
  test: {
    name: `db-${engine}`,
    include: ["test/db/**/*.test.ts"],
    env: { TEST_DB_ENGINE: engine },
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "unit",
          include: ["anchoring/**/*.test.ts", "app/**/*.test.ts", "db/**/*.test.ts", "test/unit/**/*.test.ts"],
          testTimeout: 60_000,
        },
      },
      dbSuite("pglite"),
      dbSuite("postgres"),
      {
        test: {
          name: "integration",
          include: ["test/integration/**/*.test.ts"],
          testTimeout: 120_000,
          hookTimeout: 120_000,
          fileParallelism: false,
        },
      },
      {
        // Browser tests: playwright-core driving Debian's Chromium against a portal the test starts.
        test: {
          name: "e2e",
          include: ["test/e2e/**/*.test.ts"],
          testTimeout: 180_000,
          hookTimeout: 180_000,
          fileParallelism: false,
        },
      },
      {
        test: {
          name: "long",
          include: ["test/long/**/*.test.ts", "test/unit/fuzz.test.ts"],
          testTimeout: 1_800_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
