/** The subject matrix on PGlite and PostgreSQL: every state of a cell, repeating rows, filters and site scoping. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateTOTP } from "@epic-web/totp";
import { openTestDatabase, engineUnderTest, type TestDb } from "../helpers/db.ts";
import { giveCompleteConsent } from "../helpers/consent.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { createStaff, delegateTasks, STAFF_PASSWORD as PW } from "../helpers/study-staff.ts";
import { beginTotpEnrolment, confirmTotpEnrolment, login } from "../../app/accounts/auth.server.ts";
import { importForm } from "../../app/records/forms.server.ts";
import { enrollParticipant } from "../../app/participants/participants.server.ts";
import { saveRecord } from "../../app/records/records.server.ts";
import {
  markSdv,
  openQuery,
  releaseLock,
  setLock,
  signRecord,
} from "../../app/clinical-monitoring/clinical-monitoring.server.ts";
import { subjectMatrix } from "../../app/subject-matrix/subject-matrix.server.ts";
import type { Principal } from "../../app/platform/permissions.server.ts";

const meta = { ip: null, userAgent: null };
const S = "MX-1";
let t: TestDb;
const p: Record<string, Principal> = {};
let secret: string;

const VS = (version: number, required: boolean) => ({
  code: "VS",
  title: "Vital signs",
  version,
  visits: ["SCREENING", "WEEK1"],
  fields: [
    { name: "sbp", label: "Systolic blood pressure", type: "number" as const, required: true },
    { name: "weight", label: "Weight", type: "number" as const, required },
  ],
});

async function save(who: Principal, subject: string, form: string, visit: string, data: Record<string, unknown>) {
  return (await saveRecord(t.ctx, who, S, { subject, form, visit, data })).id;
}

beforeAll(async () => {
  t = await openTestDatabase();
  await createStudy(
    t.ctx,
    {
      code: S,
      title: "Matrix",
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
      await createStaff(t.ctx, S, "mx.test", [
        ["inv", "investigator", "S1"],
        ["coord", "coordinator", "S1"],
        ["inv2", "investigator", "S2"],
        ["coord2", "coordinator", "S2"],
        ["mon", "monitor"],
        ["dm", "data_manager"],
      ])
    ).principals,
  );
  await delegateTasks(t.ctx, S, "mx.test", p, [
    ["inv", "S1", "coord"],
    ["inv2", "S2", "coord2"],
  ]);
  await importForm(t.ctx, S, VS(1, false), { actorId: null });
  await importForm(
    t.ctx,
    S,
    {
      code: "AE",
      title: "Adverse events",
      version: 1,
      visits: ["WEEK1"],
      repeating: true,
      fields: [{ name: "term", label: "Term", type: "text", required: true }],
    },
    { actorId: null },
  );
  for (let i = 0; i < 6; i++) await enrollParticipant(t.ctx, p.inv, { study: S, site: "S1" });
  await enrollParticipant(t.ctx, p.inv2, { study: S, site: "S2" });
  for (const s of ["S1-001", "S1-002", "S1-003", "S1-004", "S1-005", "S1-006", "S2-001"])
    await giveCompleteConsent(t.ctx, S, s);

  // The investigator enrols TOTP (required to sign).
  const { token } = await login(t.ctx, "inv@mx.test", PW, meta);
  secret = (await beginTotpEnrolment(t.ctx, token)).secret;
  const otp = async () => (await generateTOTP({ secret, period: 30, digits: 6, algorithm: "SHA-1" })).otp;
  await confirmTotpEnrolment(t.ctx, token, await otp(), meta);

  const full = { sbp: 120, weight: 70 };
  await save(p.coord, "S1-001", "VS", "SCREENING", full); // awaiting signature
  await save(p.coord, "S1-001", "AE", "WEEK1", { term: "headache" });
  await save(p.coord, "S1-001", "AE", "WEEK1", { term: "nausea" });
  const signedId = await save(p.coord, "S1-002", "VS", "SCREENING", full);
  await t.database.execute(`UPDATE users SET totp_last_step = NULL WHERE email = 'inv@mx.test'`);
  await signRecord(t.ctx, p.inv, S, signedId, { meaning: "approved", password: PW, code: await otp() }, meta);
  const sdvId = await save(p.coord, "S1-003", "VS", "SCREENING", full);
  await markSdv(t.ctx, p.mon, S, sdvId);
  const queried = await save(p.coord, "S1-004", "VS", "SCREENING", full);
  await openQuery(t.ctx, p.mon, S, queried, { field: "sbp", text: "Please check the reading" });
  await save(p.coord, "S1-005", "VS", "SCREENING", full);
  await setLock(t.ctx, p.dm, S, { scope: "subject", target: "S1-005", reason: "reviewed" });
  await save(p.coord, "S1-006", "VS", "SCREENING", { sbp: 118 }); // weight left empty under version 1
  await save(p.coord2, "S2-001", "VS", "SCREENING", full);
  // Version 2 of the form makes weight required: S1-006's record now lacks a required value.
  await importForm(t.ctx, S, VS(2, true), { actorId: null });
});
afterAll(async () => {
  await t?.close();
});

type Matrix = Awaited<ReturnType<typeof subjectMatrix>>;
const cell = (m: Matrix, subject: string, visit: string, form: string) =>
  m.rows
    .find((r) => r.subject === subject)
    ?.cells.find((c) => c.visit === visit)
    ?.forms.find((f) => f.form === form);

describe(`subject matrix on ${engineUnderTest()}`, () => {
  it("shows each cell's state, with the visits of the approved forms when no schedule is set", async () => {
    const m = await subjectMatrix(t.ctx, p.mon, S);
    expect(m.scheduled).toBe(false);
    // AE (WEEK1) comes first by code; VS puts SCREENING before WEEK1.
    expect(m.visits).toEqual([
      { code: "SCREENING", name: "SCREENING", forms: ["VS"] },
      { code: "WEEK1", name: "WEEK1", forms: ["AE", "VS"] },
    ]);
    const states = Object.fromEntries(
      ["S1-001", "S1-002", "S1-003", "S1-004", "S1-005", "S1-006", "S2-001"].map((s) => [
        s,
        cell(m, s, "SCREENING", "VS")?.state,
      ]),
    );
    expect(states).toEqual({
      "S1-001": "awaiting_signature",
      "S1-002": "signed",
      "S1-003": "sdv_done",
      "S1-004": "open_query",
      "S1-005": "locked",
      "S1-006": "incomplete",
      "S2-001": "awaiting_signature",
    });
    expect(cell(m, "S1-001", "WEEK1", "VS")).toMatchObject({ state: "not_started", count: 0, recordId: null });
    expect(cell(m, "S1-001", "WEEK1", "AE")).toMatchObject({ state: "awaiting_signature", count: 2, repeating: true });
    expect(cell(m, "S1-002", "WEEK1", "AE")).toMatchObject({ state: "not_started", count: 0 });
  });

  it("a whole-study lock wins over every other state", async () => {
    const lock = await setLock(t.ctx, p.dm, S, { scope: "study", reason: "interim analysis" });
    try {
      const m = await subjectMatrix(t.ctx, p.mon, S);
      expect(cell(m, "S1-004", "SCREENING", "VS")?.state).toBe("locked");
      expect(cell(m, "S1-006", "SCREENING", "VS")?.state).toBe("locked");
      expect(cell(m, "S1-001", "WEEK1", "VS")?.state).toBe("not_started");
    } finally {
      await releaseLock(t.ctx, p.dm, S, lock.id, "analysis done");
    }
  });

  it("a site coordinator sees only their site; filters by site, subject, state and form", async () => {
    const mine = await subjectMatrix(t.ctx, p.coord, S);
    expect(mine.rows.map((r) => r.subject)).toEqual(["S1-001", "S1-002", "S1-003", "S1-004", "S1-005", "S1-006"]);
    expect(mine.sites).toEqual(["S1"]);
    expect((await subjectMatrix(t.ctx, p.coord2, S)).rows.map((r) => r.subject)).toEqual(["S2-001"]);
    expect((await subjectMatrix(t.ctx, p.coord, S, { site: "S2" })).rows).toEqual([]);
    expect((await subjectMatrix(t.ctx, p.mon, S, { site: "s2" })).rows.map((r) => r.subject)).toEqual(["S2-001"]);
    expect((await subjectMatrix(t.ctx, p.mon, S, { subject: "1-00" })).rows).toHaveLength(6);
    const incomplete = await subjectMatrix(t.ctx, p.coord, S, { state: "incomplete" });
    expect(incomplete.rows.map((r) => r.subject)).toEqual(["S1-006"]);
    const ae = await subjectMatrix(t.ctx, p.coord, S, { form: "AE" });
    expect(ae.rows[0].cells.flatMap((c) => c.forms.map((f) => f.form))).toEqual(["AE"]);
    await expect(subjectMatrix(t.ctx, p.coord, S, { state: "purple" })).rejects.toMatchObject({ field: "state" });
  });
});
