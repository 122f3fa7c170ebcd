/**
 * Audit-trail events from before migration 0016 (ADR 0016), on PGlite and PostgreSQL: they are sealed once, at
 * start after the upgrade, by one `audit.legacy_sealed` entry (idempotent, several processes at once); the whole
 * audit then names a legacy event deleted, altered or inserted at a free id (AUDIT_LEGACY_MISMATCH) and a row
 * without an entry above the sealed range (AUDIT_EVENT_UNLOGGED). A study's audit names an event of the study whose
 * row was moved to another study or to none (triggers disabled as superuser).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sql } from "drizzle-orm";
import { openTestDatabase, engineUnderTest, type TestDb } from "../helpers/db.ts";
import { testEnv } from "../helpers/env.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { createUser } from "../../app/accounts/users.server.ts";
import { sealAll } from "../../app/log/sealer.server.ts";
import { runIntegrityAudit, type AuditReport } from "../../app/integrity-audit/integrity-audit.server.ts";
import { sealLegacyAuditEvents } from "../../app/audit-trail/seal-legacy.server.ts";
import { createAppContext } from "../../app/platform/context.server.ts";
import { parsePayload } from "../../anchoring/log/payloads.ts";

const PW = "amber otter winter forty-two";
let t: TestDb;
const legacyIds: number[] = [];

async function tamper(statements: string[]) {
  await t.ctx.db.transaction(async (tx) => {
    await tx.execute(sql.raw("SET LOCAL session_replication_role = replica"));
    for (const s of statements) await tx.execute(sql.raw(s));
  });
}
const rows = (q: string) => t.database.execute(q);
const tampers = (r: AuditReport) => r.findings.filter((f) => f.severity === "tamper");
const legacyEntries = async () =>
  (await rows(`SELECT payload_text FROM ledger_entries WHERE kind = 'audit.legacy_sealed'`)).map(
    (r) => JSON.parse(String(r.payload_text)) as Record<string, unknown>,
  );

beforeAll(async () => {
  t = await openTestDatabase();
  // A deployment from before migration 0016: five events without an entry, then a gap in the ids.
  await tamper(
    [1, 2, 3, 4, 5].map(
      (i) =>
        `INSERT INTO audit_events (at, action, outcome, actor_label, ip, detail) VALUES ` +
        `('2025-0${i}-01T10:00:00.${i}00Z', 'login', '${i === 3 ? "failure" : "success"}', 'old${i}@x.test', ` +
        `'198.51.100.${i}', '{"n": ${i}}')`,
    ),
  );
  for (const r of await rows("SELECT id FROM audit_events ORDER BY id")) legacyIds.push(Number(r.id));
  await rows(`SELECT setval(pg_get_serial_sequence('audit_events', 'id'), ${legacyIds[4] + 20})`);
}, 60_000);

afterAll(async () => {
  await t?.close();
});

describe(`audit-trail events from before the seal on ${engineUnderTest()}`, () => {
  it("seals them once at start, in the deployment scope, even when several processes start at once", async () => {
    if (t.url) {
      // The real hook: each process that opens the database (portal, CLI) seals them after the migrations.
      const env = { ...testEnv(), databaseUrl: t.url };
      const ctxs = await Promise.all([1, 2, 3].map(() => createAppContext(env)));
      for (const c of ctxs) await c.database.close();
    } else {
      await Promise.all([1, 2, 3].map(() => sealLegacyAuditEvents(t.ctx.db, t.ctx.crypto)));
    }
    expect(await sealLegacyAuditEvents(t.ctx.db, t.ctx.crypto)).toBeNull();
    const sealed = await legacyEntries();
    expect(sealed).toHaveLength(1);
    expect(sealed[0]).toMatchObject({ count: 5, firstId: legacyIds[0], lastId: legacyIds[4] });
    expect(parsePayload("audit.legacy_sealed", sealed[0]).success).toBe(true);
    const [e] = await rows(`SELECT study_id, study_code FROM ledger_entries WHERE kind = 'audit.legacy_sealed'`);
    expect(e).toMatchObject({ study_id: null, study_code: "deployment" });
    // The database allows one such entry (migration 0018), whoever writes it.
    await expect(
      rows(`INSERT INTO ledger_entries (study_code, kind, payload_text, payload_hash, at)
            VALUES ('deployment', 'audit.legacy_sealed', '{}', '\\x00', now())`),
    ).rejects.toThrow(/duplicate key|unique/i);

    // Sealed events from now on; the audit is clean and checks the old ones.
    for (const code of ["LEG-1", "LEG-2"])
      await createStudy(t.ctx, { code, title: "Legacy", sites: [{ code: "S1", name: "1" }] }, null);
    await createUser(
      t.ctx,
      { email: "inv@leg.test", fullName: "Inv", password: PW, role: "investigator", study: "LEG-1", site: "S1" },
      null,
    );
    await sealAll(t.ctx);
    const r = await runIntegrityAudit(t.ctx);
    expect(tampers(r)).toEqual([]);
    expect(r.findings.map((f) => f.code)).not.toContain("AUDIT_EVENT_UNSEALED_LEGACY");
  });

  it("names a legacy event altered, deleted, or inserted at a free id, and one inserted above the range", async () => {
    const legacyFinding = async () =>
      tampers(await runIntegrityAudit(t.ctx)).filter((f) => f.code === "AUDIT_LEGACY_MISMATCH");
    await tamper([`UPDATE audit_events SET ip = '10.9.9.9' WHERE id = ${legacyIds[2]}`]);
    let found = await legacyFinding();
    expect(found).toHaveLength(1);
    expect(found[0]).toMatchObject({ table: "audit_events", field: "digest" });
    expect(found[0].message).toMatch(/seals 5 audit-trail event\(s\).*5 are there, but their digest differs/);
    await tamper([`UPDATE audit_events SET ip = '198.51.100.3' WHERE id = ${legacyIds[2]}`]);
    expect(await legacyFinding()).toEqual([]);

    await tamper([`DELETE FROM audit_events WHERE id = ${legacyIds[1]}`]);
    found = await legacyFinding();
    expect(found).toHaveLength(1);
    expect(found[0]).toMatchObject({ field: "count" });
    expect(found[0].message).toMatch(/seals 5 audit-trail event\(s\).*; 4 are there now/);

    // Re-inserted at the freed id (below the first sealed id) with other content: still a mismatch.
    await tamper([
      `INSERT INTO audit_events (id, at, action, outcome, detail) VALUES ` +
        `(${legacyIds[1]}, '2025-02-01T10:00:00.200Z', 'login', 'success', '{"n": 2}')`,
    ]);
    found = await legacyFinding();
    expect(found).toHaveLength(1);
    expect(found[0]).toMatchObject({ field: "digest" });

    // A row without an entry in the gap above the sealed range (still below the first sealed event): inserted.
    const gap = legacyIds[4] + 10;
    await tamper([`INSERT INTO audit_events (id, action, outcome, detail) VALUES (${gap}, 'login', 'success', '{}')`]);
    const r = await runIntegrityAudit(t.ctx);
    expect(tampers(r)).toContainEqual(
      expect.objectContaining({ code: "AUDIT_EVENT_UNLOGGED", table: "audit_events", id: String(gap) }),
    );
    expect(r.findings.map((f) => f.code)).not.toContain("AUDIT_EVENT_UNSEALED_LEGACY");
  });

  it("a study's audit names an event of the study whose row now names another study or none", async () => {
    const [a] = await rows(`SELECT id FROM studies WHERE code = 'LEG-1'`);
    const [b] = await rows(`SELECT id FROM studies WHERE code = 'LEG-2'`);
    const events = await rows(
      `SELECT id FROM audit_events WHERE study_id = '${a.id}' AND entry_id IS NOT NULL ORDER BY id LIMIT 2`,
    );
    expect(events).toHaveLength(2);
    const before = tampers(await runIntegrityAudit(t.ctx, { study: "LEG-1" }));
    expect(before.filter((f) => f.table === "audit_events")).toEqual([]);
    await tamper([
      `UPDATE audit_events SET study_id = NULL WHERE id = ${events[0].id}`,
      `UPDATE audit_events SET study_id = '${b.id}' WHERE id = ${events[1].id}`,
    ]);
    const f = tampers(await runIntegrityAudit(t.ctx, { study: "LEG-1" }));
    for (const e of events)
      expect(f).toContainEqual(
        expect.objectContaining({
          code: "AUDIT_EVENT_MISMATCH",
          table: "audit_events",
          study: "LEG-1",
          id: String(e.id),
          field: "study_id",
        }),
      );
  });
});
