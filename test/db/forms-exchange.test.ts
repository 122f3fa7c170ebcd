/**
 * Files of forms in and out of a study (app/form-exchange, ADR 0029), on PGlite and PostgreSQL: a REDCap data
 * dictionary imports in one go (each form approved by a ledger entry), a file with any problem imports nothing,
 * re-importing makes the next versions, exports round-trip; and the real `trialseal forms import|export` CLI as a
 * person runs it, on a database of its own on the same engine (exit 0 imported, 1 refused by row, 2 unusable).
 */
import { spawn } from "node:child_process";
import type { Server } from "node:http";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createScratchPostgres, engineUnderTest, openTestDatabase, type TestDb } from "../helpers/db.ts";
import { dataDirWithDatabase } from "../helpers/pglite-template.ts";
import { ROOT } from "../helpers/portal.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { createUser } from "../../app/accounts/users.server.ts";
import { principalForUser } from "../../app/accounts/auth.server.ts";
import { importForms, listStudyForms } from "../../app/records/forms.server.ts";
import { FormFileError, exportForms, importFormsFile } from "../../app/form-exchange/form-files.server.ts";
import { redcapDictionaryToForms } from "../../app/form-exchange/redcap-dictionary.ts";
import { odmMetadataToForms } from "../../app/form-exchange/odm-metadata-import.ts";
import type { Principal } from "../../app/platform/permissions.server.ts";
import type { AppContext } from "../../app/platform/context.server.ts";
import { createAppContext } from "../../app/platform/context.server.ts";
import { parseEnv } from "../../app/platform/env.server.ts";
import { startControlServer } from "../../app/platform/control.server.ts";

const FIXTURE = readFileSync(path.join(ROOT, "test", "fixtures", "redcap-dictionary.csv"), "utf8");
const PW = "amber otter winter forty-two";
const dir = mkdtempSync(path.join(tmpdir(), "ts-forms-exchange-"));
let t: TestDb;
let admin: Principal;
let coordinator: Principal;

const count = async (sql: string) => Number((await t.database.execute(sql))[0].n);
const approvals = () => count(`SELECT count(*)::int AS n FROM ledger_entries WHERE kind = 'form.approved'`);
const formRows = () => count(`SELECT count(*)::int AS n FROM forms`);

beforeAll(async () => {
  t = await openTestDatabase();
  await createStudy(t.ctx, { code: "FX-1", title: "Forms exchange", sites: [{ code: "A", name: "Site A" }] }, null);
  const who = async (role: "admin" | "coordinator") => {
    const u = await createUser(
      t.ctx,
      {
        email: `${role}@fx.test`,
        fullName: `${role} person`,
        password: PW,
        role,
        study: "FX-1",
        site: role === "coordinator" ? "A" : undefined,
      },
      null,
    );
    return (await principalForUser(t.ctx, u.id))!;
  };
  admin = await who("admin");
  coordinator = await who("coordinator");
});
afterAll(async () => {
  await t?.close();
});

describe(`files of forms through the services (${engineUnderTest()})`, () => {
  it("imports a REDCap dictionary in one go, each form approved by a ledger entry; only admins may", async () => {
    await expect(
      importFormsFile(t.ctx, coordinator, "FX-1", { text: FIXTURE, fileName: "dd.csv" }),
    ).rejects.toMatchObject({ code: "forbidden" });
    const before = await approvals();
    const r = await importFormsFile(t.ctx, admin, "fx-1", {
      text: FIXTURE,
      fileName: "project_DataDictionary_2026-11-30.csv",
      repeating: ["adverse_events"],
      visits: ["screening", "WEEK4"],
    });
    expect(r.format).toBe("redcap");
    expect(r.forms.map((f) => [f.code, f.version, f.status])).toEqual([
      ["DEMOGRAPHICS", 1, "approved"],
      ["VITAL_SIGNS", 1, "approved"],
      ["MEDICAL_HISTORY", 1, "approved"],
      ["ADVERSE_EVENTS", 1, "approved"],
    ]);
    expect(await approvals()).toBe(before + 4);
    const ae = JSON.parse(r.forms[3].definitionText);
    expect(ae).toMatchObject({ repeating: true, visits: ["SCREENING", "WEEK4"] });
  });

  it("refuses a file with any bad row, listing every one, and imports none of its forms", async () => {
    const bad = FIXTURE.replace("vs_time,vital_signs,,text,", "vs_time,vital_signs,,file,").replace(
      "[mh_any] = '1'",
      "[mh_any] = '1' xor 2",
    );
    const [rowsBefore, approvalsBefore] = [await formRows(), await approvals()];
    const err = await importFormsFile(t.ctx, admin, "FX-1", { text: bad }).catch((e) => e);
    expect(err).toBeInstanceOf(FormFileError);
    expect(err.unusable).toBe(false);
    expect(err.fileProblems.map((p: { row: number; column: string }) => [p.row, p.column])).toEqual([
      [23, "Field Type"],
      [35, "Branching Logic (Show field only if...)"],
    ]);
    expect(err.message).toBe("the file was refused, nothing was imported: 2 problems");
    expect([await formRows(), await approvals()]).toEqual([rowsBefore, approvalsBefore]);
  });

  it("is all or nothing: a form that cannot be stored rolls back the forms stored before it", async () => {
    const good = {
      code: "NEWFORM",
      title: "New",
      version: 1,
      visits: ["V1"],
      fields: [{ name: "a", label: "A", type: "text" }],
    };
    const existing = JSON.parse(
      (await listStudyForms(t.ctx, "FX-1")).find((f) => f.code === "VITAL_SIGNS")!.definitionText,
    );
    const [rowsBefore, approvalsBefore] = [await formRows(), await approvals()];
    // Through the file import: the conflict is found before anything is written.
    const err = await importFormsFile(t.ctx, admin, "FX-1", { text: JSON.stringify([good, existing]) }).catch((e) => e);
    expect(err.fileProblems).toEqual([
      { where: "VITAL_SIGNS", message: "form VITAL_SIGNS version 1 already exists in FX-1: give it a new version" },
    ]);
    // Straight into importForms: the unique violation of the second form rolls back the first.
    await expect(importForms(t.ctx, "FX-1", [good, existing], { actorId: null })).rejects.toMatchObject({
      code: "conflict",
      message: "form VITAL_SIGNS version 1 already exists in FX-1",
    });
    expect([await formRows(), await approvals()]).toEqual([rowsBefore, approvalsBefore]);
  });

  it("names an unusable file: unknown format, not JSON, too large", async () => {
    const unusable = async (text: string, fileName?: string) => {
      const e = await importFormsFile(t.ctx, admin, "FX-1", { text, fileName }).catch((x) => x);
      expect(e).toBeInstanceOf(FormFileError);
      expect(e.unusable).toBe(true);
      return e.message as string;
    };
    expect(await unusable("hello", "forms.txt")).toMatch(/cannot tell the file's format/);
    expect(await unusable("{oops", "broken.json")).toMatch(/^broken\.json is not JSON/);
    expect(await unusable("x".repeat(1024 * 1024 + 1))).toMatch(/at most 1 MB/);
  });

  it("re-importing a dictionary makes the next version of each form; exports round-trip", async () => {
    const csv = await exportForms(t.ctx, "FX-1", "redcap");
    expect(csv.name).toBe("FX-1-redcap-dictionary.csv");
    expect(csv.text.split("\r\n")[0]).toMatch(/^"Variable \/ Field Name","Form Name",/);
    const r = await importFormsFile(t.ctx, admin, "FX-1", {
      text: csv.text,
      draft: true,
      repeating: ["ADVERSE_EVENTS"],
      visits: ["SCREENING", "WEEK4"],
    });
    expect(r.forms.map((f) => [f.code, f.version, f.status])).toEqual([
      ["ADVERSE_EVENTS", 2, "draft"],
      ["DEMOGRAPHICS", 2, "draft"],
      ["MEDICAL_HISTORY", 2, "draft"],
      ["VITAL_SIGNS", 2, "draft"],
    ]);
    const original = redcapDictionaryToForms(FIXTURE, {
      visits: ["SCREENING", "WEEK4"],
      repeating: ["adverse_events"],
    });
    const byCode = new Map(original.forms.map((f) => [f.code, f]));
    for (const f of r.forms) expect(JSON.parse(f.definitionText)).toEqual({ ...byCode.get(f.code), version: 2 });

    // The versions 2 are drafts: the export holds the latest approved versions only.
    const json = await exportForms(t.ctx, "FX-1", "json");
    expect(JSON.parse(json.text).map((f: { code: string; version: number }) => `${f.code}@${f.version}`)).toEqual([
      "ADVERSE_EVENTS@1",
      "DEMOGRAPHICS@1",
      "MEDICAL_HISTORY@1",
      "VITAL_SIGNS@1",
    ]);
    const odm = await exportForms(t.ctx, "FX-1", "odm");
    expect(odm.mediaType).toBe("application/xml");
    const back = odmMetadataToForms(odm.text);
    expect(back.problems).toEqual([]);
    expect(back.forms.map((f) => f.code).sort()).toEqual([
      "ADVERSE_EVENTS",
      "DEMOGRAPHICS",
      "MEDICAL_HISTORY",
      "VITAL_SIGNS",
    ]);
  });
});

describe(`trialseal forms import | export, the real CLI (${engineUnderTest()})`, () => {
  let env: Record<string, string>;
  let drop: (() => Promise<void>) | undefined;
  let portal: { ctx: AppContext; control: Server } | undefined;
  // Asynchronous: on PGlite this process answers the CLI's commands on the control socket meanwhile.
  const cli = (...args: string[]) =>
    new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve, reject) => {
      const child = spawn(process.execPath, [path.join(ROOT, "bin", "trialseal.js"), ...args], {
        cwd: dir,
        env: { ...process.env, ...env },
        timeout: 180_000,
      });
      let stdout = "";
      let stderr = "";
      child.stdout.setEncoding("utf8").on("data", (c: string) => (stdout += c));
      child.stderr.setEncoding("utf8").on("data", (c: string) => (stderr += c));
      child.on("error", reject);
      child.on("close", (status) => resolve({ status, stdout, stderr }));
    });
  beforeAll(async () => {
    // The CLI opens a database of its own on the engine under test (an in-memory PGlite is this process's only).
    // PGlite: a data directory whose database is already made and migrated (no initdb); `db migrate` opens it
    // itself and creates the deployment's keys, then this process holds it as a running portal does, with the
    // control socket: every later CLI run sends its command there instead of opening the embedded database again.
    const dataDir =
      engineUnderTest() === "pglite" ? await dataDirWithDatabase() : mkdtempSync(path.join(tmpdir(), "ts-forms-cli-"));
    env = { DATA_DIR: dataDir, SEED_DEMO: "false", DATABASE_URL: "" };
    if (engineUnderTest() === "postgres") {
      const scratch = await createScratchPostgres({ migrated: true });
      env.DATABASE_URL = scratch.url;
      drop = scratch.drop;
    }
    const migrated = await cli("db", "migrate");
    expect(migrated.status, migrated.stderr).toBe(0);
    if (engineUnderTest() === "pglite") {
      const controlSocket = path.join(dataDir, "control.sock");
      const ctx = await createAppContext(parseEnv({ ...process.env, ...env }), {
        lockInfo: { controlSocket, role: "portal" },
      });
      portal = { ctx, control: await startControlServer(ctx, controlSocket) };
    }
    const created = await cli("studies", "create", "--code", "CLI-1", "--title", "CLI", "--site", "A");
    expect(created.status, created.stderr).toBe(0);
  });
  afterAll(async () => {
    if (portal) {
      await new Promise((resolve) => portal!.control.close(resolve));
      await portal.ctx.database.close();
    }
    await drop?.();
  });

  it("imports a dictionary (exit 0), refuses a bad one listing every row (1), an unusable file (2)", async () => {
    const fixture = path.join(ROOT, "test", "fixtures", "redcap-dictionary.csv");
    const ok = await cli(
      "forms",
      "import",
      "--study",
      "CLI-1",
      fixture,
      "--repeating",
      "adverse_events",
      "--visits",
      "SCREENING,WEEK4",
    );
    expect(ok.stderr).toBe("");
    expect(ok.status).toBe(0);
    expect(ok.stdout.trim().split("\n")).toEqual(
      ["DEMOGRAPHICS", "VITAL_SIGNS", "MEDICAL_HISTORY", "ADVERSE_EVENTS"].map((c) =>
        expect.stringMatching(
          new RegExp(`^imported and approved form ${c} version 1 in CLI-1 \\(sha256 [0-9a-f]{64}\\)$`),
        ),
      ),
    );

    const badFile = path.join(dir, "bad-dictionary.csv");
    writeFileSync(
      badFile,
      FIXTURE.replace("vs_time,vital_signs,,text,", "vs_time,vital_signs,,file,").replace(
        '"1, Hispanic or Latino',
        '"1 Hispanic or Latino',
      ),
    );
    const bad = await cli("forms", "import", "--study", "CLI-1", badFile, "--format", "redcap");
    expect(bad.status).toBe(1);
    expect(bad.stdout).toBe("");
    expect(bad.stderr.split("\n").filter(Boolean)).toEqual([
      'trialseal: row 16, Choices, Calculations, OR Slider Labels: the choice "1 Hispanic or Latino" has no code: ' +
        "write it as CODE, Label",
      "trialseal: row 23, Field Type: file fields cannot be imported: TrialSeal has no file field; remove the row",
      "trialseal: the file was refused, nothing was imported: 2 problems",
    ]);

    const junk = path.join(dir, "notes.txt");
    writeFileSync(junk, "just some notes\n");
    const unusable = await cli("forms", "import", "--study", "CLI-1", junk);
    expect(unusable.status).toBe(2);
    expect(unusable.stderr).toMatch(/^trialseal: cannot tell the file's format/);
    expect((await cli("forms", "import", "--study", "CLI-1", junk, "--format", "xls")).status).toBe(2);
    expect((await cli("forms", "import", "--study", "CLI-1", path.join(dir, "missing.csv"))).stderr).toMatch(
      /cannot read .*missing\.csv: ENOENT/,
    );
    const big = path.join(dir, "big.csv");
    writeFileSync(big, "x".repeat(1024 * 1024 + 1));
    const tooBig = await cli("forms", "import", "--study", "CLI-1", big);
    expect(tooBig.status).toBe(2);
    expect(tooBig.stderr).toMatch(/a file of forms may be at most 1048576 bytes/);
  });

  it("exports REDCap, JSON and ODM; the exported dictionary and ODM file import again as next versions", async () => {
    const out = await cli("forms", "export", "--study", "CLI-1", "--format", "redcap", "--out", "exported.csv");
    expect(out.stderr).toBe("");
    expect(out.stdout).toMatch(/^wrote .*exported\.csv \(4 forms, \d+ bytes, sha256 [0-9a-f]{64}\)\n$/);
    const again = await cli("forms", "import", "--study", "CLI-1", path.join(dir, "exported.csv"), "--draft");
    expect(again.status, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/^imported as draft form ADVERSE_EVENTS version 2 in CLI-1/);
    const json = await cli("forms", "export", "--study", "CLI-1", "--format", "json");
    expect(json.status).toBe(0);
    expect(JSON.parse(json.stdout)).toHaveLength(4);
    const odm = await cli("forms", "export", "--study", "CLI-1", "--format", "odm");
    expect(odm.stdout).toMatch(/^<\?xml version="1\.0" encoding="UTF-8"\?>\n<ODM /);
    // The ODM file, detected by its content, imports too: the next version of every form.
    writeFileSync(path.join(dir, "metadata.xml"), odm.stdout);
    const fromOdm = await cli("forms", "import", "--study", "CLI-1", path.join(dir, "metadata.xml"), "--draft");
    expect(fromOdm.stderr).toBe("");
    expect(fromOdm.stdout).toMatch(/^imported as draft form ADVERSE_EVENTS version 3 in CLI-1/);
    const wrong = await cli("forms", "export", "--study", "CLI-1", "--format", "pdf");
    expect(wrong.status).toBe(1);
    expect(wrong.stderr).toMatch(/format: one of json, redcap, odm/);
    expect((await cli("forms", "list", "--study", "CLI-1")).stdout).toMatch(/^VITAL_SIGNS\tv3\tdraft\tVital signs$/m);
  });
});
