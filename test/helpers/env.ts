import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { parseEnv, type Env } from "../../app/platform/env.server.ts";

/** A test configuration with explicit secrets and a private temporary data directory. */
export function testEnv(overrides: Record<string, string> = {}): Env {
  return parseEnv({
    NODE_ENV: "test",
    DATA_DIR: mkdtempSync(path.join(tmpdir(), "trialseal-test-")),
    SESSION_SECRET: "test-session-secret-that-is-long-enough-0123456789",
    DATA_KEY: "11".repeat(32),
    ...overrides,
  });
}
