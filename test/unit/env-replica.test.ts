/** DATABASE_REPLICA_URL (ADR 0044): read once with the environment, only beside DATABASE_URL, named when wrong. */
import { describe, expect, it } from "vitest";
import { ConfigError } from "../../app/platform/env.server.ts";
import { testEnv } from "../helpers/env.ts";

const PRIMARY = "postgres://postgres@127.0.0.1:5432/trialseal";

describe("DATABASE_REPLICA_URL", () => {
  it("is read beside DATABASE_URL; unset or empty, there is no replica", () => {
    const url = "postgres://reader@replica.example:5433/trialseal";
    expect(testEnv({ DATABASE_URL: PRIMARY, DATABASE_REPLICA_URL: url }).databaseReplicaUrl).toBe(url);
    expect(testEnv({ DATABASE_URL: PRIMARY }).databaseReplicaUrl).toBeUndefined();
    expect(testEnv({ DATABASE_URL: PRIMARY, DATABASE_REPLICA_URL: "" }).databaseReplicaUrl).toBeUndefined();
  });

  it("without DATABASE_URL (the embedded database) it is refused, naming both", () => {
    const run = () => testEnv({ DATABASE_REPLICA_URL: "postgres://postgres@127.0.0.1:5433/trialseal" });
    expect(run).toThrow(ConfigError);
    expect(run).toThrow(/^invalid DATABASE_REPLICA_URL: a read replica needs DATABASE_URL/);
  });

  it("a malformed URL is refused naming DATABASE_REPLICA_URL, not DATABASE_URL", () => {
    for (const [value, why] of [
      ["not a url", /^invalid DATABASE_REPLICA_URL: not a URL/],
      ["mysql://h/db", /^invalid DATABASE_REPLICA_URL: must start with postgres:\/\//],
      ["postgres://h:5433", /^invalid DATABASE_REPLICA_URL: names no database/],
    ] as const)
      expect(() => testEnv({ DATABASE_URL: PRIMARY, DATABASE_REPLICA_URL: value })).toThrow(why);
  });
});
