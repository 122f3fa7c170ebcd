/**
 * Audit-trail events written in bulk (`insertSealedEvents`, issue 19: group commit and the batch API), on PGlite and
 * PostgreSQL: each event gets its own id, salt and `audit.event` entry, exactly as one written alone; the integrity
 * audit finds the set clean, and names a bulk-written event changed behind the log.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { sql } from "drizzle-orm";
import { openTestDatabase, type TestDb } from "../helpers/db.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { sealAll } from "../../app/log/sealer.server.ts";
import { runIntegrityAudit } from "../../app/integrity-audit/integrity-audit.server.ts";
import { insertSealedEvents } from "../../app/audit-trail/seal-event.server.ts";
import { DEPLOYMENT_SCOPE } from "../../anchoring/log/envelope.ts";

let t: TestDb;
let studyId = "";

beforeAll(async () => {
  t = await openTestDatabase();
  await createStudy(t.ctx, { code: "BULK-1", title: "Bulk events", sites: [{ code: "S1", name: "1" }] }, null);
  const [s] = await t.database.execute("SELECT id FROM studies WHERE code = 'BULK-1'");
  studyId = String((s as { id: string }).id);
});
afterAll(async () => t?.close());

it("seals each event of a bulk write with its own entry, and the integrity audit checks them", async () => {
  const events = Array.from({ length: 1203 }, (_, i) => ({
    action: "record.create",
    actorLabel: `person ${i}`,
    studyId: i % 100 === 0 ? null : studyId,
    ip: i % 2 ? "203.0.113.9" : null,
    detail: { record: `r${i}`, n: i },
  }));
  const ids = await t.ctx.db.transaction((tx) => insertSealedEvents(tx, events, t.ctx.crypto));
  expect(ids).toHaveLength(events.length);
  expect(new Set(ids).size).toBe(events.length);
  const rows = (await t.database.execute(
    `SELECT a.id, a.detail, e.kind, e.study_code, e.payload_text FROM audit_events a
     JOIN ledger_entries e ON e.id = a.entry_id WHERE a.action = 'record.create' ORDER BY a.id`,
  )) as { id: string | number; detail: { n: number }; kind: string; study_code: string; payload_text: string }[];
  expect(rows).toHaveLength(events.length);
  const byId = new Map(ids.map((id, i) => [id, i]));
  const salts = new Set<string>();
  for (const r of rows) {
    const i = byId.get(Number(r.id));
    expect(i).toBe(r.detail.n);
    const payload = JSON.parse(r.payload_text) as { event: number; salt: string; actorLabel: string };
    expect(payload.event).toBe(Number(r.id));
    expect(payload.actorLabel).toMatch(/^[0-9a-f]{64}$/);
    expect(r.payload_text).not.toContain(`person ${i}`);
    salts.add(payload.salt);
    expect(r.kind).toBe("audit.event");
    expect(r.study_code).toBe(i !== undefined && i % 100 === 0 ? DEPLOYMENT_SCOPE : "BULK-1");
  }
  expect(salts.size).toBe(events.length);
  await sealAll(t.ctx);
  const clean = await runIntegrityAudit(t.ctx);
  expect(clean.findings.filter((f) => f.severity === "tamper")).toEqual([]);

  const victim = ids[7];
  await t.ctx.db.transaction(async (tx) => {
    await tx.execute(sql.raw("SET LOCAL session_replication_role = replica"));
    await tx.execute(sql.raw(`UPDATE audit_events SET detail = '{"record":"forged","n":7}' WHERE id = ${victim}`));
  });
  const after = await runIntegrityAudit(t.ctx);
  const named = after.findings.filter((f) => f.severity === "tamper").map((f) => JSON.stringify(f));
  expect(named.some((f) => f.includes(String(victim)))).toBe(true);
});
