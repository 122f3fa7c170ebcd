/**
 * Issue 16 items 12 and 13: what the data directory holds is never created or overwritten by accident.
 * - A CLI command run where there are no deployment keys (another directory, a wrong DATA_DIR) refuses with one
 *   line naming DATA_DIR and creates nothing; only `npm start`, `db migrate` or `keys init` create keys.
 * - The demo credentials are kept per database: starting on PostgreSQL with the same DATA_DIR leaves the
 *   embedded database's demo password in place, and every start says where the demo logins are.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createScratchPostgres } from "../helpers/db.ts";
import { Browser, ROOT, startPortal, tempDataDir } from "../helpers/portal.ts";

let pg: { url: string; drop: () => Promise<void> };
beforeAll(async () => {
  pg = await createScratchPostgres();
});
afterAll(async () => {
  await pg?.drop();
});

/** The CLI as an operator runs it from some other directory (DATA_DIR left to its default ./data). */
function cliIn(cwd: string, args: string[], extra: Record<string, string> = {}) {
  const env: NodeJS.ProcessEnv = { ...process.env, NODE_ENV: "development", ...extra };
  delete env.DATA_DIR;
  const r = spawnSync(process.execPath, [path.join(ROOT, "bin", "trialseal.js"), ...args], {
    cwd,
    env,
    encoding: "utf8",
    timeout: 120_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("commands that need the deployment's keys (item 12)", () => {
  it("refuse in a directory without them, naming DATA_DIR, and create nothing", () => {
    const elsewhere = mkdtempSync(path.join(tmpdir(), "trialseal-elsewhere-"));
    for (const args of [
      ["export", "--study", "DEMO-001", "--format", "evidence", "--out", "e.zip"],
      ["checkpoint"],
      ["audit"],
      ["trust-policy"],
      ["keys", "list"],
      ["studies", "create", "--code", "X-1", "--title", "X", "--site", "S1"],
    ]) {
      const r = cliIn(elsewhere, args, { DATABASE_URL: pg.url });
      expect(r.code, `${args.join(" ")}: ${r.stderr}`).toBe(2);
      expect(r.stderr.trim().split("\n"), args.join(" ")).toHaveLength(1);
      expect(r.stderr).toMatch(/DATA_DIR/);
      expect(r.stderr).toContain(path.join(elsewhere, "data"));
      expect(readdirSync(elsewhere), `${args.join(" ")} created files`).toEqual([]);
    }
  });

  it("keys init (or db migrate) creates them; then the commands run", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "trialseal-keys-init-"));
    const init = cliIn(dir, ["keys", "init"], { DATABASE_URL: pg.url });
    expect(init.code, init.stderr).toBe(0);
    expect(existsSync(path.join(dir, "data", "keys"))).toBe(true);
    expect(init.stdout).toMatch(/log key [0-9a-f]{64}/);
    // A second init changes nothing and says so.
    const again = cliIn(dir, ["keys", "init"], { DATABASE_URL: pg.url });
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toBe(init.stdout.replaceAll("created", "already present"));
    const migrate = cliIn(dir, ["db", "migrate"], { DATABASE_URL: pg.url });
    expect(migrate.code, migrate.stderr).toBe(0);
    const list = cliIn(dir, ["keys", "list"], { DATABASE_URL: pg.url });
    expect(list.code, list.stderr).toBe(0);
    const migrated = mkdtempSync(path.join(tmpdir(), "trialseal-migrate-"));
    expect(cliIn(migrated, ["db", "migrate"], { DATABASE_URL: pg.url }).code).toBe(0);
    expect(existsSync(path.join(migrated, "data", "keys"))).toBe(true);
  });
});

describe("demo credentials per database (item 13)", () => {
  it("starting on PostgreSQL with the same DATA_DIR keeps the embedded database's demo password", async () => {
    const dataDir = tempDataDir();
    const passwordIn = (out: string) => /Demo password \(all demo users\): (\S+)/.exec(out)?.[1];
    const signsIn = async (url: string, password: string) =>
      (await new Browser(url).post("/login", { email: "monitor@demo.trialseal.test", password })).status === 302;

    let portal = await startPortal({ DATA_DIR: dataDir });
    const embedded = passwordIn(portal.output());
    expect(embedded).toBeTruthy();
    await portal.stop();
    const embeddedFile = readFileSync(path.join(dataDir, "demo-credentials.txt"), "utf8");

    portal = await startPortal({ DATA_DIR: dataDir, DATABASE_URL: pg.url });
    const onPostgres = passwordIn(portal.output());
    expect(onPostgres).toBeTruthy();
    expect(onPostgres).not.toBe(embedded);
    const pgFile = /Demo logins written to (\S+)/.exec(portal.output())?.[1] ?? "";
    expect(pgFile).not.toBe(path.join(dataDir, "demo-credentials.txt"));
    expect(readFileSync(pgFile, "utf8")).toContain(onPostgres);
    expect(await signsIn(portal.url, onPostgres ?? "")).toBe(true);
    await portal.stop();

    // Back on the embedded database: its file is untouched, the start says where the logins are, they work.
    expect(readFileSync(path.join(dataDir, "demo-credentials.txt"), "utf8")).toBe(embeddedFile);
    portal = await startPortal({ DATA_DIR: dataDir });
    expect(portal.output()).toContain(path.join(dataDir, "demo-credentials.txt"));
    expect(await signsIn(portal.url, embedded ?? "")).toBe(true);
    await portal.stop();
  });
});
