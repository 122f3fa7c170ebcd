/**
 * The Part 11 audit trail inside the log (issue 15 item 1, ADR 0016), on PGlite and PostgreSQL: every audit-trail
 * event is an `audit.event` ledger entry committed with its row (addresses and free text only as salted hashes);
 * failed sign-ins for unknown accounts are aggregated per source and minute; reads are coalesced per user,
 * participant, kind and hour; and with the triggers disabled as superuser the integrity audit names a deleted
 * audit-trail event, an altered one, an inserted one, a deleted record version and a value changed behind the log.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sql } from "drizzle-orm";
import { openTestDatabase, engineUnderTest, type TestDb } from "../helpers/db.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { createUser } from "../../app/accounts/users.server.ts";
import { login, principalForUser } from "../../app/accounts/auth.server.ts";
import { enrollParticipant } from "../../app/participants/participants.server.ts";
import { importForm } from "../../app/records/forms.server.ts";
import { correctRecord, saveRecord } from "../../app/records/records.server.ts";
import { sealAll } from "../../app/log/sealer.server.ts";
import { runIntegrityAudit, type AuditReport } from "../../app/integrity-audit/integrity-audit.server.ts";
import * as trail from "../../app/audit-trail/record-event.server.ts";
import { saltedHash } from "../../app/audit-trail/seal-event.server.ts";
import { addressHmac } from "../../app/audit-trail/address-hmac.server.ts";
import { setFormsBeforeConsent } from "../../app/studies/settings.server.ts";
import { findEntryByRef, proofBundle } from "../../app/log/proofs.server.ts";
import { deploymentTrustPolicy } from "../../app/anchor-worker/anchor-worker.server.ts";
import { verifyBundle } from "../../anchoring/verifier/verify-bundle.ts";
import { DEPLOYMENT_SCOPE } from "../../anchoring/log/envelope.ts";
import type { Principal } from "../../app/platform/permissions.server.ts";

const PW = "amber otter winter forty-two";
const IP = "203.0.113.7";
let t: TestDb;
const p: Record<string, Principal> = {};
let recordId = "";
let participantId = "";

async function tamper(statements: string[]) {
  await t.ctx.db.transaction(async (tx) => {
    await tx.execute(sql.raw("SET LOCAL session_replication_role = replica"));
    for (const s of statements) await tx.execute(sql.raw(s));
  });
}
const rows = (q: string) => t.database.execute(q);
const one = async (q: string) => (await rows(q))[0] as Record<string, unknown>;
const tampers = (r: AuditReport) => r.findings.filter((f) => f.severity === "tamper");

beforeAll(async () => {
  t = await openTestDatabase();
  await createStudy(t.ctx, { code: "ATS-1", title: "Sealed trail", sites: [{ code: "S1", name: "1" }] }, null);
  for (const [k, role, study, site] of [
    ["admin", "admin", undefined, undefined],
    ["inv", "investigator", "ATS-1", "S1"],
    ["dm", "data_manager", "ATS-1", "S1"],
  ] as const) {
    const u = await createUser(
      t.ctx,
      { email: `${k}@ats.test`, fullName: `${k} person`, password: PW, role, study, site },
      null,
    );
    p[k] = (await principalForUser(t.ctx, u.id))!;
  }
  await importForm(
    t.ctx,
    "ATS-1",
    {
      code: "VITALS",
      title: "Vitals",
      version: 1,
      visits: ["SCREENING"],
      fields: [{ name: "sbp", label: "SBP", type: "number", integer: true, min: 50, max: 250 }],
    },
    { actorId: null },
  );
  await setFormsBeforeConsent(t.ctx, p.admin, "ATS-1", { formsBeforeConsent: "VITALS" });
  const s = await enrollParticipant(t.ctx, p.inv, {
    study: "ATS-1",
    site: "S1",
    personal: { fullName: "Ada Person", email: "ada@ats.test" },
  });
  participantId = String((await one(`SELECT id FROM participants WHERE subject_code = '${s.subjectCode}'`)).id);
  recordId = (
    await saveRecord(t.ctx, p.inv, "ATS-1", {
      subject: s.subjectCode,
      form: "VITALS",
      visit: "SCREENING",
      data: { sbp: 120 },
    })
  ).id;
  await correctRecord(t.ctx, p.inv, "ATS-1", recordId, { data: { sbp: 121 }, reason: "transcription error" });
  await expect(login(t.ctx, "dm@ats.test", "wrong password", { ip: IP, userAgent: "t" })).rejects.toThrow();
  await login(t.ctx, "dm@ats.test", PW, { ip: IP, userAgent: "t" });
  await sealAll(t.ctx);
}, 300_000);
afterAll(async () => {
  await t?.close();
});

describe(`the audit trail in the log on ${engineUnderTest()}`, () => {
  it("seals every audit-trail event as an audit.event entry, address as HMAC, free text salted", async () => {
    const events = await rows(`SELECT a.id, a.action, a.ip, a.entry_id, e.kind, e.status, e.study_id, e.payload_text,
      a.study_id AS event_study FROM audit_events a LEFT JOIN ledger_entries e ON e.id = a.entry_id ORDER BY a.id`);
    expect(events.length).toBeGreaterThan(5);
    for (const ev of events) {
      expect(ev.kind, `event ${ev.id} ${ev.action}`).toBe("audit.event");
      expect(ev.status).toBe("sealed");
      expect(ev.study_id ?? null).toBe(ev.event_study ?? null);
      const payload = JSON.parse(String(ev.payload_text));
      expect(payload.event).toBe(Number(ev.id));
      expect(payload.action).toBe(ev.action);
      // The address as an HMAC under the deployment key (v2), never the enumerable salted hash.
      expect(payload.ip).toBe(ev.ip === null ? null : addressHmac(t.ctx.env.dataKey, String(ev.ip)));
      if (ev.ip !== null) expect(payload.ip).not.toBe(saltedHash(t.ctx.crypto, payload.salt, String(ev.ip)));
    }
    const texts = events.map((e) => String(e.payload_text)).join("\n");
    expect(texts).not.toContain(IP);
    expect(texts).not.toContain("transcription error");
    expect(texts).not.toContain("@ats.test");
    // Sign-ins have no study: they are sealed in the deployment scope.
    const signIn = events.find((e) => e.action === "login" && e.event_study === null);
    expect(signIn?.study_id ?? null).toBeNull();
    // ... and provable like any entry: its bundle verifies, its envelope names the deployment scope.
    const entry = (await findEntryByRef(t.ctx, String(signIn!.entry_id)))!;
    const proof = await proofBundle(t.ctx, entry);
    if (proof.status !== "sealed") throw new Error("the sign-in's entry is not sealed");
    expect(JSON.parse(String(entry.envelopeText)).study).toBe(DEPLOYMENT_SCOPE);
    expect((await verifyBundle(t.ctx.crypto, proof.bundle, deploymentTrustPolicy(t.ctx))).verdict).toBe("valid");
    const r = await runIntegrityAudit(t.ctx);
    expect(tampers(r), JSON.stringify(tampers(r).slice(0, 3))).toEqual([]);
    expect(r.clean).toBe(true);
  });

  it("aggregates failed sign-ins for unknown accounts per source and minute", async () => {
    const before = Number((await one(`SELECT count(*)::int AS n FROM audit_events`)).n);
    const minute = new Date("2030-01-01T10:00:00.000Z");
    for (let i = 0; i < 25; i++)
      await trail.auditUnknownAccountSignIn(t.ctx.db, "198.51.100.9", new Date(minute.getTime() + i * 1000));
    for (let i = 0; i < 3; i++)
      await trail.auditUnknownAccountSignIn(t.ctx.db, "198.51.100.10", new Date(minute.getTime() + i * 1000));
    // The next minute closes the previous one for every source.
    await trail.auditUnknownAccountSignIn(t.ctx.db, "198.51.100.9", new Date(minute.getTime() + 61_000));
    await trail.flushAuditAggregates(new Date(minute.getTime() + 200_000));
    const ev = await rows(`SELECT ip, detail FROM audit_events WHERE id > ${before} AND action = 'login' ORDER BY id`);
    const count = (ip: string) =>
      ev
        .filter((e) => e.ip === ip)
        .map((e) => (typeof e.detail === "string" ? JSON.parse(e.detail) : e.detail) as { count: number })
        .reduce((a, d) => a + d.count, 0);
    expect(count("198.51.100.9")).toBe(26);
    expect(count("198.51.100.10")).toBe(3);
    // At most two events per source and minute (the first failure, then the rest when the minute closes).
    expect(ev.filter((e) => e.ip === "198.51.100.9").length).toBe(3);
    expect(ev.filter((e) => e.ip === "198.51.100.10").length).toBe(2);
    // Through the sign-in itself, the unknown account's failure is aggregated too (and never names the email).
    await expect(login(t.ctx, "nobody@ats.test", "x", { ip: "192.0.2.1", userAgent: "t" })).rejects.toThrow();
    const viaLogin = await one(`SELECT actor_label, detail FROM audit_events WHERE ip = '192.0.2.1'`);
    expect(viaLogin.actor_label ?? null).toBeNull();
    expect(JSON.stringify(viaLogin.detail)).toContain('"count":1');
  });

  it("coalesces read events per user, participant, kind and hour", async () => {
    const hour = new Date("2030-01-01T11:00:00.000Z");
    const read = (userId: string | null, kind: string, offsetMs: number) =>
      trail.auditRead(t.ctx.db, {
        actorUserId: userId!,
        studyId: p.inv.memberships?.[0]?.studyId ?? null,
        participantId,
        action: kind,
        at: new Date(hour.getTime() + offsetMs),
      });
    const written = [
      await read(p.inv.userId!, "participant.view", 0),
      await read(p.inv.userId!, "participant.view", 60_000),
      await read(p.inv.userId!, "participant.view", 3_599_000),
      await read(p.inv.userId!, "participant.export", 10_000),
      await read(p.dm.userId!, "participant.view", 10_000),
      await read(p.inv.userId!, "participant.view", 3_600_000),
    ];
    expect(written).toEqual([true, false, false, true, true, true]);
    const n = await one(
      `SELECT count(*)::int AS n FROM audit_events WHERE participant_id = '${participantId}'
         AND action LIKE 'participant.%' AND at >= '2030-01-01T11:00:00Z'`,
    );
    expect(Number(n.n)).toBe(4);
  });

  it(
    "names a deleted audit-trail event, an altered one, an inserted one, a deleted record version and a value " +
      "changed behind the log (triggers disabled as superuser)",
    async () => {
      await sealAll(t.ctx);
      expect((await runIntegrityAudit(t.ctx)).clean).toBe(true);
      const failed = await one(`SELECT id FROM audit_events WHERE action = 'login' AND outcome = 'failure'
        AND actor_user_id IS NOT NULL ORDER BY id LIMIT 1`);
      const success = await one(`SELECT id FROM audit_events WHERE action = 'login' AND outcome = 'success' LIMIT 1`);
      const v1 = await one(`SELECT id FROM record_versions WHERE record_id = '${recordId}' AND version = 1`);
      const v2 = await one(`SELECT id FROM record_versions WHERE record_id = '${recordId}' AND version = 2`);
      await tamper([
        `DELETE FROM audit_events WHERE id = ${failed.id}`,
        `UPDATE audit_events SET ip = '10.9.9.9' WHERE id = ${success.id}`,
        `INSERT INTO audit_events (action, outcome, ip, detail) VALUES ('login', 'success', '10.1.1.1', '{}')`,
        `DELETE FROM record_versions WHERE id = '${v1.id}'`,
        `UPDATE record_versions SET data_text = replace(data_text, '121', '181') WHERE id = '${v2.id}'`,
      ]);
      const inserted = await one(`SELECT max(id) AS id FROM audit_events`);
      const r = await runIntegrityAudit(t.ctx);
      expect(r.clean).toBe(false);
      const f = tampers(r);
      expect(f).toContainEqual(
        expect.objectContaining({ code: "AUDIT_EVENT_MISSING", table: "audit_events", id: String(failed.id) }),
      );
      expect(f.find((x) => x.code === "AUDIT_EVENT_MISSING")?.message).toContain("login");
      expect(f).toContainEqual(
        expect.objectContaining({
          code: "AUDIT_EVENT_MISMATCH",
          table: "audit_events",
          id: String(success.id),
          field: "ip",
        }),
      );
      expect(f).toContainEqual(
        expect.objectContaining({ code: "AUDIT_EVENT_UNLOGGED", table: "audit_events", id: String(inserted.id) }),
      );
      expect(f).toContainEqual(expect.objectContaining({ code: "DATA_ROW_MISSING", table: "record_versions" }));
      expect(f).toContainEqual(
        expect.objectContaining({ code: "DATA_ROW_MISMATCH", table: "record_versions", field: "values", id: v2.id }),
      );
    },
  );
});
