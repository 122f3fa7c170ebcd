import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import {
  Browser,
  ROOT,
  cli,
  portalStartFailure,
  startPortal,
  tempDataDir,
  type Portal,
  demoPasswordOf,
} from "../helpers/portal.ts";
import { demoClone } from "../helpers/demo-snapshot.ts";
import { dataDirWithDatabase } from "../helpers/pglite-template.ts";
import { nextStepTotp } from "../helpers/totp.ts";

const running: Portal[] = [];
afterAll(async () => {
  for (const p of running) await p.stop();
});

function demoPassword(dataDir: string): string {
  const text = readFileSync(path.join(dataDir, "demo-credentials.txt"), "utf8");
  return /password for every account: (\S+)/.exec(text)![1];
}

async function exerciseLogin(p: Portal, password: string) {
  const b = new Browser(p.url);
  const page = await b.get("/login");
  expect(page.status).toBe(200);
  expect(page.text).toContain("Sign in");
  // Not signed in: protected pages redirect to the login page.
  expect((await b.get("/studies")).location).toBe("/login?next=%2Fstudies");
  const bad = await b.post("/login", { email: "coordinator@demo.trialseal.test", password: "wrong-password" });
  expect(bad.status).toBe(401);
  expect(bad.text).toContain("email or password is incorrect");
  const ok = await b.post("/login", { email: "coordinator@demo.trialseal.test", password });
  expect(ok.status).toBe(302);
  expect(ok.headers.get("set-cookie")).toMatch(/HttpOnly; SameSite=Lax/);
  const studies = await b.get("/studies");
  expect(studies.status).toBe(200);
  expect(studies.text).toContain("DEMO-001");
  const study = await b.get("/studies/DEMO-001");
  expect(study.text).toContain("VITALS");
  expect(study.text).toContain("Demo Central IRB");
  // A cross-site form post is refused.
  expect((await b.post("/logout", {}, { origin: "http://evil.example" })).status).toBe(403);
  const out = await b.post("/logout", {});
  expect(out.location).toBe("/login");
  expect((await b.get("/studies")).status).toBe(302);
}

describe("portal on the embedded database (PGlite)", () => {
  // The embedded database made and migrated once per run (test/helpers/pglite-template.ts): the portal opens it and
  // seeds the demo study as on a first start. A start on an empty data directory (initdb and the migrations in
  // WebAssembly) is data-dir.test.ts's ("demo credentials per database").
  let dataDir = "";
  const env: Record<string, string> = {};

  it("starts, seeds the demo study, lets demo users sign in, and the CLI works through it while it runs", async () => {
    dataDir = await dataDirWithDatabase();
    env.DATA_DIR = dataDir;
    // A seeded start: minutes on a machine with every core busy (as in demo-snapshot.ts; the budget bounds a hang).
    const p = await startPortal(env, 600_000);
    running.push(p);
    expect(p.output()).toContain("Seeded demo study DEMO-001");
    await exerciseLogin(p, demoPassword(dataDir));

    const tok = cli(["tokens", "create", "--study", "DEMO-001", "--name", "edc"], env);
    expect(tok.stderr).toContain("not shown again");
    expect(tok.code).toBe(0);
    expect(tok.stdout).toMatch(/^ts_[A-Za-z0-9_-]{43}\n$/);

    const user = cli(
      [
        "users",
        "create",
        "--email",
        "new@site.test",
        "--role",
        "coordinator",
        "--study",
        "DEMO-001",
        "--site",
        "SITE-01",
        "--password-stdin",
      ],
      env,
      "a-long-enough-password\n",
    );
    expect(user.code).toBe(0);
    const b = new Browser(p.url);
    expect((await b.post("/login", { email: "new@site.test", password: "a-long-enough-password" })).status).toBe(302);

    const bad = cli(["studies", "create", "--code", "DEMO-001", "--title", "dup", "--site", "X"], env);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toBe("trialseal: study DEMO-001 already exists\n");

    // Form definitions from a file, through the running portal: approved on import unless --draft.
    const formFile = path.join(env.DATA_DIR, "cm.json");
    writeFileSync(
      formFile,
      JSON.stringify({
        code: "CM",
        title: "Concomitant medication",
        version: 1,
        visits: ["ANY"],
        fields: [{ name: "drug", label: "Medication", type: "text", required: true }],
      }),
    );
    const imported = cli(["forms", "import", "--study", "DEMO-001", formFile], env);
    expect(imported.stderr).toBe("");
    expect(imported.stdout).toMatch(/^imported and approved form CM version 1 in DEMO-001 \(sha256 [0-9a-f]{64}\)\n$/);
    writeFileSync(
      formFile,
      JSON.stringify({
        code: "CM",
        title: "Concomitant medication",
        version: 2,
        visits: ["ANY"],
        fields: [{ name: "drug", label: "Medication", type: "txt" }],
      }),
    );
    const invalid = cli(["forms", "import", "--study", "DEMO-001", formFile], env);
    expect(invalid.code).toBe(1);
    expect(invalid.stderr).toMatch(/^trialseal: form definition: fields\[0\]\.type: /);
    writeFileSync(formFile, "{not json");
    const notJson = cli(["forms", "import", "--study", "DEMO-001", formFile], env);
    expect(notJson.code).toBe(2);
    expect(notJson.stderr).toMatch(/cm\.json is not JSON/);
    expect(cli(["forms", "list", "--study", "DEMO-001"], env).stdout).toMatch(
      /^CM\tv1\tapproved\tConcomitant medication$/m,
    );

    // A second portal on the same data directory is refused with a clear message.
    const second = portalStartFailure(env);
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(
      /^trialseal: the embedded database .* is in use by process \d+ \(the running portal\)/,
    );
    expect(second.stderr.trim().split("\n")).toHaveLength(1);

    expect(await p.stop()).toBe(0);
    // With the portal stopped, the CLI opens the directory itself; the data is all there.
    const again = cli(["studies", "create", "--code", "AFTER-1", "--title", "After", "--site", "S1=Site one"], env);
    expect(again.stderr).toBe("");
    expect(again.code).toBe(0);
    const p2 = await startPortal(env);
    running.push(p2);
    expect(p2.output()).not.toContain("Seeded demo study"); // seeded once
    const b2 = new Browser(p2.url);
    // The platform admin must enrol a second factor at first sign-in, then lands where they were going.
    const signedIn = await b2.signIn("admin@demo.trialseal.test", demoPassword(dataDir));
    expect(signedIn.status).toBe(302);
    expect(signedIn.secret).toMatch(/^[A-Z2-7]{16,}$/);
    expect((await b2.get("/account")).text).toContain("On: an authenticator app code is asked at every sign-in.");
    // Next time: password, then the code (the TOTP step page, through real HTTP).
    // Codes are single-use (per 30 s step) and the enrolment just used the current one: answer with the next
    // step's code, which the portal accepts (one step of clock skew) and has never seen.
    const b3 = new Browser(p2.url);
    const again2 = await b3.signIn("admin@demo.trialseal.test", demoPassword(dataDir), signedIn.secret, {
      code: nextStepTotp,
    });
    expect(again2.status).toBe(302);
    expect(again2.location).toBe("/studies");
    expect((await b3.get("/studies")).status).toBe(200);
    expect((await b2.get("/studies")).text).toContain("AFTER-1");
    await p2.stop();
  });
});

describe("portal on PostgreSQL", () => {
  it("starts with DATABASE_URL, serves the demo logins, and the CLI works alongside it", async () => {
    // The demo seeded once per run and cloned (test/helpers/demo-snapshot.ts): this test is about starting on
    // PostgreSQL, not seeding. A first start on an empty PostgreSQL database (migrated and seeded by the portal) is
    // data-dir.test.ts's ("demo credentials per database").
    const clone = await demoClone("postgres");
    try {
      const env = clone.env;
      const p = await startPortal(env);
      running.push(p);
      expect(p.output()).toContain("database: postgres");
      await exerciseLogin(p, demoPasswordOf(p));
      const tok = cli(["tokens", "create", "--study", "DEMO-001", "--name", "edc"], env);
      expect(tok.code).toBe(0);
      expect(tok.stdout).toMatch(/^ts_/);
      const migrate = cli(["db", "migrate"], env);
      expect(migrate.code).toBe(0);
      await p.stop();
    } finally {
      await clone.drop();
    }
  });
});

describe("bad configuration stops start-up with one clear line", () => {
  const cases: [string, Record<string, string>, RegExp][] = [
    ["malformed DATABASE_URL", { DATABASE_URL: "postgres//nope" }, /^trialseal: invalid DATABASE_URL: not a URL/],
    [
      "unreachable server",
      { DATABASE_URL: "postgres://postgres@127.0.0.1:1/test" },
      /^trialseal: cannot connect to PostgreSQL at postgres:\/\/postgres@127\.0\.0\.1:1\/test: .*ECONNREFUSED/,
    ],
    [
      "short SESSION_SECRET in production",
      { NODE_ENV: "production", SESSION_SECRET: "too-short", DATA_KEY: "ab".repeat(32) },
      /^trialseal: invalid SESSION_SECRET: must be at least 32 characters/,
    ],
    [
      "missing DATA_KEY in production",
      { NODE_ENV: "production", SESSION_SECRET: "x".repeat(40) },
      /^trialseal: missing DATA_KEY/,
    ],
  ];
  for (const [name, vars, message] of cases) {
    it(name, () => {
      const r = portalStartFailure({ DATA_DIR: tempDataDir(), ...vars });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(message);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
      expect(r.stderr).not.toMatch(/\bat .*\.ts:\d+/); // no stack trace
    });
  }

  it("the CLI reports bad configuration and bad usage with exit code 2", () => {
    const r = cli(["tokens", "create", "--study", "X", "--name", "n"], { DATA_DIR: tempDataDir(), PORT: "abc" });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe("trialseal: invalid PORT: must be a whole number\n");
    const u = cli(["tokens", "create"], { DATA_DIR: tempDataDir() });
    expect(u.code).toBe(2);
    expect(u.stderr).toMatch(/required option/);
    const h = cli(["--help"], { DATA_DIR: tempDataDir() });
    expect(h.code).toBe(0);
    expect(h.stdout).toContain("tokens");
    // As a user types it, right after npm install.
    const npx = spawnSync("npx", ["--no-install", "trialseal", "--help"], {
      cwd: ROOT,
      encoding: "utf8",
      timeout: 60_000,
    });
    expect(npx.status).toBe(0);
    expect(npx.stdout).toContain("Usage: trialseal");
  });
});
