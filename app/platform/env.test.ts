import { mkdtempSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError, parseEnv } from "./env.server.ts";

const tmp = () => mkdtempSync(path.join(tmpdir(), "trialseal-env-"));
const prodSecrets = {
  SESSION_SECRET: "s".repeat(40),
  DATA_KEY: "ab".repeat(32),
  PUBLIC_URL: "https://trials.example.org",
};

describe("configuration", () => {
  // Issue 16 item 1: links in messages were built from the request's Host/Origin headers.
  it("takes the portal's public address from PUBLIC_URL: required in production, localhost:PORT otherwise", () => {
    const dir = tmp();
    const { PUBLIC_URL: _, ...secrets } = prodSecrets;
    expect(() => parseEnv({ NODE_ENV: "production", DATA_DIR: dir, ...secrets })).toThrow(/^missing PUBLIC_URL: /);
    expect(parseEnv({ NODE_ENV: "production", DATA_DIR: dir, ...prodSecrets }).publicUrl).toBe(
      "https://trials.example.org",
    );
    expect(parseEnv({ DATA_DIR: dir, PUBLIC_URL: "https://trials.example.org:8443/" }).publicUrl).toBe(
      "https://trials.example.org:8443",
    );
    expect(parseEnv({ DATA_DIR: dir }).publicUrl).toBe("http://localhost:3000");
    expect(parseEnv({ DATA_DIR: dir, PORT: "4100" }).publicUrl).toBe("http://localhost:4100");
    expect(parseEnv({ DATA_DIR: dir, PORT: "4100", HOST: "127.0.0.1" }).publicUrl).toBe("http://127.0.0.1:4100");
    for (const bad of ["trials.example.org", "ftp://trials.example.org", "https://trials.example.org/portal"]) {
      expect(() => parseEnv({ DATA_DIR: dir, PUBLIC_URL: bad })).toThrow(/^invalid PUBLIC_URL: /);
    }
  });

  it("generates development secrets into the data directory once and reuses them", () => {
    const dir = tmp();
    const a = parseEnv({ DATA_DIR: dir });
    const b = parseEnv({ DATA_DIR: dir });
    expect(a.sessionSecret).toBe(b.sessionSecret);
    expect(Buffer.from(a.dataKey).equals(Buffer.from(b.dataKey))).toBe(true);
    expect(a.dataKey.length).toBe(32);
    const file = path.join(dir, "secrets.json");
    expect(JSON.parse(readFileSync(file, "utf8")).SESSION_SECRET).toBe(a.sessionSecret);
    expect(statSync(file).mode & 0o077).toBe(0);
    expect(a.pgliteDir).toBe(path.join(dir, "pglite"));
    expect(a.port).toBe(3000);
    expect(a.seedDemo).toBe(true);
  });

  it("refuses to start production without real secrets, naming the variable", () => {
    const dir = tmp();
    expect(() => parseEnv({ NODE_ENV: "production", DATA_DIR: dir, DATA_KEY: prodSecrets.DATA_KEY })).toThrow(
      /^missing SESSION_SECRET/,
    );
    expect(() =>
      parseEnv({ NODE_ENV: "production", DATA_DIR: dir, SESSION_SECRET: prodSecrets.SESSION_SECRET }),
    ).toThrow(/^missing DATA_KEY/);
    expect(() => parseEnv({ NODE_ENV: "production", DATA_DIR: dir, ...prodSecrets, SESSION_SECRET: "short" })).toThrow(
      "invalid SESSION_SECRET: must be at least 32 characters",
    );
    const ok = parseEnv({ NODE_ENV: "production", DATA_DIR: dir, ...prodSecrets });
    expect(ok.seedDemo).toBe(false);
  });

  it("rejects malformed values with one line naming the variable", () => {
    const dir = tmp();
    const cases: [Record<string, string>, RegExp][] = [
      [{ DATABASE_URL: "not a url" }, /^invalid DATABASE_URL: not a URL/],
      [{ DATABASE_URL: "mysql://x@h/db" }, /^invalid DATABASE_URL: must start with postgres:\/\//],
      [{ PORT: "http" }, /^invalid PORT: must be a whole number/],
      [{ PORT: "70000" }, /^invalid PORT/],
      [{ DATA_KEY: "abcd" }, /^invalid DATA_KEY: must be 32 bytes/],
      [{ SEAL_INTERVAL_MS: "-5" }, /^invalid SEAL_INTERVAL_MS/],
      [{ NODE_ENV: "staging" }, /^invalid NODE_ENV/],
    ];
    for (const [vars, msg] of cases) {
      let err: unknown;
      try {
        parseEnv({ DATA_DIR: dir, ...vars });
      } catch (e) {
        err = e;
      }
      expect(err, JSON.stringify(vars)).toBeInstanceOf(ConfigError);
      expect((err as Error).message).toMatch(msg);
      expect((err as Error).message).not.toContain("\n");
    }
  });
});
