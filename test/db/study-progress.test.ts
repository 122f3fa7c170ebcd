/**
 * The study home page's progress numbers (issue 18, ADR 0031) on PGlite and PostgreSQL: a two-site study built here
 * (dispositions, records, an incomplete imported-style record, SDV, a signature, queries, locks, targets), each
 * number asserted; a site-scoped coordinator sees only their site. Enrolment targets: set by the admin (page and
 * CLI command), sealed, forms before consent kept, and a tampered targets row named by the integrity audit.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sql } from "drizzle-orm";
import { generateTOTP } from "@epic-web/totp";
import { openTestDatabase, engineUnderTest, type TestDb } from "../helpers/db.ts";
import { giveCompleteConsent } from "../helpers/consent.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { createStaff, delegateTasks, STAFF_PASSWORD as PW } from "../helpers/study-staff.ts";
import { beginTotpEnrolment, confirmTotpEnrolment, login } from "../../app/accounts/auth.server.ts";
import { importForm } from "../../app/records/forms.server.ts";
import { enrollParticipant } from "../../app/participants/participants.server.ts";
import { setDisposition } from "../../app/participants/disposition.server.ts";
import { correctRecord, saveRecord } from "../../app/records/records.server.ts";
import {
  answerQuery,
  markSdv,
  openQuery,
  setLock,
  signRecord,
} from "../../app/clinical-monitoring/clinical-monitoring.server.ts";
import { setEnrolmentTargets, setFormsBeforeConsent, studySettingsOf } from "../../app/studies/settings.server.ts";
import { studyProgress } from "../../app/dashboards/study-progress.server.ts";
import { runCommand } from "../../app/platform/commands.server.ts";
import { runIntegrityAudit } from "../../app/integrity-audit/integrity-audit.server.ts";
import { sealAll } from "../../app/log/sealer.server.ts";
import { parsePayload } from "../../anchoring/log/payloads.ts";
import type { Principal } from "../../app/platform/permissions.server.ts";

const meta = { ip: null, userAgent: null };
const S = "PROG-1";
let t: TestDb;
const p: Record<string, Principal> = {};
let secret: string;
const rec: Record<string, string> = {};

const vs = (sbp: number) => ({ sbp, dbp: 80 });

beforeAll(async () => {
  t = await openTestDatabase();
  await createStudy(
    t.ctx,
    {
      code: S,
      title: "Progress",
      sites: [
        { code: "S1", name: "One" },
        { code: "S2", name: "Two" },
      ],
    },
    null,
  );
  Object.assign(
    p,
    (
      await createStaff(t.ctx, S, "prog.test", [
        ["admin", "admin"],
        ["inv1", "investigator", "S1"],
        ["inv2", "investigator", "S2"],
        ["coord1", "coordinator", "S1"],
        ["coord2", "coordinator", "S2"],
        ["mon", "monitor"],
        ["dm", "data_manager"],
      ])
    ).principals,
  );
  await delegateTasks(
    t.ctx,
    S,
    "prog.test",
    p,
    [
      ["inv1", "S1", "coord1"],
      ["inv2", "S2", "coord2"],
    ],
    ["data_entry", "enrollment"],
  );
  await importForm(
    t.ctx,
    S,
    {
      code: "VS",
      title: "VS",
      version: 1,
      visits: ["V1", "V2"],
      // A required field in a conditional section (hidden at sbp 120) does not make a record incomplete.
      sections: [{ name: "crisis", title: "Crisis", showIf: "[sbp] > 200" }],
      fields: [
        { name: "sbp", label: "SBP", type: "number", required: true },
        { name: "dbp", label: "DBP", type: "number", required: true },
        { name: "note", label: "Note", type: "text" },
        { name: "er", label: "Sent to ER", type: "boolean", required: true, section: "crisis" },
      ],
    },
    { actorId: null },
  );
  const enrol = async (who: Principal, site: string, disposition?: string) =>
    (await enrollParticipant(t.ctx, who, { study: S, site, disposition })).subjectCode;
  // S1: 001 enrolled, 002 randomized, 003 screen failed, 004 still screening. S2: 001 enrolled, 002 discontinued,
  // 003 screened and enrolled on 2026-01-05 (a Monday).
  expect(await enrol(p.inv1, "S1")).toBe("S1-001");
  await enrol(p.inv1, "S1");
  await setDisposition(t.ctx, p.inv1, S, "S1-002", { status: "randomized", date: "2026-02-02" });
  await enrol(p.inv1, "S1", "screening");
  await setDisposition(t.ctx, p.inv1, S, "S1-003", { status: "screen_failed", date: "2026-02-03", reason: "BP" });
  await enrol(p.inv1, "S1", "screening");
  await enrol(p.inv2, "S2");
  await enrol(p.inv2, "S2");
  await setDisposition(t.ctx, p.inv2, S, "S2-002", { status: "discontinued", date: "2026-02-04", reason: "moved" });
  await enrol(p.inv2, "S2", "screening");
  await setDisposition(t.ctx, p.inv2, S, "S2-003", { status: "enrolled", date: "2026-01-05" });
  for (const s of ["S1-001", "S1-002", "S2-001"]) await giveCompleteConsent(t.ctx, S, s);
  const save = async (who: Principal, subject: string, visit: string) =>
    (await saveRecord(t.ctx, who, S, { subject, form: "VS", visit, data: vs(120) })).id;
  rec.a = await save(p.coord1, "S1-001", "V1");
  rec.b = await save(p.coord1, "S1-001", "V2");
  rec.c = await save(p.coord1, "S1-002", "V1");
  rec.d = await save(p.coord2, "S2-001", "V1");
  // Entry refuses an empty required field; an incomplete record comes from an import of older data. Written here
  // as such a version (S2-001 V2 with dbp empty), reusing a sealed entry: the progress numbers read the tables.
  await t.database.execute(`
    INSERT INTO records (study_id, site_id, participant_id, form_code, visit)
    SELECT r.study_id, r.site_id, r.participant_id, 'VS', 'V2' FROM records r WHERE r.id = '${rec.d}'`);
  const [e] = await t.database.execute(
    `SELECT r.id, v.entry_id, v.form_id FROM records r, record_versions v WHERE r.visit = 'V2' AND ` +
      `r.participant_id = (SELECT participant_id FROM records WHERE id = '${rec.d}') AND v.record_id = '${rec.d}'`,
  );
  rec.e = String(e.id);
  await t.database.execute(
    `INSERT INTO record_versions (record_id, study_id, version, form_id, form_version, data_text, entry_id) ` +
      `SELECT '${rec.e}', study_id, 1, form_id, 1, '{"sbp":118}', entry_id FROM record_versions ` +
      `WHERE record_id = '${rec.d}'`,
  );
  // The investigator of S1 enrols TOTP to sign.
  const { token } = await login(t.ctx, "inv1@prog.test", PW, meta);
  secret = (await beginTotpEnrolment(t.ctx, token)).secret;
  await confirmTotpEnrolment(t.ctx, token, await code(), meta);
  await t.database.execute(`UPDATE users SET totp_last_step = NULL WHERE email = 'inv1@prog.test'`);
});
afterAll(async () => {
  await t?.close();
});

const code = async () => (await generateTOTP({ secret, period: 30, digits: 6, algorithm: "SHA-1" })).otp;

describe(`study progress numbers on ${engineUnderTest()}`, () => {
  it("an empty state before targets, SDV, signatures, queries and locks", async () => {
    const g = await studyProgress(t.ctx, p.admin, S);
    expect(g.scopedTo).toBeNull();
    expect(g.enrolment).toMatchObject({ enrolled: 5, target: null });
    expect(g.sites.map((s) => [s.code, s.screened, s.screening, s.screenFailed, s.enrolled, s.target])).toEqual([
      ["S1", 4, 1, 1, 2, null],
      ["S2", 3, 0, 0, 3, null],
    ]);
    expect(g.screening).toEqual({ screened: 7, screening: 1, screenFailed: 1 });
    expect(g.forms).toEqual({ records: 5, complete: 4, incomplete: 1 });
    expect(g.sdv).toEqual({ verified: 0, records: 5 });
    expect(g.signatures).toEqual({ awaiting: 5, records: 5 });
    expect(g.locked).toEqual({ locked: 0, records: 5 });
    expect(g.queries).toEqual({
      open: 0,
      answered: 0,
      byAge: ["0-7 days", "8-14 days", "15-30 days", "over 30 days"].map((label) => ({ label, count: 0 })),
    });
    // Weekly cumulative enrolment: S2-003 from the week of 2026-01-05, the rest in this week.
    expect(g.enrolment.weeks[0]).toBe("2026-01-05");
    const last = g.enrolment.weeks.length - 1;
    const s2 = g.enrolment.cumulative.find((c) => c.site === "S2")!;
    const s1 = g.enrolment.cumulative.find((c) => c.site === "S1")!;
    expect([s1.counts[0], s2.counts[0], s1.counts[last], s2.counts[last]]).toEqual([0, 1, 2, 3]);
  });

  it("targets: validated, sealed in study.settings_changed v3, forms before consent kept; CLI too", async () => {
    await setFormsBeforeConsent(t.ctx, p.admin, S, { formsBeforeConsent: "VS" });
    await expect(setEnrolmentTargets(t.ctx, p.coord1, S, { total: 10 })).rejects.toMatchObject({
      code: "forbidden",
    });
    await expect(setEnrolmentTargets(t.ctx, p.admin, S, { total: -1 })).rejects.toMatchObject({
      code: "invalid",
      field: "total",
    });
    await expect(setEnrolmentTargets(t.ctx, p.admin, S, { total: "ten" })).rejects.toMatchObject({ field: "total" });
    await expect(setEnrolmentTargets(t.ctx, p.admin, S, { sites: { S9: 3 } })).rejects.toMatchObject({
      field: "sites.S9",
      message: expect.stringMatching(/S9 is not a site of PROG-1/),
    });
    await expect(setEnrolmentTargets(t.ctx, p.admin, S, { sites: { S1: 2.5 } })).rejects.toMatchObject({
      field: "sites.S1",
    });
    const s = await setEnrolmentTargets(t.ctx, p.admin, S, { total: "10", sites: { s1: "6", S2: "" } });
    expect(s).toMatchObject({ formsBeforeConsent: ["VS"], enrolmentTargets: { total: 10, sites: { S1: 6 } } });
    const bad = await runCommand(t.ctx, "studies.targets", { study: S, total: "12", sites: ["S2:4"] });
    expect(bad).toMatchObject({ exitCode: 1, stderr: expect.stringMatching(/^trialseal: --site S2:4: give CODE=N/) });
    const out = await runCommand(t.ctx, "studies.targets", { study: S, total: "12", sites: ["S1=6", "S2=4"] });
    expect(out.exitCode ?? 0).toBe(0);
    expect(out.stdout).toMatch(
      /^PROG-1 settings v\d+: enrolment target 12; sites: S1 6, S2 4 \(entry [0-9a-f-]{36}\)\n$/,
    );
    const [row] = await t.database.execute(
      `SELECT e.payload_text FROM study_settings s JOIN ledger_entries e ON e.id = s.entry_id ORDER BY s.version DESC`,
    );
    const payload = parsePayload("study.settings_changed", JSON.parse(String(row.payload_text)));
    expect(payload).toMatchObject({ success: true });
    // Version 3 since issue 22 (staff names shown to participants, carried forward unchanged).
    expect(payload.success && payload.data).toMatchObject({
      v: 3,
      formsBeforeConsent: ["VS"],
      enrolmentTargets: { total: 12 },
      staffNamesToParticipants: false,
    });
    // A later change of forms before consent carries the targets forward.
    const after = await setFormsBeforeConsent(t.ctx, p.admin, S, { formsBeforeConsent: "" });
    expect(after.enrolmentTargets).toEqual({ total: 12, sites: { S1: 6, S2: 4 } });
  });

  it("SDV, a signature, queries by age and locks, counted on current versions; site scoping", async () => {
    await markSdv(t.ctx, p.mon, S, rec.a);
    await markSdv(t.ctx, p.mon, S, rec.c);
    await correctRecord(t.ctx, p.coord1, S, rec.c, { data: vs(121), reason: "re-measured" }); // SDV of v1 only
    await signRecord(t.ctx, p.inv1, S, rec.a, { meaning: "approved", password: PW, code: await code() }, meta);
    const q1 = await openQuery(t.ctx, p.mon, S, rec.a, { field: "sbp", text: "Confirm against source" });
    await openQuery(t.ctx, p.mon, S, rec.d, { field: "sbp", text: "Confirm against source" });
    await openQuery(t.ctx, p.mon, S, rec.b, { field: "dbp", text: "Confirm against source" });
    await answerQuery(t.ctx, p.coord1, S, q1.id, "Confirmed.");
    await setLock(t.ctx, p.dm, S, { scope: "record", target: rec.d, reason: "clean" });
    await setLock(t.ctx, p.dm, S, { scope: "subject", target: "S1-002", reason: "clean" });

    const g = await studyProgress(t.ctx, p.admin, S);
    expect(g.enrolment).toMatchObject({ enrolled: 5, target: 12 });
    expect(g.sites.map((s) => [s.code, s.enrolled, s.target])).toEqual([
      ["S1", 2, 6],
      ["S2", 3, 4],
    ]);
    expect(g.sdv).toEqual({ verified: 1, records: 5 });
    expect(g.signatures).toEqual({ awaiting: 4, records: 5 });
    expect(g.locked).toEqual({ locked: 2, records: 5 });
    expect(g.queries.open).toBe(2);
    expect(g.queries.answered).toBe(1);
    expect(g.queries.byAge.map((b) => b.count)).toEqual([2, 0, 0, 0]);
    const day = 86_400_000;
    for (const [days, counts] of [
      [10, [0, 2, 0, 0]],
      [20, [0, 0, 2, 0]],
      [31, [0, 0, 0, 2]],
    ] as const) {
      const later = await studyProgress(t.ctx, p.admin, S, { asOf: new Date(Date.now() + days * day) });
      expect(
        later.queries.byAge.map((b) => b.count),
        `${days} days on`,
      ).toEqual(counts);
    }

    // The S1 coordinator sees S1 only: its participants, records, queries; the target is S1's.
    const c = await studyProgress(t.ctx, p.coord1, S);
    expect(c.scopedTo).toEqual(["S1"]);
    expect(c.sites.map((s) => s.code)).toEqual(["S1"]);
    expect(c.enrolment).toMatchObject({ enrolled: 2, target: 6 });
    expect(c.screening).toEqual({ screened: 4, screening: 1, screenFailed: 1 });
    expect(c.forms).toEqual({ records: 3, complete: 3, incomplete: 0 });
    expect(c.sdv.verified).toBe(1);
    expect(c.signatures.awaiting).toBe(2);
    expect(c.locked.locked).toBe(1);
    expect(c.queries.open).toBe(1);
    const c2 = await studyProgress(t.ctx, p.coord2, S);
    expect([c2.enrolment.enrolled, c2.forms.incomplete, c2.locked.locked, c2.queries.open]).toEqual([3, 1, 1, 1]);
  });

  it("the integrity audit names a targets row changed behind the log", async () => {
    await sealAll(t.ctx);
    const findings = async () =>
      (await runIntegrityAudit(t.ctx, { study: S })).findings
        .filter((f) => f.table === "study_settings")
        .map((f) => [f.code, f.table, f.field]);
    expect(await findings()).toEqual([]);
    const id = (await studySettingsOf(t.ctx, String((await t.database.execute(`SELECT id FROM studies`))[0].id)))
      .version;
    await t.ctx.db.transaction(async (tx) => {
      await tx.execute(sql.raw("SET LOCAL session_replication_role = replica"));
      await tx.execute(
        sql.raw(`UPDATE study_settings SET enrolment_targets = '{"total": 1000, "sites": {}}' WHERE version = ${id}`),
      );
    });
    expect(await findings()).toContainEqual(["DATA_ROW_MISMATCH", "study_settings", "enrolmentTargets"]);
  });
});
