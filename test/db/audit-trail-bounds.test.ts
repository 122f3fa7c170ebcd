/**
 * Bounds and privacy of the sealed audit trail (ADR 0016, ADR 0022), on PGlite and PostgreSQL: throttled sign-ins
 * (known and unknown accounts alike) are aggregated per source and minute with the same answers; reading a
 * participant's data writes read events coalesced per user, participant, kind and hour; and the source address
 * enters a payload as an HMAC under a deployment key, never as a hash a bundle holder could enumerate.
 */
import { createHmac, hkdfSync } from "node:crypto";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openTestDatabase, engineUnderTest, type TestDb } from "../helpers/db.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { createUser } from "../../app/accounts/users.server.ts";
import { login, principalForUser } from "../../app/accounts/auth.server.ts";
import { enrollParticipant } from "../../app/participants/participants.server.ts";
import { subjectCasebook } from "../../app/records/records.server.ts";
import { contactPanel } from "../../app/consent/contact-confirmation.server.ts";
import { flushAuditAggregates } from "../../app/audit-trail/record-event.server.ts";
import { eventPayloadFields, saltedHash } from "../../app/audit-trail/seal-event.server.ts";
import { buildEntry, newSalt } from "../../anchoring/log/entry.ts";
import { DEPLOYMENT_SCOPE } from "../../anchoring/log/envelope.ts";
import { insertPendingEntry } from "../../db/queries/log.ts";
import { insertAuditEvent } from "../../db/queries/audit.ts";
import { rowsOf } from "../../db/queries/rows.ts";
import { sealAll } from "../../app/log/sealer.server.ts";
import { runIntegrityAudit } from "../../app/integrity-audit/integrity-audit.server.ts";
import { ServiceError } from "../../app/platform/errors.server.ts";
import type { Principal } from "../../app/platform/permissions.server.ts";

const PW = "amber otter winter forty-two";
let t: TestDb;
const p: Record<string, Principal> = {};
const subjects: string[] = [];
const ids: string[] = [];
let studyId = "";
const rows = (q: string) => t.database.execute(q);
const one = async (q: string) => (await rows(q))[0] as Record<string, unknown>;
const detailOf = (d: unknown) => (typeof d === "string" ? JSON.parse(d) : d) as Record<string, unknown>;

beforeAll(async () => {
  t = await openTestDatabase();
  await createStudy(t.ctx, { code: "ATB-1", title: "Bounded trail", sites: [{ code: "S1", name: "1" }] }, null);
  studyId = String((await one(`SELECT id FROM studies WHERE code = 'ATB-1'`)).id);
  for (const [k, role] of [
    ["inv", "investigator"],
    ["crc", "coordinator"],
  ] as const) {
    const u = await createUser(
      t.ctx,
      { email: `${k}@atb.test`, fullName: `${k} person`, password: PW, role, study: "ATB-1", site: "S1" },
      null,
    );
    p[k] = (await principalForUser(t.ctx, u.id))!;
  }
  for (const name of ["Ada Person", "Bob Person"]) {
    const s = await enrollParticipant(t.ctx, p.inv, {
      study: "ATB-1",
      site: "S1",
      personal: { fullName: name, email: `${name.split(" ")[0].toLowerCase()}@atb.test` },
    });
    subjects.push(s.subjectCode);
    ids.push(String((await one(`SELECT id FROM participants WHERE subject_code = '${s.subjectCode}'`)).id));
  }
}, 300_000);
afterAll(async () => {
  await t?.close();
});

/** `n` sign-ins with a wrong password from `ip`; the answers with the seconds to wait blanked out. */
async function attempts(email: string, ip: string, n: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    try {
      await login(t.ctx, email, "wrong password", { ip, userAgent: "t" });
      out.push("signed in");
    } catch (err) {
      if (!(err instanceof ServiceError)) throw err;
      out.push(`${err.code}: ${err.message.replace(/\d+/g, "N")}`);
    }
  }
  return out;
}

describe(`audit-trail bounds on ${engineUnderTest()}`, () => {
  it("aggregates throttled sign-ins per source and minute, for known and unknown accounts alike", async () => {
    const known = await attempts("inv@atb.test", "198.51.100.77", 200);
    const unknown = await attempts("nobody@atb.test", "198.51.100.78", 200);
    expect(known).toEqual(unknown);
    const throttled = known.filter((a) => a.startsWith("rate_limited")).length;
    expect(throttled).toBeGreaterThan(150);
    await flushAuditAggregates(new Date(Date.now() + 3 * 60_000));
    for (const ip of ["198.51.100.77", "198.51.100.78"]) {
      const ev = (await rows(`SELECT detail FROM audit_events WHERE ip = '${ip}' ORDER BY id`)).map((e) =>
        detailOf(e.detail),
      );
      const th = ev.filter((d) => d.reason === "throttled");
      // Every throttled attempt is counted, in at most two events per source and minute.
      expect(
        th.reduce((a, d) => a + Number(d.count), 0),
        ip,
      ).toBe(throttled);
      const perMinute = new Map<string, number>();
      for (const d of th) perMinute.set(String(d.minute), (perMinute.get(String(d.minute)) ?? 0) + 1);
      for (const [minute, n] of perMinute) expect(n, `${ip} ${minute}`).toBeLessThanOrEqual(2);
      expect(th.length, ip).toBeLessThanOrEqual(4);
    }
    // The real wrong-password failures of the known account stay one event each (they count towards the alert).
    const bad = await rows(`SELECT detail FROM audit_events WHERE ip = '198.51.100.77'`);
    expect(bad.filter((e) => detailOf(e.detail).reason === "bad_password").length).toBe(200 - throttled);
    // The aggregated events name the one account they were all about.
    const named = await one(`SELECT count(*)::int AS n FROM audit_events WHERE ip = '198.51.100.77'
      AND actor_user_id = '${p.inv.userId}' AND detail->>'reason' = 'throttled'`);
    expect(Number(named.n)).toBeGreaterThanOrEqual(1);
  }, 300_000);

  it("writes one read event per user, participant, kind and hour when a participant's data are shown", async () => {
    const reads = async () =>
      rows(`SELECT actor_user_id, participant_id, action FROM audit_events
        WHERE action IN ('participant.view', 'personal_data.view') ORDER BY id`);
    expect(await reads()).toEqual([]);
    await subjectCasebook(t.ctx, p.inv, studyId, subjects[0]);
    await subjectCasebook(t.ctx, p.inv, studyId, subjects[0]);
    expect(await reads()).toEqual([
      { actor_user_id: p.inv.userId, participant_id: ids[0], action: "participant.view" },
    ]);
    await contactPanel(t.ctx, p.inv, ids[0]);
    await contactPanel(t.ctx, p.inv, ids[0]);
    await subjectCasebook(t.ctx, p.inv, studyId, subjects[1]);
    await subjectCasebook(t.ctx, p.crc, studyId, subjects[0]);
    expect(await reads()).toEqual([
      { actor_user_id: p.inv.userId, participant_id: ids[0], action: "participant.view" },
      { actor_user_id: p.inv.userId, participant_id: ids[0], action: "personal_data.view" },
      { actor_user_id: p.inv.userId, participant_id: ids[1], action: "participant.view" },
      { actor_user_id: p.crc.userId, participant_id: ids[0], action: "participant.view" },
    ]);
    const sealed = await one(`SELECT count(*)::int AS n FROM audit_events a JOIN ledger_entries e
      ON e.id = a.entry_id AND e.kind = 'audit.event' WHERE a.action LIKE '%.view'`);
    expect(Number(sealed.n)).toBe(4);
  });

  it("puts the address into the payload as an HMAC under the deployment key, not an enumerable hash", async () => {
    await login(t.ctx, "crc@atb.test", PW, { ip: "192.0.2.55", userAgent: "t" });
    const ev = await one(`SELECT a.id, e.payload_text FROM audit_events a JOIN ledger_entries e ON e.id = a.entry_id
      WHERE a.action = 'login' AND a.outcome = 'success' AND a.ip = '192.0.2.55'`);
    const payload = JSON.parse(String(ev.payload_text)) as Record<string, unknown>;
    const enumerable = saltedHash(t.ctx.crypto, String(payload.salt), "192.0.2.55");
    expect(Object.values(payload)).not.toContain(enumerable);
    const key = Buffer.from(hkdfSync("sha256", t.ctx.env.dataKey, Buffer.alloc(0), "trialseal audit-address v1", 32));
    expect(payload.ip).toBe(createHmac("sha256", key).update("192.0.2.55").digest("hex"));
    expect(payload.v).toBe(2);
    await sealAll(t.ctx);
    expect((await runIntegrityAudit(t.ctx)).clean).toBe(true);
    await t.ctx.db.transaction(async (tx) => {
      await tx.execute(sql.raw("SET LOCAL session_replication_role = replica"));
      await tx.execute(sql.raw(`UPDATE audit_events SET ip = '192.0.2.56' WHERE id = ${ev.id}`));
    });
    const r = await runIntegrityAudit(t.ctx);
    expect(r.findings).toContainEqual(
      expect.objectContaining({ code: "AUDIT_EVENT_MISMATCH", id: String(ev.id), field: "ip" }),
    );
    await t.ctx.db.transaction(async (tx) => {
      await tx.execute(sql.raw("SET LOCAL session_replication_role = replica"));
      await tx.execute(sql.raw(`UPDATE audit_events SET ip = '192.0.2.55' WHERE id = ${ev.id}`));
    });
  });

  it("still verifies and audits a version 1 event (the address as its salted hash)", async () => {
    const row = {
      at: new Date(),
      action: "login",
      outcome: "failure" as const,
      actorUserId: null,
      actorLabel: null,
      siteId: null,
      participantId: null,
      ip: "192.0.2.77",
      detail: { reason: "unknown_account", count: 1 },
    };
    const id = await t.ctx.db.transaction(async (tx) => {
      const res = await tx.execute(sql`SELECT nextval(pg_get_serial_sequence('audit_events', 'id')) AS id`);
      const id = Number(rowsOf<{ id: string | number }>(res)[0].id);
      const salt = newSalt();
      const fields = eventPayloadFields(t.ctx.crypto, salt, { id, ...row }, { v: 1 });
      expect(fields.ip).toBe(saltedHash(t.ctx.crypto, salt, "192.0.2.77"));
      const built = buildEntry(t.ctx.crypto, "audit.event", fields, salt, 1);
      const entry = await insertPendingEntry(tx, {
        studyId: null,
        studyCode: DEPLOYMENT_SCOPE,
        kind: "audit.event",
        payloadText: built.payloadText,
        payloadHash: built.payloadHash,
        at: row.at,
      });
      await insertAuditEvent(tx, { ...row, id, entryId: entry.id });
      return id;
    });
    await sealAll(t.ctx);
    const clean = await runIntegrityAudit(t.ctx);
    expect(clean.findings.filter((f) => f.severity === "tamper")).toEqual([]);
    await t.ctx.db.transaction(async (tx) => {
      await tx.execute(sql.raw("SET LOCAL session_replication_role = replica"));
      await tx.execute(sql.raw(`UPDATE audit_events SET ip = '192.0.2.78' WHERE id = ${id}`));
    });
    expect((await runIntegrityAudit(t.ctx)).findings).toContainEqual(
      expect.objectContaining({ code: "AUDIT_EVENT_MISMATCH", id: String(id), field: "ip" }),
    );
  });
});
