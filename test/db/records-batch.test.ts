/**
 * The batch API's service (issue 19, ADR 0040) on PGlite and PostgreSQL: 1,000 new records in one call, each with
 * its own record.saved v3 entry, rows, sealed audit event and next instance of a repeating form; per-item errors
 * (unknown subject, invalid value, locked subject, no consent, duplicate in the batch and in the database, no
 * permission at the subject's site) beside the good items, which commit; idempotent replay of a whole batch writes
 * nothing and returns the same results; written exactly as saveRecord writes; the integrity audit is clean after.
 */
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createStaff, delegateTasks } from "../helpers/study-staff.ts";
import { openTestDatabase, engineUnderTest, type TestDb } from "../helpers/db.ts";
import { giveCompleteConsent } from "../helpers/consent.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { importForm } from "../../app/records/forms.server.ts";
import { enrollParticipant } from "../../app/participants/participants.server.ts";
import { createApiToken, tokenPrincipal } from "../../app/accounts/tokens.server.ts";
import { setLock } from "../../app/clinical-monitoring/clinical-monitoring.server.ts";
import { saveRecord } from "../../app/records/records.server.ts";
import {
  MAX_BATCH_ITEM_BYTES,
  MAX_WRITE_ATTEMPTS,
  saveRecordBatch,
  type BatchOutcome,
} from "../../app/records/batch.server.ts";
import { revokeDelegation } from "../../app/studies/delegations.server.ts";
import { runIntegrityAudit } from "../../app/integrity-audit/integrity-audit.server.ts";
import { sealAll } from "../../app/log/sealer.server.ts";
import type { Principal } from "../../app/platform/permissions.server.ts";
import { action as batchAction } from "../../app/routes/api/api.v1.studies.$code.records_.batch.ts";

const S = "BAT-1";
let t: TestDb;
const p: Record<string, Principal> = {};
let api: Principal;
let apiToken: string;
const q = async (text: string) => t.database.execute(text);
const count = async (table: string, where = "true") =>
  Number((await q(`SELECT count(*)::int AS n FROM ${table} WHERE ${where}`))[0].n);

const VITALS = {
  code: "VITALS",
  title: "Vital signs",
  version: 1,
  visits: ["SCREENING", "WEEK4"],
  fields: [
    { name: "sbp", label: "Systolic BP", type: "number", integer: true, min: 50, max: 250, softMax: 160 },
    { name: "visit_date", label: "Visit date", type: "date", required: true },
  ],
};
const AE = {
  code: "AE",
  title: "Adverse events",
  version: 1,
  visits: ["LOG"],
  repeating: true,
  fields: [
    { name: "term", label: "Adverse event", type: "text", required: true, maxLength: 200 },
    { name: "serious", label: "Serious", type: "boolean", required: true },
  ],
};
const vitals = (subject: string, visit: string, sbp = 120) => ({
  subject,
  form: "VITALS",
  visit,
  data: { sbp, visit_date: "2026-03-01" },
});
const ae = (subject: string, term: string) => ({ subject, form: "AE", visit: "LOG", data: { term, serious: false } });
/** S1-001..S1-010 consented, S1-011 without consent, S2-001 at site S2 (consented). */
const SUBJECTS = Array.from({ length: 10 }, (_, i) => `S1-${String(i + 1).padStart(3, "0")}`);

beforeAll(async () => {
  t = await openTestDatabase();
  await createStudy(
    t.ctx,
    {
      code: S,
      title: "Batch",
      sites: [
        { code: "S1", name: "1" },
        { code: "S2", name: "2" },
      ],
    },
    null,
  );
  Object.assign(
    p,
    (
      await createStaff(t.ctx, S, "bat.test", [
        ["inv", "investigator", "S1"],
        ["inv2", "investigator", "S2"],
        ["dm", "data_manager"],
        ["crc", "coordinator", "S1"],
      ])
    ).principals,
  );
  await delegateTasks(t.ctx, S, "bat.test", p, [["inv", "S1", "crc"]]);
  await importForm(t.ctx, S, VITALS, { actorId: null });
  await importForm(t.ctx, S, AE, { actorId: null });
  for (let i = 0; i < 11; i++) await enrollParticipant(t.ctx, p.inv, { study: S, site: "S1" });
  await enrollParticipant(t.ctx, p.inv2, { study: S, site: "S2" });
  for (const s of [...SUBJECTS, "S2-001"]) await giveCompleteConsent(t.ctx, S, s);
  apiToken = (await createApiToken(t.ctx, { study: S, name: "edc-batch" }, null)).token;
  api = (await tokenPrincipal(t.ctx, apiToken))!;
});
afterAll(async () => {
  await t?.close();
});

const statuses = (r: BatchOutcome) => r.results.map((x) => x.status);

describe(`batch of new records on ${engineUnderTest()}`, () => {
  it("writes 1,000 records in one call, each with its own entry, rows, audit event and instance", async () => {
    const before = {
      versions: await count("record_versions"),
      entries: await count("ledger_entries", "kind = 'record.saved'"),
      events: await count("audit_events", "action = 'record.create'"),
    };
    const items: unknown[] = [];
    for (const s of SUBJECTS) for (const v of ["SCREENING", "WEEK4"]) items.push(vitals(s, v));
    for (let i = 0; items.length < 1000; i++) items.push(ae(SUBJECTS[i % 10], `event ${i}`));
    const r = await saveRecordBatch(t.ctx, api, S, { records: items });
    expect(r.failed, JSON.stringify(r.results.find((x) => x.status !== 201))).toBe(0);
    expect(r).toMatchObject({ written: 1000, replayed: 0, failed: 0 });
    expect(r.results.map((x) => x.index)).toEqual(items.map((_, i) => i));
    expect(new Set(r.results.map((x) => x.record?.entry.id)).size).toBe(1000);
    expect(await count("record_versions")).toBe(before.versions + 1000);
    expect(await count("ledger_entries", "kind = 'record.saved'")).toBe(before.entries + 1000);
    expect(await count("audit_events", "action = 'record.create'")).toBe(before.events + 1000);
    // Each record's version names its own entry; each audit event names that entry and the token.
    const ids = r.results.map((x) => `'${x.record?.id}'`).join(",");
    const rows = await q(
      `SELECT v.record_id, v.entry_id, v.actor_token_name, e.payload_text, a.detail, a.actor_label
       FROM record_versions v JOIN ledger_entries e ON e.id = v.entry_id
       JOIN audit_events a ON a.action = 'record.create' AND a.detail->>'record' = v.record_id::text
       WHERE v.record_id IN (${ids})`,
    );
    expect(rows).toHaveLength(1000);
    for (const row of rows) {
      const payload = JSON.parse(String(row.payload_text));
      expect(payload.record).toBe(row.record_id);
      expect(payload.source).toBeUndefined();
      expect(payload.token).toMatchObject({ name: "edc-batch" });
      expect(payload.actor).toBeNull();
      const detail = typeof row.detail === "string" ? JSON.parse(row.detail) : row.detail;
      expect(detail.entry).toBe(row.entry_id);
      expect(detail.token).toMatchObject({ name: "edc-batch" });
      expect(row.actor_token_name).toBe("edc-batch");
      expect(row.actor_label).toMatch(/^API token edc-batch/);
    }
    // The AE rows of a subject are instances 1..n in item order (ADR 0026).
    const aeOf1 = r.results
      .filter((_x, i) => (items[i] as { form: string; subject: string }).form === "AE")
      .filter((_x, i) => i % 10 === 0)
      .map((x) => x.record?.instance);
    expect(aeOf1).toEqual(aeOf1.map((_, i) => i + 1));
  });

  it("gives each bad item its own error and commits the good ones", async () => {
    await setLock(t.ctx, p.dm, S, { scope: "subject", target: "S1-009", reason: "SDV done" });
    const first = await saveRecordBatch(t.ctx, p.inv, S, { records: [ae("S1-001", "headache")] });
    expect(first.results[0].record?.instance).toBeGreaterThan(1);
    const before = await count("record_versions");
    const items = [
      ae("S1-002", "nausea"), // 0 good
      { ...vitals("S9-999", "SCREENING") }, // 1 unknown subject
      ae("S1-003", ""), // 2 invalid value (required)
      ae("S1-009", "rash"), // 3 locked subject
      ae("S1-011", "dizziness"), // 4 no consent
      { subject: "S1-004", form: "VITALS", visit: "SCREENING", data: { sbp: 999, visit_date: "2026-03-01" } }, // 5
      vitals("S1-001", "SCREENING"), // 6 duplicate in the database
      ae("S2-001", "cough"), // 7 no permission at site S2
      { ...ae("S1-005", "fever"), colour: "red" }, // 8 unknown field
      ae("S1-005", "fever"), // 9 good
    ];
    const r = await saveRecordBatch(t.ctx, p.inv, S, { records: items });
    expect(statuses(r)).toEqual([201, 422, 422, 423, 409, 422, 409, 403, 422, 201]);
    expect(r.results[1].error).toMatchObject({ code: "invalid", field: "subject" });
    expect(r.results[1].error?.message).toMatch(/no subject S9-999/);
    expect(r.results[2].error?.field).toBe("data.term");
    expect(r.results[3].error).toMatchObject({ code: "locked" });
    expect(r.results[3].error?.message).toMatch(/SDV done/);
    expect(r.results[4].error?.message).toMatch(/S1-011 has not consented/);
    expect(r.results[5].error?.field).toBe("data.sbp");
    expect(r.results[6].error?.message).toMatch(/already has form VITALS at visit SCREENING; correct it instead/);
    expect(r.results[7].error?.code).toBe("forbidden");
    expect(r.results[8].error?.field).toBe("colour");
    expect(r).toMatchObject({ written: 2, failed: 8 });
    expect(await count("record_versions")).toBe(before + 2);

    // A value over its soft limit not confirmed is that item's 422 (kind "confirm").
    const d = await saveRecordBatch(t.ctx, p.inv, S, { records: [vitals("S1-010", "SCREENING", 170)] });
    expect(d.results[0].error).toMatchObject({ code: "invalid", field: "data.sbp" });
  });

  it("a duplicate within the batch is that item's 409; a confirmed soft-limit value opens its query", async () => {
    await giveCompleteConsent(t.ctx, S, "S1-011");
    const r = await saveRecordBatch(t.ctx, p.inv, S, {
      records: [
        { ...vitals("S1-011", "SCREENING", 170), confirmed: ["sbp"] },
        vitals("S1-011", "SCREENING"),
        vitals("S1-011", "WEEK4"),
      ],
    });
    expect(statuses(r)).toEqual([201, 409, 201]);
    expect(r.results[1].error?.message).toMatch(/in item 0 of this batch/);
    expect(r.results[0].record?.queries).toHaveLength(1);
    const [qr] = await q(`SELECT record_id, field FROM queries WHERE id = '${r.results[0].record?.queries?.[0]}'`);
    expect(qr).toMatchObject({ record_id: r.results[0].record?.id, field: "sbp" });
  });

  it("replays a whole batch by its items' keys: same results, nothing written; another body is a 409", async () => {
    const items = [0, 1, 2].map((i) => ({ ...ae("S1-006", `replay ${i}`), idempotencyKey: `k-${i}` }));
    const a = await saveRecordBatch(t.ctx, api, S, { records: items });
    expect(statuses(a)).toEqual([201, 201, 201]);
    const before = {
      versions: await count("record_versions"),
      entries: await count("ledger_entries"),
      events: await count("audit_events"),
    };
    const b = await saveRecordBatch(t.ctx, api, S, { records: items });
    expect(b.results.map(({ replayed, ...x }) => x)).toEqual(a.results);
    expect(b.results.every((x) => x.replayed)).toBe(true);
    expect(b).toMatchObject({ written: 3, replayed: 3, failed: 0 });
    expect({
      versions: await count("record_versions"),
      entries: await count("ledger_entries"),
      events: await count("audit_events"),
    }).toEqual(before);
    const c = await saveRecordBatch(t.ctx, api, S, {
      records: [
        { ...items[0], data: { term: "changed", serious: false } },
        items[1],
        { ...items[2], idempotencyKey: "k-1" },
      ],
    });
    expect(statuses(c)).toEqual([409, 201, 422]);
    expect(c.results[0].error).toMatchObject({ code: "conflict", field: "idempotencyKey" });
    expect(c.results[1].replayed).toBe(true);
    expect(c.results[2].error?.field).toBe("idempotencyKey");
    expect(await count("record_versions")).toBe(before.versions);
  });

  it("writes what saveRecord writes (same payload fields, audit detail and rows)", async () => {
    const one = await saveRecord(t.ctx, p.inv, S, ae("S1-007", "single"));
    const [batch] = (await saveRecordBatch(t.ctx, p.inv, S, { records: [ae("S1-007", "batched")] })).results;
    expect(batch.record?.instance).toBe(one.instance + 1);
    const rows = await q(
      `SELECT e.payload_text, a.detail, a.actor_user_id, v.actor_user_id AS row_actor, r.instance
       FROM record_versions v JOIN ledger_entries e ON e.id = v.entry_id JOIN records r ON r.id = v.record_id
       JOIN audit_events a ON a.action = 'record.create' AND a.detail->>'record' = v.record_id::text
       WHERE v.record_id IN ('${one.id}', '${batch.record?.id}') ORDER BY r.instance`,
    );
    const shape = (row: Record<string, unknown>) => {
      const payload = JSON.parse(String(row.payload_text));
      const detail = typeof row.detail === "string" ? JSON.parse(row.detail) : row.detail;
      return {
        payload: Object.keys(payload).sort(),
        v: payload.v,
        actor: payload.actor,
        detail: Object.keys(detail).sort(),
        auditActor: row.actor_user_id,
        rowActor: row.row_actor,
      };
    };
    expect(rows).toHaveLength(2);
    expect(shape(rows[1])).toEqual(shape(rows[0]));
  });

  it("refuses a body that is not a batch, an empty one and one over 1,000 items, naming records", async () => {
    await expect(saveRecordBatch(t.ctx, api, S, { records: [] })).rejects.toMatchObject({ field: "records" });
    await expect(saveRecordBatch(t.ctx, api, S, [])).rejects.toMatchObject({ field: "records" });
    await expect(
      saveRecordBatch(t.ctx, api, S, { records: Array.from({ length: 1001 }, () => ae("S1-001", "x")) }),
    ).rejects.toMatchObject({ field: "records", message: expect.stringMatching(/at most 1000/) });
  });

  it("through the route: a batch costs one request per item against the API rate (429 after)", async () => {
    const ctx = { ...t.ctx, env: { ...t.ctx.env, apiRatePerSecond: 1 } };
    const tok = (await createApiToken(t.ctx, { study: S, name: "edc-rate" }, null)).token;
    const call = async (body: unknown) => {
      const res = await batchAction({
        request: new Request(`http://portal.test/api/v1/studies/${S}/records/batch`, {
          method: "POST",
          headers: { authorization: `Bearer ${tok}`, "content-type": "application/json" },
          body: JSON.stringify(body),
        }),
        context: { ctx },
        params: { code: S },
      } as never);
      return { status: res.status, body: (await res.json()) as Record<string, any>, headers: res.headers };
    };
    // A bucket of 2 (burst) admits a batch of 20 and is then 18 requests short: the next call waits ~19 s.
    const first = await call({ records: Array.from({ length: 20 }, (_, i) => ae("S1-008", `rate ${i}`)) });
    expect(first.status).toBe(200);
    expect(first.body.written).toBe(20);
    const next = await call({ records: [ae("S1-008", "too soon")] });
    expect(next.status).toBe(429);
    expect(Number(next.headers.get("retry-after"))).toBeGreaterThan(10);
    expect((await call({ records: "nope" })).status).toBe(422);
  });

  it("retries the write after a deadlock or a serialization failure, a bounded number of times", async () => {
    // A real PostgreSQL error raised by the database itself: a statement trigger on records that fails while a
    // sequence (not rolled back with the transaction) is at or below a limit, first 40P01 then 40001.
    const arm = async (limit: number) => {
      await q("DROP TRIGGER IF EXISTS batch_fault ON records");
      await q("DROP SEQUENCE IF EXISTS batch_fault_seq");
      await q("CREATE SEQUENCE batch_fault_seq");
      await q(`CREATE OR REPLACE FUNCTION batch_fault() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE n bigint := nextval('batch_fault_seq');
        BEGIN
          IF n <= ${limit} AND n % 2 = 1 THEN RAISE EXCEPTION 'deadlock detected' USING ERRCODE = '40P01'; END IF;
          IF n <= ${limit} THEN RAISE EXCEPTION 'could not serialize access' USING ERRCODE = '40001'; END IF;
          RETURN NULL;
        END $$`);
      await q("CREATE TRIGGER batch_fault BEFORE INSERT ON records FOR EACH STATEMENT EXECUTE FUNCTION batch_fault()");
    };
    const calls = async () => Number((await q("SELECT last_value AS n FROM batch_fault_seq"))[0].n);
    try {
      await arm(2);
      const before = await count("record_versions");
      const r = await saveRecordBatch(t.ctx, api, S, {
        records: [ae("S1-002", "after a deadlock"), ae("S1-003", "after a deadlock")],
      });
      expect(statuses(r)).toEqual([201, 201]);
      expect(await calls()).toBe(3);
      expect(await count("record_versions")).toBe(before + 2);
      // Always failing: the call gives up after MAX_WRITE_ATTEMPTS attempts, nothing written.
      await arm(1_000_000);
      const err = await saveRecordBatch(t.ctx, api, S, { records: [ae("S1-002", "never")] }).then(
        () => null,
        (e: { code?: string; cause?: { code?: string } }) => e.cause?.code ?? e.code,
      );
      expect(err).toMatch(/^(40P01|40001)$/);
      expect(await calls()).toBe(MAX_WRITE_ATTEMPTS);
      expect(await count("record_versions")).toBe(before + 2);
    } finally {
      await q("DROP TRIGGER IF EXISTS batch_fault ON records");
      await q("DROP SEQUENCE IF EXISTS batch_fault_seq");
    }
  });

  it.skipIf(engineUnderTest() !== "postgres")(
    "on PostgreSQL: a batch chosen as a real deadlock's victim is written by its retry",
    async () => {
      // Another session holds the AE slot's advisory lock of S1-006; the batch takes its subject FOR SHARE and then
      // waits for that lock; the session then asks the subject FOR UPDATE: a deadlock, whose victim is the batch
      // (its deadlock_timeout runs out first).
      const [pp] = await q("SELECT id FROM participants WHERE subject_code = 'S1-006'");
      const slot = `records:${pp.id}:AE:LOG`;
      const other = postgres(t.url as string, { max: 1, onnotice: () => {} });
      let batch: Promise<BatchOutcome | Error> | undefined;
      try {
        await other.begin(async (tx) => {
          await tx`SET LOCAL deadlock_timeout = '60s'`;
          await tx`SELECT pg_advisory_xact_lock(hashtextextended(${slot}, 0))`;
          batch = saveRecordBatch(t.ctx, api, S, { records: [ae("S1-006", "deadlock victim")] }).catch((e) => e);
          const deadline = Date.now() + 120_000;
          for (;;) {
            const [w] = await tx`SELECT count(*)::int AS n FROM pg_locks l JOIN pg_database d ON d.oid = l.database
              WHERE d.datname = current_database() AND l.locktype = 'advisory' AND NOT l.granted`;
            if (w.n > 0) break;
            if (Date.now() > deadline) throw new Error("the batch never waited for the advisory lock");
            await new Promise((r) => setTimeout(r, 20));
          }
          await tx`SELECT 1 FROM participants WHERE id = ${pp.id as string} FOR UPDATE`;
        });
      } finally {
        await other.end();
      }
      const r = await batch;
      if (r instanceof Error) throw r;
      expect(statuses(r as BatchOutcome)).toEqual([201]);
    },
    180_000,
  );

  it("replays a stored item before any check: an ended delegation does not turn its 201 into a 403", async () => {
    const item = { ...ae("S1-004", "delegated"), idempotencyKey: "crc-1" };
    const a = await saveRecordBatch(t.ctx, p.crc, S, { records: [item] });
    expect(statuses(a)).toEqual([201]);
    const [d] = await q(`SELECT d.id FROM delegations d JOIN users u ON u.id = d.delegate_id
      WHERE u.email = 'crc@bat.test' AND d.revoked_at IS NULL`);
    await revokeDelegation(t.ctx, p.inv, { study: S, id: String(d.id), reason: "left the site" });
    const before = await count("record_versions");
    const b = await saveRecordBatch(t.ctx, p.crc, S, {
      records: [
        item,
        { ...item, data: { term: "other", serious: false }, idempotencyKey: "crc-1" },
        { ...ae("S1-004", "new"), idempotencyKey: "crc-2" },
      ],
    });
    expect(statuses(b)).toEqual([201, 422, 403]);
    expect(b.results[0]).toEqual({ ...a.results[0], replayed: true });
    expect(b.results[1].error?.field).toBe("idempotencyKey");
    // The same key with another body stays that item's 409, whatever changed since.
    const c = await saveRecordBatch(t.ctx, p.crc, S, {
      records: [{ ...item, data: { term: "other", serious: false } }],
    });
    expect(statuses(c)).toEqual([409]);
    expect(c.results[0].error).toMatchObject({ code: "conflict", field: "idempotencyKey" });
    expect(await count("record_versions")).toBe(before);
  });

  it("refuses an item over 64 KiB with its own 413 naming it; the others are written", async () => {
    const before = await count("record_versions");
    const big = { ...ae("S1-005", "big"), data: { term: "x".repeat(MAX_BATCH_ITEM_BYTES), serious: false } };
    const r = await saveRecordBatch(t.ctx, p.inv, S, {
      records: [ae("S1-005", "small before"), big, ae("S1-005", "small after")],
    });
    expect(statuses(r)).toEqual([201, 413, 201]);
    expect(r.results[1].error).toMatchObject({ code: "too_large", field: "records[1]" });
    expect(r.results[1].error?.message).toMatch(/65536 bytes/);
    expect(r).toMatchObject({ written: 2, failed: 1 });
    expect(await count("record_versions")).toBe(before + 2);
  });

  it("a keyed item that cannot be canonicalized (lone surrogate) is its own 422, not a 500", async () => {
    const r = await saveRecordBatch(t.ctx, api, S, {
      records: [
        { ...ae("S1-008", "fine"), idempotencyKey: "u-0" },
        { ...ae("S1-008", "bad \ud800"), idempotencyKey: "u-1" },
      ],
    });
    expect(statuses(r)).toEqual([201, 422]);
    expect(r.results[1].error).toMatchObject({ code: "invalid", field: "data.term" });
  });

  it("leaves a study the integrity audit finds clean", async () => {
    await sealAll(t.ctx);
    const audit = await runIntegrityAudit(t.ctx, { study: S });
    expect(audit.findings.filter((f) => f.severity === "tamper")).toEqual([]);
  });
});
