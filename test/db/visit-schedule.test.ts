/**
 * The visit schedule and its window checks (issue 18, ADR 0032) on PGlite and PostgreSQL: a schedule checked against
 * the study (errors name the visit and the field in words), stored as canonical text sealed by its SHA-256, set and
 * shown from the CLI; each visit's window and state; an out-of-window visit date opens an automatic query (the save
 * succeeds), an in-window one does not; tamper detection for visit_schedules rows.
 */
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createStaff } from "../helpers/study-staff.ts";
import { runIntegrityAudit, type AuditReport } from "../../app/integrity-audit/integrity-audit.server.ts";
import { enrollParticipant } from "../../app/participants/participants.server.ts";
import { runCommand } from "../../app/platform/commands.server.ts";
import type { Principal } from "../../app/platform/permissions.server.ts";
import { importForm } from "../../app/records/forms.server.ts";
import { correctRecord, saveRecord, todayIn } from "../../app/records/records.server.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { setSchedule } from "../../app/visit-schedule/schedule-setup.server.ts";
import { currentSchedule } from "../../app/visit-schedule/schedule.server.ts";
import { scheduleTable } from "../../app/visit-schedule/schedule-view.server.ts";
import { participantVisitWindows } from "../../app/visit-schedule/visit-windows.server.ts";
import { giveCompleteConsent } from "../helpers/consent.ts";
import { engineUnderTest, openTestDatabase, type TestDb } from "../helpers/db.ts";

let t: TestDb;
const p: Record<string, Principal> = {};
let studyId: string;
let participantId: string;
const rows = async (q: string) => (await t.database.execute(q)) as Record<string, unknown>[];
const tamperFindings = (r: AuditReport) => r.findings.filter((f) => f.severity === "tamper");
async function tamper(statements: string[]) {
  await t.ctx.db.transaction(async (tx) => {
    await tx.execute(sql.raw("SET LOCAL session_replication_role = replica"));
    for (const s of statements) await tx.execute(sql.raw(s));
  });
}

const SCHEDULE = {
  baseline: { kind: "field", visit: "BASELINE", form: "RAND", field: "randdat" },
  visits: [
    { code: "BASELINE", name: "Baseline", day: 0, windowBefore: 0, windowAfter: 0, forms: ["RAND"] },
    {
      code: "WEEK2",
      name: "Week 2",
      day: 14,
      windowBefore: 2,
      windowAfter: 3,
      forms: ["VISIT", "VS"],
      dateField: { form: "VISIT", field: "visdat" },
    },
    {
      code: "WEEK4",
      name: "Week 4",
      day: 28,
      windowBefore: 3,
      windowAfter: 3,
      forms: ["VISIT"],
      dateField: { form: "VISIT", field: "visdat" },
    },
  ],
};

beforeAll(async () => {
  t = await openTestDatabase();
  await createStudy(t.ctx, { code: "SCH-1", title: "Schedule", sites: [{ code: "S1", name: "1" }] }, null);
  Object.assign(
    p,
    (
      await createStaff(t.ctx, "SCH-1", "sch.test", [
        ["admin", "admin"],
        ["inv", "investigator", "S1"],
      ])
    ).principals,
  );
  const form = (code: string, visits: string[], fields: object[]) =>
    importForm(t.ctx, "SCH-1", { code, title: code, version: 1, visits, fields }, { actorId: null });
  await form("RAND", ["BASELINE"], [{ name: "randdat", label: "Randomization date", type: "date", required: true }]);
  await form(
    "VISIT",
    ["WEEK2", "WEEK4"],
    [
      { name: "visdat", label: "Visit date", type: "date", required: true },
      { name: "note", label: "Note", type: "text" },
    ],
  );
  await form("VS", ["WEEK2"], [{ name: "sbp", label: "SBP", type: "number" }]);
  const e = await enrollParticipant(t.ctx, p.inv, { study: "SCH-1", site: "S1" });
  participantId = e.id;
  await giveCompleteConsent(t.ctx, "SCH-1", e.subjectCode);
  studyId = String((await rows(`SELECT id FROM studies WHERE code = 'SCH-1'`))[0].id);
});
afterAll(async () => {
  await t?.close();
});

describe(`visit schedule and window checks on ${engineUnderTest()}`, () => {
  it("refuses a schedule that does not fit the study, naming the visit and the field in words", async () => {
    const bad = structuredClone(SCHEDULE) as any;
    bad.visits[1].forms = ["VISIT", "AE"];
    bad.visits[2].dateField = { form: "VISIT", field: "note" };
    const err = await setSchedule(t.ctx, p.admin, "SCH-1", bad).catch((e) => e);
    expect(err).toMatchObject({ code: "invalid" });
    expect(err.problems.map((x: { message: string }) => x.message)).toEqual([
      "visit WEEK2: form AE has no approved version in this study",
      "visit WEEK4: date field note is a text field of form VISIT",
    ]);
    const notListed = structuredClone(SCHEDULE) as any;
    notListed.visits[2].forms = ["VISIT", "VS"];
    await expect(setSchedule(t.ctx, p.admin, "SCH-1", notListed)).rejects.toMatchObject({
      message: "visit WEEK4: form VS does not list visit WEEK4 (WEEK2)",
    });
    const shape = structuredClone(SCHEDULE) as any;
    shape.visits[1].windowBefore = -1;
    await expect(setSchedule(t.ctx, p.admin, "SCH-1", shape)).rejects.toMatchObject({
      message: "visit 2 (WEEK2) windowBefore: is negative",
    });
    const baseline = structuredClone(SCHEDULE) as any;
    baseline.baseline.field = "nope";
    await expect(setSchedule(t.ctx, p.admin, "SCH-1", baseline)).rejects.toMatchObject({
      message: "baseline: nope is not a field of form RAND",
    });
    await expect(setSchedule(t.ctx, p.inv, "SCH-1", SCHEDULE)).rejects.toMatchObject({ code: "forbidden" });
    // The CLI: exit 1 with one line.
    const cli = await runCommand(t.ctx, "schedule.set", { study: "SCH-1", text: "{not json" });
    expect(cli).toEqual({ stdout: "", stderr: "trialseal: schedule: the file is not JSON\n", exitCode: 1 });
    const empty = await runCommand(t.ctx, "schedule.show", { study: "SCH-1" });
    expect(empty.stderr).toContain("no visit schedule");
    expect(await currentSchedule(t.ctx.db, studyId)).toBeNull();
  });

  it("stores the canonical text sealed by its SHA-256 and shows it from the CLI", async () => {
    const out = await runCommand(t.ctx, "schedule.set", { study: "SCH-1", text: JSON.stringify(SCHEDULE, null, 2) });
    expect(out.exitCode ?? 0, out.stderr).toBe(0);
    expect(out.stdout).toMatch(/^schedule version 1 of SCH-1: 3 visits, sha256 [0-9a-f]{64}\n$/);
    const [row] = await rows(`SELECT definition_text FROM visit_schedules`);
    const [entry] = await rows(`SELECT payload_text FROM ledger_entries WHERE kind = 'schedule.set'`);
    const payload = JSON.parse(String(entry.payload_text));
    const sha = t.ctx.crypto.sha256(new TextEncoder().encode(String(row.definition_text)));
    expect(payload.sha256).toBe(Buffer.from(sha).toString("hex"));
    expect(payload.visits).toEqual(["BASELINE", "WEEK2", "WEEK4"]);
    const show = await runCommand(t.ctx, "schedule.show", { study: "SCH-1" });
    expect(show.stdout).toContain("WEEK2\tWeek 2\tDay 14\t-2/+3 days\tVISIT, VS\tVISIT.visdat");
  });

  it("opens a query on an out-of-window visit date (the save succeeds) and none on an in-window date", async () => {
    await saveRecord(t.ctx, p.inv, "SCH-1", {
      subject: "S1-001",
      form: "RAND",
      visit: "BASELINE",
      data: { randdat: "2026-03-01" },
    });
    const inWindow = await saveRecord(t.ctx, p.inv, "SCH-1", {
      subject: "S1-001",
      form: "VISIT",
      visit: "WEEK2",
      data: { visdat: "2026-03-17" },
    });
    expect(inWindow.queries).toBeUndefined();
    const out = await saveRecord(t.ctx, p.inv, "SCH-1", {
      subject: "S1-001",
      form: "VISIT",
      visit: "WEEK4",
      data: { visdat: "2026-04-05" },
    });
    expect(out.queries).toHaveLength(1);
    const [q] = await rows(`SELECT field, text, record_id FROM queries WHERE id = '${out.queries![0]}'`);
    expect(q).toEqual({
      field: "visdat",
      text: "Visit date 2026-04-05 is outside the Week 4 window 2026-03-26 to 2026-04-01",
      record_id: out.id,
    });
    const windows = await participantVisitWindows(t.ctx.db, studyId, participantId);
    expect(windows.map((w) => [w.visit, w.planned, w.from, w.to, w.actual, w.state])).toEqual([
      ["BASELINE", "2026-03-01", "2026-03-01", "2026-03-01", null, expect.any(String)],
      ["WEEK2", "2026-03-15", "2026-03-13", "2026-03-18", "2026-03-17", "in_window"],
      ["WEEK4", "2026-03-29", "2026-03-26", "2026-04-01", "2026-04-05", "out_of_window"],
    ]);
    // A correction moving Week 2 out of its window opens one; a correction that keeps the date opens none.
    const c = await correctRecord(t.ctx, p.inv, "SCH-1", inWindow.id, {
      data: { visdat: "2026-03-10" },
      reason: "date misread from the source",
    });
    expect(c.queries).toHaveLength(1);
    const c2 = await correctRecord(t.ctx, p.inv, "SCH-1", inWindow.id, {
      data: { visdat: "2026-03-10", note: "phone visit" },
      reason: "note added",
    });
    expect(c2.queries).toBeUndefined();
  });

  it("states by the site's clock with the enrolment as baseline: due, not due, overdue", async () => {
    const today = todayIn("UTC");
    const enrolment = {
      baseline: { kind: "enrolment" },
      visits: [
        { code: "WEEK2", name: "Today", day: 0, windowBefore: 0, windowAfter: 1, forms: ["VISIT"] },
        { code: "WEEK4", name: "Later", day: 300, windowBefore: 1, windowAfter: 1, forms: ["VISIT"] },
        { code: "BASELINE", name: "Before", day: -30, windowBefore: 1, windowAfter: 1, forms: ["RAND"] },
      ],
    };
    const r = await setSchedule(t.ctx, p.admin, "SCH-1", enrolment);
    expect(r.version).toBe(2);
    const w = await participantVisitWindows(t.ctx.db, studyId, participantId);
    expect(w.map((x) => [x.visit, x.state])).toEqual([
      ["WEEK2", "due"],
      ["WEEK4", "not_due"],
      ["BASELINE", "overdue"],
    ]);
    expect(w[0].planned).toBe(today);
  });

  it("checks the schedule in force against its seal: a changed text is reported, opens no window query", async () => {
    const set = await setSchedule(t.ctx, p.admin, "SCH-1", SCHEDULE);
    expect((await currentSchedule(t.ctx.db, studyId))?.sealMismatch).toBeNull();
    const [row] = await rows(`SELECT id, definition_text FROM visit_schedules WHERE version = ${set.version}`);
    const text = String(row.definition_text);
    const wider = text.replace('"windowAfter":3', '"windowAfter":90');
    expect(wider).not.toBe(text);
    await tamper([`UPDATE visit_schedules SET definition_text = '${wider}' WHERE id = '${row.id}'`]);
    const s = await currentSchedule(t.ctx.db, studyId);
    expect(s?.sealMismatch).toBe(
      `The visit schedule (version ${set.version}) does not match its sealed entry: ` +
        "its stored text no longer hashes to its SHA-256",
    );
    expect((await scheduleTable(t.ctx.db, studyId))?.sealMismatch).toBe(s?.sealMismatch);
    // A Week 4 date far outside the sealed window opens no query from the changed schedule.
    const [week4] = await rows(`SELECT id FROM records WHERE visit = 'WEEK4' AND form_code = 'VISIT'`);
    const c = await correctRecord(t.ctx, p.inv, "SCH-1", String(week4.id), {
      data: { visdat: "2026-06-20" },
      reason: "date misread from the source",
    });
    expect(c.queries).toBeUndefined();
    // The definition_sha256 changed with it: the text matches the row but not the sealed entry.
    await tamper([
      `UPDATE visit_schedules SET definition_sha256 = sha256(convert_to(definition_text, 'UTF8'))
       WHERE id = '${row.id}'`,
    ]);
    expect((await currentSchedule(t.ctx.db, studyId))?.sealMismatch).toBe(
      `The visit schedule (version ${set.version}) does not match its sealed entry: ` +
        "its SHA-256 differs from the sealed one",
    );
    await tamper([
      `UPDATE visit_schedules SET definition_text = '${text}', definition_sha256 = sha256(convert_to('${text}', 'UTF8'))
       WHERE id = '${row.id}'`,
    ]);
    expect((await currentSchedule(t.ctx.db, studyId))?.sealMismatch).toBeNull();
    const again = await correctRecord(t.ctx, p.inv, "SCH-1", String(week4.id), {
      data: { visdat: "2026-06-21" },
      reason: "date misread again",
    });
    expect(again.queries).toHaveLength(1);
  });

  it("the integrity audit names a schedule row changed, deleted or inserted behind the log", async () => {
    const audit = async () => tamperFindings(await runIntegrityAudit(t.ctx, { study: "SCH-1" }));
    expect(await audit()).toEqual([]);
    const [v1] = await rows(`SELECT * FROM visit_schedules WHERE version = 1`);
    const text = String(v1.definition_text);
    await tamper([
      `UPDATE visit_schedules SET definition_text = '${text.replace('"windowAfter":3', '"windowAfter":9')}'
       WHERE id = '${v1.id}'`,
    ]);
    let f = await audit();
    expect(f.map((x) => [x.table, x.id, x.field])).toEqual([["visit_schedules", v1.id, "definitionText"]]);
    await tamper([`UPDATE visit_schedules SET definition_text = '${text}' WHERE id = '${v1.id}'`]);
    expect(await audit()).toEqual([]);
    // Who set it: an API token's id and name must be the sealed token's.
    for (const [column, field, value] of [
      ["actor_token_id", "token", "'00000000-0000-4000-8000-000000000001'"],
      ["actor_token_name", "tokenName", "'Schedule bridge'"],
    ]) {
      await tamper([`UPDATE visit_schedules SET ${column} = ${value} WHERE id = '${v1.id}'`]);
      f = await audit();
      expect(f.map((x) => [x.table, x.id, x.field])).toEqual([["visit_schedules", v1.id, field]]);
      await tamper([`UPDATE visit_schedules SET ${column} = NULL WHERE id = '${v1.id}'`]);
    }
    expect(await audit()).toEqual([]);
    await tamper([`DELETE FROM visit_schedules WHERE id = '${v1.id}'`]);
    f = await audit();
    expect(f.length).toBeGreaterThan(0);
    expect(JSON.stringify(f)).toContain("visit_schedules");
    await tamper([
      `INSERT INTO visit_schedules (id, study_id, version, definition_text, definition_sha256, entry_id)
       VALUES ('${v1.id}', '${studyId}', 1, '${text}', (SELECT decode(payload_text::json->>'sha256', 'hex')
       FROM ledger_entries WHERE id = '${v1.entry_id}'), '${v1.entry_id}')`,
    ]);
    expect(await audit()).toEqual([]);
    await tamper([
      `INSERT INTO visit_schedules (study_id, version, definition_text, definition_sha256, entry_id)
       VALUES ('${studyId}', 99, '{}', '\\x00', (SELECT id FROM ledger_entries WHERE kind = 'participant.enrolled'))`,
    ]);
    f = await audit();
    expect(f.map((x) => [x.code, x.table])).toContainEqual(["DATA_ROW_UNLOGGED", "visit_schedules"]);
  });
});
