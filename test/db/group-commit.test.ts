/**
 * Group commit of new records (issue 19, ADR 0041), on PGlite and PostgreSQL: concurrent saveRecord calls share one
 * transaction (shown by the committer's counters and by the rows' xmin), each acknowledged with its own record, ledger
 * entry and audit event; a bad item among good ones (a locked subject, one without consent, a form already entered
 * at that visit, an invalid value) fails alone with the error it gets on its own; an
 * Idempotency-Key replayed inside a group; the rows of a repeating form numbered without gaps under concurrency; a
 * group whose transaction fails retried item by item, so only the offender fails; the integrity audit clean.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openTestDatabase, engineUnderTest, type TestDb } from "../helpers/db.ts";
import { giveCompleteConsent } from "../helpers/consent.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { createUser } from "../../app/accounts/users.server.ts";
import { principalForUser } from "../../app/accounts/auth.server.ts";
import { importForm } from "../../app/records/forms.server.ts";
import { enrollParticipant } from "../../app/participants/participants.server.ts";
import { recordGroupCommitStats, saveRecord } from "../../app/records/records.server.ts";
import { setLock } from "../../app/clinical-monitoring/clinical-monitoring.server.ts";
import { consentStatus } from "../../app/consent/status.server.ts";
import { subjectFacts } from "../../app/records/bulk-checks.server.ts";
import { sealAll } from "../../app/log/sealer.server.ts";
import { runIntegrityAudit } from "../../app/integrity-audit/integrity-audit.server.ts";
import { parsePayload } from "../../anchoring/log/payloads.ts";
import type { Principal } from "../../app/platform/permissions.server.ts";
import type { Idempotency } from "../../app/records/idempotency.server.ts";

const PW = "amber otter winter forty-two";
const STUDY = "GC-1";
const VISITS = Array.from({ length: 10 }, (_, i) => `V${i + 1}`);
let t: TestDb;
const p: Record<string, Principal> = {};
const subjects: string[] = [];

const rows = (q: string) => t.database.execute(q);
const vitals = (subject: string, visit: string, sbp = 120) => ({ subject, form: "VS", visit, data: { sbp } });
const idemOf = (key: string, body: string): Idempotency => ({
  scope: "test",
  key,
  requestHash: new Uint8Array(Buffer.alloc(32, body)),
});

async function enrolConsented() {
  const s = (await enrollParticipant(t.ctx, p.inv, { study: STUDY, site: "S1" })).subjectCode;
  await giveCompleteConsent(t.ctx, STUDY, s);
  return s;
}

beforeAll(async () => {
  t = await openTestDatabase();
  await createStudy(t.ctx, { code: STUDY, title: "Group commit", sites: [{ code: "S1", name: "Site 1" }] }, null);
  for (const [k, role, site] of [
    ["inv", "investigator", "S1"],
    ["coord", "coordinator", "S1"],
    ["dm", "data_manager", undefined],
  ] as const) {
    const u = await createUser(
      t.ctx,
      { email: `${k}@gc.test`, fullName: `${k} person`, password: PW, role, study: STUDY, site },
      null,
    );
    p[k] = (await principalForUser(t.ctx, u.id))!;
  }
  await importForm(
    t.ctx,
    STUDY,
    {
      code: "VS",
      title: "Vitals",
      version: 1,
      visits: VISITS,
      fields: [{ name: "sbp", label: "SBP", type: "number", integer: true, min: 50, max: 250, required: true }],
    },
    { actorId: null },
  );
  await importForm(
    t.ctx,
    STUDY,
    {
      code: "AE",
      title: "Adverse events",
      version: 1,
      visits: ["ANY"],
      repeating: true,
      fields: [{ name: "term", label: "Term", type: "text", maxLength: 100, required: true }],
    },
    { actorId: null },
  );
  for (let i = 0; i < 10; i++) subjects.push(await enrolConsented());
});
afterAll(async () => {
  await t?.close();
});

describe(`group commit of new records on ${engineUnderTest()}`, () => {
  it("40 concurrent saves: acknowledged after commit, sharing transactions; every entry and event there", async () => {
    const before = recordGroupCommitStats(t.ctx.db);
    const jobs = subjects.slice(0, 4).flatMap((s) => VISITS.map((v, i) => vitals(s, v, 100 + i)));
    expect(jobs).toHaveLength(40);
    const saved = await Promise.all(jobs.map((j) => saveRecord(t.ctx, p.inv, STUDY, j)));
    const after = recordGroupCommitStats(t.ctx.db);
    // 40 items in fewer transactions than items: batching happened, with no fallback.
    expect(after.items - before.items).toBe(40);
    expect(after.groups - before.groups).toBeLessThan(40);
    expect(after.largest).toBeGreaterThan(1);
    expect(after.fallbacks).toBe(before.fallbacks);
    const ids = saved.map((s) => s.id);
    expect(new Set(ids).size).toBe(40);
    const recs = await rows(
      `SELECT r.id, r.xmin::text AS x, rv.entry_id, e.payload_text, e.xmin::text AS ex
       FROM records r JOIN record_versions rv ON rv.record_id = r.id JOIN ledger_entries e ON e.id = rv.entry_id
       WHERE r.id IN (${ids.map((id) => `'${id}'`).join(",")})`,
    );
    expect(recs).toHaveLength(40);
    // Rows of one record commit together, and several records share one transaction id.
    for (const r of recs) expect(r.ex).toBe(r.x);
    expect(new Set(recs.map((r) => r.x)).size).toBeLessThan(40);
    for (const s of saved) {
      const r = recs.find((x) => x.id === s.id)!;
      expect(r.entry_id).toBe(s.entry.id);
      const payload = parsePayload("record.saved", JSON.parse(String(r.payload_text)));
      expect(payload.success).toBe(true);
      expect(payload.data).toMatchObject({ record: s.id, version: 1, form: "VS", instance: 1, actor: p.inv.userId });
    }
    const events = await rows(
      `SELECT a.detail, a.actor_user_id, e.kind, a.xmin::text AS x FROM audit_events a
       JOIN ledger_entries e ON e.id = a.entry_id WHERE a.action = 'record.create'`,
    );
    for (const s of saved) {
      const ev = events.filter((e) => (e.detail as { record?: string }).record === s.id);
      expect(ev).toHaveLength(1);
      expect(ev[0]).toMatchObject({ kind: "audit.event", actor_user_id: p.inv.userId });
      expect(ev[0].detail).toMatchObject({ entry: s.entry.id, version: 1, form: "VS" });
      expect(ev[0].x).toBe(recs.find((r) => r.id === s.id)!.x);
    }
  });

  it("a bad item among good ones fails alone, with the error it gets on its own; the others commit", async () => {
    const [locked, good1, good2] = subjects.slice(4, 7);
    const noConsent = (await enrollParticipant(t.ctx, p.inv, { study: STUDY, site: "S1" })).subjectCode;
    await setLock(t.ctx, p.dm, STUDY, { scope: "subject", target: locked, reason: "frozen for review" });
    await saveRecord(t.ctx, p.inv, STUDY, vitals(good1, "V1"));
    // What each bad item gets on its own (one at a time): the errors to expect inside a group.
    const alone = async (j: unknown) => saveRecord(t.ctx, p.inv, STUDY, j).catch((e: Error) => e);
    const bad = [
      vitals(locked, "V9"),
      vitals(noConsent, "V9"),
      vitals(good1, "V1"), // already entered at V1
      vitals(good2, "V9", 999), // outside its limits
    ];
    const expected: unknown[] = [];
    for (const j of bad) expected.push(await alone(j));
    for (const e of expected) expect(e).toBeInstanceOf(Error);
    expect(String(expected[0])).toMatch(/locked/);
    expect(String(expected[1])).toMatch(/not consented/);
    expect(String(expected[2])).toMatch(/already has form VS at visit V1/);
    expect(String(expected[3])).toMatch(/SBP must be between 50 and 250/);
    const before = recordGroupCommitStats(t.ctx.db);
    const goods = [good1, good2].flatMap((s) => ["V2", "V3", "V4", "V5"].map((v) => vitals(s, v)));
    // Interleaved: good, bad, good, ... all at once.
    const jobs = goods.flatMap((g, i) => (i < bad.length ? [g, bad[i]] : [g]));
    const results = await Promise.allSettled(jobs.map((j) => saveRecord(t.ctx, p.inv, STUDY, j)));
    const after = recordGroupCommitStats(t.ctx.db);
    expect(after.fallbacks).toBe(before.fallbacks);
    // The invalid value is refused before the queue; the 12 others went through fewer transactions than items.
    expect(after.items - before.items).toBe(jobs.length - 1);
    expect(after.groups - before.groups).toBeLessThan(jobs.length - 1);
    jobs.forEach((j, i) => {
      const b = bad.indexOf(j);
      const r = results[i];
      if (b < 0) expect(r.status, JSON.stringify(j)).toBe("fulfilled");
      else {
        expect(r.status).toBe("rejected");
        const err = (r as PromiseRejectedResult).reason as Error & { code?: string; field?: string };
        const want = expected[b] as Error & { code?: string; field?: string };
        expect({ m: err.message, c: err.code, f: err.field }).toEqual({ m: want.message, c: want.code, f: want.field });
      }
    });
    const [{ n }] = await rows(
      `SELECT count(*)::int AS n FROM records r JOIN participants p ON p.id = r.participant_id
       WHERE p.subject_code IN ('${locked}', '${noConsent}') OR (p.subject_code = '${good2}'
       AND r.visit = 'V9')`,
    );
    expect(n).toBe(0);
  });

  it("an Idempotency-Key replayed inside a group returns the first response; one record", async () => {
    const s = subjects[7];
    const idem = idemOf("gc-replay-1", "a");
    const before = recordGroupCommitStats(t.ctx.db);
    const [a, b, ...others] = await Promise.all([
      saveRecord(t.ctx, p.inv, STUDY, vitals(s, "V1", 130), idem),
      saveRecord(t.ctx, p.inv, STUDY, vitals(s, "V1", 130), idem),
      ...[8, 9].map((i) => saveRecord(t.ctx, p.inv, STUDY, vitals(subjects[i], "V1"))),
    ]);
    expect(b).toEqual(a);
    expect(others.map((o) => o.version)).toEqual([1, 1]);
    const after = recordGroupCommitStats(t.ctx.db);
    expect(after.fallbacks).toBe(before.fallbacks);
    const [{ n }] = await rows(
      `SELECT count(*)::int AS n FROM records r JOIN participants p ON p.id = r.participant_id
       WHERE p.subject_code = '${s}' AND r.visit = 'V1'`,
    );
    expect(n).toBe(1);
    const [{ k }] = await rows(`SELECT count(*)::int AS k FROM idempotency_keys WHERE key = 'gc-replay-1'`);
    expect(k).toBe(1);
  });

  it("rows of a repeating form saved at once get distinct instances 1..n", async () => {
    const s = subjects[1];
    const saved = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        saveRecord(t.ctx, p.inv, STUDY, { subject: s, form: "AE", visit: "ANY", data: { term: `event ${i}` } }),
      ),
    );
    expect(saved.map((x) => x.instance).sort((a, b) => a - b)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
    const inst = await rows(
      `SELECT r.instance FROM records r JOIN participants p ON p.id = r.participant_id
       WHERE p.subject_code = '${s}' AND r.form_code = 'AE' ORDER BY r.instance`,
    );
    expect(inst.map((r) => Number(r.instance))).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
  });

  it("a group whose transaction fails is retried item by item: only the offender fails", async () => {
    // The same Idempotency-Key for two different repeating rows: their group's idempotency INSERT violates the key's
    // uniqueness, the group rolls back, and its items are retried one by one.
    const s = subjects[2];
    const idem1 = idemOf("gc-clash", "x");
    const idem2 = idemOf("gc-clash", "y");
    const before = recordGroupCommitStats(t.ctx.db);
    // A first save keeps the committer busy so that the next ones queue up and form one group.
    const results = await Promise.allSettled([
      saveRecord(t.ctx, p.inv, STUDY, vitals(subjects[7], "V2")),
      saveRecord(t.ctx, p.inv, STUDY, { subject: s, form: "AE", visit: "ANY", data: { term: "one" } }, idem1),
      saveRecord(t.ctx, p.inv, STUDY, vitals(subjects[8], "V2")),
      saveRecord(t.ctx, p.inv, STUDY, { subject: s, form: "AE", visit: "ANY", data: { term: "two" } }, idem2),
      saveRecord(t.ctx, p.inv, STUDY, vitals(subjects[9], "V2")),
    ]);
    const after = recordGroupCommitStats(t.ctx.db);
    expect(after.fallbacks).toBeGreaterThan(before.fallbacks);
    // The other records all commit; of the two rows under one key, the one that reaches the database first is
    // written, the other is refused as a different request under a used key (as two such requests are today).
    for (const i of [0, 2, 4]) expect(results[i].status).toBe("fulfilled");
    const clash = [results[1], results[3]];
    expect(clash.map((r) => r.status).sort()).toEqual(["fulfilled", "rejected"]);
    const refused = clash.find((r) => r.status === "rejected") as PromiseRejectedResult;
    expect(String(refused.reason)).toMatch(/already used for a different request/);
    const kept = clash[0].status === "fulfilled" ? "one" : "two";
    const terms = await rows(
      `SELECT rv.data_text FROM records r JOIN record_versions rv ON rv.record_id = r.id
       JOIN participants p ON p.id = r.participant_id WHERE p.subject_code = '${s}' AND r.form_code = 'AE'
       AND (rv.data_text LIKE '%"one"%' OR rv.data_text LIKE '%"two"%')`,
    );
    expect(terms.map((r) => r.data_text)).toEqual([`{"term":"${kept}"}`]);
  });

  it("the bulk consent check says consented only where consentStatus does", async () => {
    const fresh = (await enrollParticipant(t.ctx, p.inv, { study: STUDY, site: "S1" })).subjectCode;
    const all = await rows(`SELECT id FROM participants`);
    const facts = await subjectFacts(
      t.ctx.db,
      all.map((r) => String(r.id)),
    );
    expect(facts.size).toBe(all.length);
    let consented = 0;
    for (const r of all) {
      const st = await consentStatus(t.ctx, String(r.id));
      const f = facts.get(String(r.id))!;
      if (f.consented && !f.withdrawn) {
        consented++;
        expect(st.state).toBe("consented");
      }
      if (st.state === "consented") expect(f.consented).toBe(true);
      expect(f.withdrawn).toBe(st.withdrawals.length > 0);
    }
    expect(consented).toBeGreaterThan(0);
    expect(fresh).toBeTruthy();
  });

  it("the integrity audit is clean after the group writes", async () => {
    await sealAll(t.ctx);
    const r = await runIntegrityAudit(t.ctx, { study: STUDY });
    expect(
      r.findings.filter((f) => f.severity === "tamper"),
      JSON.stringify(r.findings),
    ).toEqual([]);
  });
});
