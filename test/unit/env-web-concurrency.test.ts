/** WEB_CONCURRENCY (ADR 0043): portal workers on PostgreSQL, read once with the environment, named when wrong. */
import { availableParallelism } from "node:os";
import { describe, expect, it } from "vitest";
import { ConfigError } from "../../app/platform/env.server.ts";
import { testEnv } from "../helpers/env.ts";

const PRIMARY = "postgres://postgres@127.0.0.1:5432/trialseal";

describe("WEB_CONCURRENCY", () => {
  it("on PostgreSQL: the number given, or the number of cores when unset or empty", () => {
    expect(testEnv({ DATABASE_URL: PRIMARY, WEB_CONCURRENCY: "3" }).webConcurrency).toBe(3);
    expect(testEnv({ DATABASE_URL: PRIMARY, WEB_CONCURRENCY: "1" }).webConcurrency).toBe(1);
    expect(testEnv({ DATABASE_URL: PRIMARY }).webConcurrency).toBe(availableParallelism());
    expect(testEnv({ DATABASE_URL: PRIMARY, WEB_CONCURRENCY: "" }).webConcurrency).toBe(availableParallelism());
  });

  it("on the embedded database: one process; 1 is accepted, more is refused naming the variable", () => {
    expect(testEnv({}).webConcurrency).toBe(1);
    expect(testEnv({ WEB_CONCURRENCY: "1" }).webConcurrency).toBe(1);
    const run = () => testEnv({ WEB_CONCURRENCY: "2" });
    expect(run).toThrow(ConfigError);
    expect(run).toThrow(/^invalid WEB_CONCURRENCY: the embedded database \(no DATABASE_URL\) is served by one process/);
  });

  it("a value that is not a whole number from 1 to 256 is refused naming WEB_CONCURRENCY", () => {
    for (const [value, why] of [
      ["two", /^invalid WEB_CONCURRENCY: must be a whole number/],
      ["-1", /^invalid WEB_CONCURRENCY: must be a whole number/],
      ["1.5", /^invalid WEB_CONCURRENCY: must be a whole number/],
      ["0", /^invalid WEB_CONCURRENCY: .*(>=|at least|too small)/i],
      ["257", /^invalid WEB_CONCURRENCY: .*(<=|at most|too big)/i],
    ] as const)
      expect(() => testEnv({ DATABASE_URL: PRIMARY, WEB_CONCURRENCY: value })).toThrow(why);
  });
});
