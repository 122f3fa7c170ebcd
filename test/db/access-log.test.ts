/**
 * Issue 22 access transparency (ADR 0067) on PGlite and PostgreSQL: a read of a participant's CRF or personal data
 * by staff (page service) or an API token (GET) is one sealed audit event per reader, participant, kind and hour;
 * the participant's access log lists reads, exports holding their data and data-use deliveries, in words, with
 * organisation and role, staff names only when the study's setting is on, never another participant's uses nor
 * the participant's own actions; and the integrity audit names a deleted access event.
 */
import { randomUUID } from "node:crypto";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { saltedTextHash } from "../../anchoring/log/text-hash.ts";
import { createApiToken } from "../../app/accounts/tokens.server.ts";
import { audit } from "../../app/audit-trail/record-event.server.ts";
import { contactPanel } from "../../app/consent/contact-confirmation.server.ts";
import { participantAccessLog } from "../../app/data-sharing/access-log.server.ts";
import { membersHash } from "../../app/data-sharing/members-hash.ts";
import { runIntegrityAudit } from "../../app/integrity-audit/integrity-audit.server.ts";
import { appendEntry } from "../../app/log/append-entry.server.ts";
import { sealAll } from "../../app/log/sealer.server.ts";
import { enrollParticipant } from "../../app/participants/participants.server.ts";
import { ServiceError } from "../../app/platform/errors.server.ts";
import { importForm } from "../../app/records/forms.server.ts";
import { recordHistory, saveRecord, subjectCasebook } from "../../app/records/records.server.ts";
import { loader as proofGet } from "../../app/routes/api/api.v1.entries.$ref.proof.ts";
import { loader as recordGet } from "../../app/routes/api/api.v1.studies.$code.records_.$id.ts";
import { setStaffNamesToParticipants, studySettingsOf } from "../../app/studies/settings.server.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { giveCompleteConsent } from "../helpers/consent.ts";
import { engineUnderTest, openTestDatabase, type TestDb } from "../helpers/db.ts";
import { createStaff, type Staff } from "../helpers/study-staff.ts";

const STUDY = "ACL-1";
const FORM = {
  code: "VITALS",
  title: "Vital signs",
  version: 1,
  visits: ["SCREENING"],
  fields: [{ name: "sbp", label: "Systolic BP", type: "number", integer: true, min: 50, max: 250, required: true }],
};
const INSTITUTION = "Institute of Open Data";

let t: TestDb;
let staff: Staff;
let study: { id: string; code: string };
let p1: { id: string; subject: string; record: string };
let p2: { id: string; subject: string; record: string };
let token: { token: string; id: string };
const rows = async (q: string) => (await t.database.execute(q)) as Record<string, unknown>[];
const one = async (q: string) => (await rows(q))[0] as Record<string, unknown>;
const HOUR = 3_600_000;
/** An hour well in the past (so that no real-time read falls in it), on the hour. */
const base = Math.floor(Date.now() / HOUR) * HOUR - 5 * HOUR;

/** Run `fn` with the clock (Date only: timers stay real) at `at`. */
async function at<T>(when: number, fn: () => Promise<T>): Promise<T> {
  vi.useFakeTimers({ toFake: ["Date"] });
  vi.setSystemTime(when);
  try {
    return await fn();
  } finally {
    vi.useRealTimers();
  }
}

async function participantWithRecord(value: number) {
  const e = await enrollParticipant(t.ctx, staff.principals.inv, { study: STUDY, site: "S1" });
  await giveCompleteConsent(t.ctx, STUDY, e.subjectCode);
  const r = await saveRecord(t.ctx, staff.principals.inv, STUDY, {
    subject: e.subjectCode,
    form: "VITALS",
    visit: "SCREENING",
    data: { sbp: value },
  });
  const p = await one(
    `SELECT id FROM participants WHERE subject_code = '${e.subjectCode}' AND study_id = '${study.id}'`,
  );
  return { id: String(p.id), subject: e.subjectCode, record: r.id };
}

/** A delivery of a HRESCH request holding `members`, sealed as the data-use services write it. */
async function sealDelivery(members: string[]) {
  const actor = staff.userIds.admin;
  const request = randomUUID();
  const delivery = randomUUID();
  const manifest = JSON.stringify({ delivery, purpose: "HRESCH", participants: members.length });
  const sha = Buffer.from(t.ctx.crypto.sha256(new TextEncoder().encode(manifest))).toString("hex");
  const expiresAt = new Date(Date.now() + 30 * 86_400_000).toISOString();
  await t.ctx.db.transaction(async (tx) => {
    const r = await appendEntry(tx, t.ctx.crypto, study, "data_use.requested", (salt) => ({
      request,
      purpose: "HRESCH",
      fields: ["VITALS.sbp"],
      periodFrom: "2020-01-01",
      periodTo: "2030-12-31",
      institutionHash: saltedTextHash(t.ctx.crypto, salt, INSTITUTION),
      justificationHash: saltedTextHash(t.ctx.crypto, salt, "why"),
      actor,
    }));
    await tx.execute(sql`INSERT INTO data_use_requests (id, study_id, purpose, fields, period_from, period_to,
      institution, justification, actor_user_id, entry_id) VALUES (${request}, ${study.id}, 'HRESCH',
      '["VITALS.sbp"]'::jsonb, '2020-01-01', '2030-12-31', ${INSTITUTION}, 'why', ${actor}, ${r.id})`);
    const e = await appendEntry(tx, t.ctx.crypto, study, "data_use.delivered", (salt) => ({
      delivery,
      request,
      purpose: "HRESCH",
      manifestSha256: sha,
      participants: members.length,
      excluded: { declined: 0, withdrawn: 0, notAsked: 0 },
      membersHash: membersHash(t.ctx.crypto, salt, members),
      expiresAt,
      actor,
    }));
    await tx.execute(sql`INSERT INTO data_use_deliveries (id, study_id, request_id, manifest, manifest_sha256,
      content, pseudonym_key_enc, participant_count, excluded, expires_at, actor_user_id, entry_id) VALUES
      (${delivery}, ${study.id}, ${request}, ${manifest}, decode(${sha}, 'hex'), '\\x00'::bytea, '\\x00'::bytea,
      ${members.length}, '{"declined":0,"withdrawn":0,"notAsked":0}'::jsonb, ${expiresAt}, ${actor}, ${e.id})`);
    for (const m of members)
      await tx.execute(sql`INSERT INTO data_use_delivery_participants (delivery_id, study_id, participant_id)
        VALUES (${delivery}, ${study.id}, ${m})`);
  });
  return delivery;
}

beforeAll(async () => {
  t = await openTestDatabase();
  t.ctx.env = { ...t.ctx.env, apiRatePerSecond: 100_000 };
  await createStudy(t.ctx, { code: STUDY, title: "Access log", sites: [{ code: "S1", name: "City Hospital" }] }, null);
  study = { id: String((await one(`SELECT id FROM studies WHERE code = '${STUDY}'`)).id), code: STUDY };
  await t.database.execute(`INSERT INTO organizations (name) VALUES ('Acme Pharma')`);
  await t.database.execute(
    `UPDATE studies SET sponsor_org_id = (SELECT id FROM organizations WHERE name = 'Acme Pharma')
     WHERE id = '${study.id}'`,
  );
  staff = await createStaff(t.ctx, STUDY, "acl.test", [
    ["admin", "admin"],
    ["coord", "coordinator", "S1"],
    ["inv", "investigator", "S1"],
    ["mon", "monitor"],
    ["reg", "regulator"],
  ]);
  await importForm(t.ctx, STUDY, FORM, { actorId: null });
  p1 = await participantWithRecord(120);
  p2 = await participantWithRecord(130);
  token = await createApiToken(t.ctx, { study: STUDY, name: "EDC bridge" }, null);
}, 120_000);

afterAll(async () => {
  vi.useRealTimers();
  await t?.close();
});

const reads = async (participant: string, action: string) =>
  rows(`SELECT id, at, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS at_iso,
    actor_user_id, actor_label, detail, entry_id FROM audit_events
    WHERE participant_id = '${participant}' AND action = '${action}' ORDER BY id`);

describe(`access transparency on ${engineUnderTest()}`, () => {
  it("coalesces a coordinator's record views: twice in the hour is one event, the next hour another", async () => {
    await at(base + 10 * 60_000, () => recordHistory(t.ctx, staff.principals.coord, STUDY, p1.record));
    await at(base + 50 * 60_000, () => recordHistory(t.ctx, staff.principals.coord, STUDY, p1.record));
    const first = await reads(p1.id, "record.view");
    expect(first).toHaveLength(1);
    expect(first[0].actor_user_id).toBe(staff.userIds.coord);
    expect(first[0].entry_id).toBeTruthy();
    expect(new Date(String(first[0].at)).getTime()).toBe(base + 10 * 60_000);
    await at(base + 70 * 60_000, () => recordHistory(t.ctx, staff.principals.coord, STUDY, p1.record));
    expect(await reads(p1.id, "record.view")).toHaveLength(2);
  });

  it("records an API token's GET of a record naming the token (no user), coalesced per token", async () => {
    const get = () =>
      recordGet({
        request: new Request(`http://portal.test/api/v1/studies/${STUDY}/records/${p1.record}`, {
          headers: { authorization: `Bearer ${token.token}` },
        }),
        context: { ctx: t.ctx },
        params: { code: STUDY, id: p1.record },
      } as never);
    const res = await get();
    expect(res.status).toBe(200);
    expect((await get()).status).toBe(200);
    const byToken = (await reads(p1.id, "record.view")).filter((r) => r.actor_user_id === null);
    expect(byToken).toHaveLength(1);
    expect(byToken[0].actor_label).toBe(`API token EDC bridge (${token.id.slice(0, 8)})`);
    const detail = (typeof byToken[0].detail === "string" ? JSON.parse(byToken[0].detail) : byToken[0].detail) as {
      token: { id: string; name: string };
    };
    expect(detail.token).toEqual({ id: token.id, name: "EDC bridge" });
  });

  it("lists the participant's reads in words, with organisation and role, newest first, no staff name", async () => {
    await at(base + 2 * HOUR, () => subjectCasebook(t.ctx, staff.principals.mon, study.id, p1.subject));
    await at(base + 3 * HOUR, () => subjectCasebook(t.ctx, staff.principals.reg, study.id, p1.subject));
    await at(base + 3 * HOUR + 60_000, () => contactPanel(t.ctx, staff.principals.inv, p1.id));
    // Another participant's read, and an action with no reader (the participant's own): never in p1's log.
    await at(base + 4 * HOUR, () => recordHistory(t.ctx, staff.principals.coord, STUDY, p2.record));
    await audit(t.ctx.db, {
      action: "personal_data.view",
      actorUserId: null,
      actorLabel: "participant",
      studyId: study.id,
      participantId: p1.id,
    });
    const log = await participantAccessLog(t.ctx, p1.id, "participant");
    expect(log.map((i) => i.at)).toEqual([...log.map((i) => i.at)].sort().reverse());
    const coordViews = log.filter((i) => i.role === "study coordinator");
    expect(coordViews).toHaveLength(2);
    for (const i of coordViews) {
      expect(i).toMatchObject({ organisation: "Site S1 · City Hospital", what: "CRF data", person: null });
      expect(i.words).toMatch(/looked at one of your study forms/);
      expect(i.entryId).toBeTruthy();
    }
    expect(log.find((i) => i.role === "monitor")).toMatchObject({
      organisation: "the sponsor (Acme Pharma)",
      what: "CRF data",
      words: "looked at your study record",
      person: null,
    });
    expect(log.find((i) => i.role === "inspector")).toMatchObject({ organisation: "a regulator", person: null });
    expect(log.find((i) => i.role === "investigator")).toMatchObject({
      organisation: "Site S1 · City Hospital",
      what: "personal data",
      words: "looked at your contact details",
    });
    expect(log.find((i) => i.role === "a connected system (API)")).toMatchObject({
      organisation: "the sponsor (Acme Pharma)",
      person: null,
    });
    expect(log).toHaveLength(6);
    expect(JSON.stringify(log)).not.toMatch(/[a-z]+ person|EDC bridge/);
    const other = await participantAccessLog(t.ctx, p2.id, "participant");
    expect(other).toHaveLength(1);
    expect(other[0]).toMatchObject({ role: "study coordinator", what: "CRF data" });
  });

  it("names staff when the study's setting is on (admins only, sealed), not when it is off again", async () => {
    await expect(
      setStaffNamesToParticipants(t.ctx, staff.principals.coord, STUDY, { staffNamesToParticipants: true }),
    ).rejects.toThrow();
    await expect(
      setStaffNamesToParticipants(t.ctx, staff.principals.admin, STUDY, { staffNamesToParticipants: "maybe" }),
    ).rejects.toSatisfy((e) => e instanceof ServiceError && e.field === "staffNamesToParticipants");
    const s = await setStaffNamesToParticipants(t.ctx, staff.principals.admin, STUDY, {
      staffNamesToParticipants: "on",
    });
    expect(s.staffNamesToParticipants).toBe(true);
    const entry = await one(`SELECT payload_text FROM ledger_entries WHERE id = '${s.entryId}'`);
    expect(JSON.parse(String(entry.payload_text))).toMatchObject({
      v: 3,
      version: s.version,
      staffNamesToParticipants: true,
    });
    const ev = await one(`SELECT detail FROM audit_events WHERE action = 'study.settings_changed' ORDER BY id DESC`);
    expect(JSON.stringify(ev.detail)).toContain('"staffNamesToParticipants":true');
    const log = await participantAccessLog(t.ctx, p1.id, "participant");
    expect(log.filter((i) => i.role === "study coordinator").map((i) => i.person)).toEqual([
      "coord person",
      "coord person",
    ]);
    expect(log.find((i) => i.role === "monitor")?.person).toBe("mon person");
    await setStaffNamesToParticipants(t.ctx, staff.principals.admin, STUDY, { staffNamesToParticipants: false });
    expect((await studySettingsOf(t.ctx, study.id)).staffNamesToParticipants).toBe(false);
    expect((await participantAccessLog(t.ctx, p1.id, "participant")).every((i) => i.person === null)).toBe(true);
    // Staff see the names whatever the setting.
    const forStaff = await participantAccessLog(t.ctx, p1.id, "staff");
    expect(forStaff.find((i) => i.role === "monitor")?.person).toBe("mon person");
  });

  it("lists a data-use delivery holding the participant: the researcher's institution, the purpose", async () => {
    await sealDelivery([p1.id]);
    const log = await participantAccessLog(t.ctx, p1.id, "participant");
    expect(log[0]).toMatchObject({
      what: "data-use delivery",
      organisation: `a researcher at ${INSTITUTION}`,
      purpose: "other medical research",
      person: null,
    });
    expect(log[0].entryId).toBeTruthy();
    expect((await participantAccessLog(t.ctx, p2.id, "participant")).map((i) => i.what)).not.toContain(
      "data-use delivery",
    );
  });

  it("lists an export whose event names the participant in detail.participants, and only for them", async () => {
    await audit(t.ctx.db, {
      action: "export.csv",
      actorUserId: staff.userIds.mon,
      actorLabel: "mon",
      studyId: study.id,
      detail: { participants: [p1.id], format: "csv" },
    });
    await audit(t.ctx.db, {
      action: "export.odm",
      actorUserId: staff.userIds.mon,
      actorLabel: "mon",
      studyId: study.id,
      detail: { participants: [p2.id] },
    });
    const log = await participantAccessLog(t.ctx, p1.id, "participant");
    const exports = log.filter((i) => i.what === "export");
    expect(exports).toHaveLength(1);
    expect(exports[0]).toMatchObject({ role: "monitor", organisation: "the sponsor (Acme Pharma)" });
    expect(exports[0].words).toBe("exported the study's data as a table (CSV), including your data");
    const other = await participantAccessLog(t.ctx, p2.id, "participant");
    expect(other.filter((i) => i.what === "export").map((i) => i.words)).toEqual([
      "exported the study's data in the standard research format (CDISC ODM), including your data",
    ]);
  });

  it("stores the reader's role and site in the read event, shown after the membership changes", async () => {
    await at(base + 6 * HOUR, () => recordHistory(t.ctx, staff.principals.coord, STUDY, p2.record));
    const [ev] = (await reads(p2.id, "record.view")).filter(
      (r) => new Date(String(r.at)).getTime() === base + 6 * HOUR,
    );
    const detail = (typeof ev.detail === "string" ? JSON.parse(ev.detail) : ev.detail) as Record<string, unknown>;
    expect(detail).toMatchObject({ role: "coordinator", site: "S1" });
    // The coordinator becomes a study-wide monitor later: the read stays the coordinator's at Site S1.
    await t.database.execute(`UPDATE memberships SET role = 'monitor', site_id = NULL
      WHERE user_id = '${staff.userIds.coord}' AND study_id = '${study.id}'`);
    try {
      const item = (await participantAccessLog(t.ctx, p2.id, "staff")).find((i) => i.at === ev.at_iso);
      expect(item).toMatchObject({ role: "study coordinator", organisation: "Site S1 · City Hospital" });
    } finally {
      await t.database.execute(`UPDATE memberships SET role = 'coordinator',
        site_id = (SELECT id FROM sites WHERE study_id = '${study.id}' AND code = 'S1')
        WHERE user_id = '${staff.userIds.coord}' AND study_id = '${study.id}'`);
    }
  });

  it("lists an export from the command line (no user, no token) as the study's operator", async () => {
    await audit(t.ctx.db, {
      action: "export.odm",
      actorUserId: null,
      actorLabel: "command line",
      studyId: study.id,
      detail: { participants: [p2.id] },
    });
    const item = (await participantAccessLog(t.ctx, p2.id, "participant")).find(
      (i) => i.what === "export" && i.organisation.includes("operator"),
    );
    expect(item).toMatchObject({ organisation: "the study's operator (command line)", person: null });
    expect(item?.words).toContain("CDISC ODM");
  });

  it("records a participant's entry's proof bundle as proof.view, the consent page as consent.view", async () => {
    await sealAll(t.ctx);
    const { entry_id } = await one(`SELECT entry_id FROM record_versions WHERE record_id = '${p2.record}'`);
    const res = await proofGet({
      request: new Request(`http://portal.test/api/v1/entries/${entry_id}/proof`, {
        headers: { authorization: `Bearer ${token.token}` },
      }),
      context: { ctx: t.ctx },
      params: { ref: String(entry_id) },
    } as never);
    expect(res.status).toBe(200);
    expect(await reads(p2.id, "proof.view")).toHaveLength(1);
    expect((await participantAccessLog(t.ctx, p2.id, "participant")).map((i) => i.words)).toContain(
      "looked at the sealed copy of one of your study forms (its proof)",
    );
    await subjectCasebook(t.ctx, staff.principals.inv, study.id, p2.subject, { read: "consent.view" });
    expect(await reads(p2.id, "consent.view")).toHaveLength(1);
    const before = (await reads(p2.id, "participant.view")).length;
    await subjectCasebook(t.ctx, staff.principals.mon, study.id, p2.subject, { read: null });
    expect(await reads(p2.id, "participant.view")).toHaveLength(before);
  });

  it("shows each item's seal state; an event altered behind the log shows as not matching its entry", async () => {
    await sealAll(t.ctx);
    await audit(t.ctx.db, {
      action: "export.csv",
      actorUserId: staff.userIds.admin,
      actorLabel: "admin",
      studyId: study.id,
      detail: { participants: [p2.id], format: "csv" },
    });
    let log = await participantAccessLog(t.ctx, p2.id, "participant");
    expect(log.filter((i) => i.seal === "pending")).toHaveLength(1);
    await sealAll(t.ctx);
    log = await participantAccessLog(t.ctx, p2.id, "participant");
    expect(log.every((i) => i.seal === "sealed")).toBe(true);
    const [victim] = await reads(p2.id, "record.view");
    await t.ctx.db.transaction(async (tx) => {
      await tx.execute(sql.raw("SET LOCAL session_replication_role = replica"));
      await tx.execute(sql.raw(`UPDATE audit_events SET at = at + interval '1 minute' WHERE id = ${victim.id}`));
    });
    log = await participantAccessLog(t.ctx, p2.id, "participant");
    const bad = log.filter((i) => i.seal === "mismatch");
    expect(bad).toHaveLength(1);
    expect(bad[0].entryId).toBe(victim.entry_id);
    // A delivery whose members were changed behind the log shows as such too.
    const delivery = await sealDelivery([p2.id]);
    await sealAll(t.ctx);
    expect(
      (await participantAccessLog(t.ctx, p2.id, "participant")).find((i) => i.what === "data-use delivery")?.seal,
    ).toBe("sealed");
    await t.ctx.db.transaction(async (tx) => {
      await tx.execute(sql.raw("SET LOCAL session_replication_role = replica"));
      await tx.execute(sql`INSERT INTO data_use_delivery_participants (delivery_id, study_id, participant_id)
        VALUES (${delivery}, ${study.id}, ${p1.id})`);
    });
    expect(
      (await participantAccessLog(t.ctx, p1.id, "participant")).find(
        (i) => i.what === "data-use delivery" && i.entryId !== null && i.seal === "mismatch",
      ),
    ).toBeTruthy();
  });

  it("integrity audit names a deleted access event (AUDIT_EVENT_MISSING)", async () => {
    await sealAll(t.ctx);
    const [victim] = await reads(p1.id, "record.view");
    await t.ctx.db.transaction(async (tx) => {
      await tx.execute(sql.raw("SET LOCAL session_replication_role = replica"));
      await tx.execute(sql.raw(`DELETE FROM audit_events WHERE id = ${victim.id}`));
    });
    const r = await runIntegrityAudit(t.ctx, { study: STUDY });
    const missing = r.findings.filter((f) => f.code === "AUDIT_EVENT_MISSING");
    expect(missing.map((f) => f.id)).toEqual([String(victim.id)]);
    expect(missing[0].message).toContain("record.view");
  });
});
