/**
 * `trialseal import` on PostgreSQL (issue 18, ADR 0037): exit 0 imported, 1 problems listed one per line with row and
 * column and nothing imported, 2 unusable file or no --by account that may import (one line).
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cliAsync } from "../helpers/portal.ts";
import { openTestDatabase, type TestDb } from "../helpers/db.ts";
import { giveCompleteConsent } from "../helpers/consent.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { createUser } from "../../app/accounts/users.server.ts";
import { principalForUser } from "../../app/accounts/auth.server.ts";
import { importForm } from "../../app/records/forms.server.ts";
import { enrollParticipant } from "../../app/participants/participants.server.ts";

let t: TestDb;
let env: Record<string, string>;
const dir = mkdtempSync(path.join(tmpdir(), "trialseal-import-cli-"));
const file = (name: string, text: string) => {
  const f = path.join(dir, name);
  writeFileSync(f, text);
  return f;
};
const versions = async () => Number((await t.database.execute("SELECT count(*)::int AS n FROM record_versions"))[0].n);

beforeAll(async () => {
  t = await openTestDatabase("postgres");
  await createStudy(t.ctx, { code: "CLI-IMP", title: "CLI import", sites: [{ code: "S1", name: "1" }] }, null);
  const u = await createUser(
    t.ctx,
    {
      email: "inv@cli.test",
      fullName: "Inv",
      password: "amber otter winter forty-two",
      role: "investigator",
      study: "CLI-IMP",
      site: "S1",
    },
    null,
  );
  const inv = (await principalForUser(t.ctx, u.id))!;
  await importForm(
    t.ctx,
    "CLI-IMP",
    {
      code: "VITALS",
      title: "Vitals",
      version: 1,
      visits: ["SCREENING"],
      fields: [{ name: "sbp", label: "Systolic", type: "number" }],
    },
    { actorId: null },
  );
  await createUser(
    t.ctx,
    {
      email: "dm@cli.test",
      fullName: "Dm",
      password: "amber otter winter forty-two",
      role: "data_manager",
      study: "CLI-IMP",
    },
    null,
  );
  await enrollParticipant(t.ctx, inv, { study: "CLI-IMP", site: "S1" });
  await giveCompleteConsent(t.ctx, "CLI-IMP", "S1-001");
  env = {
    NODE_ENV: "test",
    DATA_DIR: t.ctx.env.dataDir,
    DATABASE_URL: t.url!,
    SESSION_SECRET: "test-session-secret-that-is-long-enough-0123456789",
    DATA_KEY: "11".repeat(32),
    SEED_DEMO: "false",
  };
  const m = await cliAsync(["db", "migrate"], env);
  expect(m.code, m.stderr).toBe(0);
}, 180_000);
afterAll(async () => {
  await t?.close();
});

describe("trialseal import", () => {
  it("exit 2 with one line without --by, or when the account is unknown or may not import", async () => {
    const f = file("by.csv", "subject,visit,sbp\nS1-001,SCREENING,120\n");
    for (const [by, message] of [
      [[], /--by EMAIL/],
      [["--by", "nobody@cli.test"], /--by: no account nobody@cli.test/],
      [["--by", "inv@cli.test"], /--by: inv@cli.test may not import data into CLI-IMP/],
    ] as const) {
      const r = await cliAsync(["import", "--study", "CLI-IMP", ...by, "--form", "VITALS", f], env);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
      expect(r.stderr).toMatch(message);
    }
    expect(await versions()).toBe(0);
  });

  it("exit 2 for an unusable file, 1 for problems (row and column, nothing imported), 0 imported", async () => {
    const bad = await cliAsync(
      ["import", "--study", "CLI-IMP", "--by", "dm@cli.test", "--form", "VITALS", file("x.csv", "")],
      env,
    );
    expect(bad.code, bad.stderr).toBe(2);
    expect(bad.stderr.trim().split("\n")).toHaveLength(1);
    const problems = await cliAsync(
      [
        "import",
        "--study",
        "CLI-IMP",
        "--by",
        "dm@cli.test",
        "--form",
        "VITALS",
        file("p.csv", "subject,visit,sbp\nS1-001,SCREENING,120\nS1-404,SCREENING,1\n"),
      ],
      env,
    );
    expect(problems.code, problems.stderr).toBe(1);
    expect(problems.stderr).toMatch(/^trialseal: row 3, column subject: no subject S1-404/m);
    expect(await versions()).toBe(0);
    const dry = await cliAsync(
      [
        "import",
        "--study",
        "CLI-IMP",
        "--by",
        "dm@cli.test",
        "--form",
        "VITALS",
        "--dry-run",
        file("d.csv", "subject,visit,sbp\nS1-001,SCREENING,120\n"),
      ],
      env,
    );
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toMatch(/dry run/);
    expect(await versions()).toBe(0);
    const ok = await cliAsync(
      [
        "import",
        "--study",
        "CLI-IMP",
        "--by",
        "dm@cli.test",
        "--form",
        "VITALS",
        file("ok.csv", "subject,visit,sbp\nS1-001,SCREENING,120\n"),
      ],
      env,
    );
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/imported 1 value\(s\) in 1 record\(s\) from ok.csv into CLI-IMP .*sha256 [0-9a-f]{64}/);
    expect(await versions()).toBe(1);
  });
});
