/**
 * Migration 0023 (ADR 0045) on a populated database, on PGlite and PostgreSQL: a log written on the previous schema
 * (several sealed batches, pending entries, records, corrections, a signature, SDV, a query) is partitioned by seq
 * range; every row, every proof bundle and the integrity audit's report are unchanged, sealing continues, the
 * append-only guards still refuse what they refused, and a row naming an entry that does not exist (no foreign key
 * any more) is named by the audit.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sql } from "drizzle-orm";
import { engineUnderTest, type TestDb } from "../helpers/db.ts";
import { applyLater, openDatabaseBefore } from "../helpers/migrated-before.ts";
import { giveCompleteConsent } from "../helpers/consent.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { createUser } from "../../app/accounts/users.server.ts";
import { principalForUser } from "../../app/accounts/auth.server.ts";
import { enrollParticipant } from "../../app/participants/participants.server.ts";
import { importForm } from "../../app/records/forms.server.ts";
import { correctRecord, saveRecord } from "../../app/records/records.server.ts";
import {
  answerQuery,
  closeQuery,
  markSdv,
  openQuery,
  signRecord,
} from "../../app/clinical-monitoring/clinical-monitoring.server.ts";
import { sealAll } from "../../app/log/sealer.server.ts";
import { setFormsBeforeConsent } from "../../app/studies/settings.server.ts";
import { setSchedule } from "../../app/visit-schedule/schedule-setup.server.ts";
import { setDisposition } from "../../app/participants/disposition.server.ts";
import { createImportJob, runImportJob } from "../../app/data-import/import-jobs.server.ts";
import { sealOnce } from "../../anchoring/log/sealer.ts";
import { ledgerStore } from "../../db/log-store.ts";
import { findEntryByRef, proofBundle } from "../../app/log/proofs.server.ts";
import { runIntegrityAudit, type AuditReport } from "../../app/integrity-audit/integrity-audit.server.ts";
import type { Principal } from "../../app/platform/permissions.server.ts";

const PW = "amber otter winter forty-two";
const meta = { ip: "127.0.0.1", userAgent: "test" };
let t: TestDb;
let later: Awaited<ReturnType<typeof applyLater>>;
let laterSupply: Awaited<ReturnType<typeof applyLater>>;
let laterSharing: Awaited<ReturnType<typeof applyLater>>;
const p: Record<string, Principal> = {};
const recordIds: string[] = [];
let subjects = 0;

const q = (s: string) => t.database.execute(s);
const num = (v: unknown) => (v === null ? null : Number(v));

/** Every column of every entry, as text, in id order. */
const entryRows = () =>
  q(`SELECT id::text, study_id::text, study_code, kind, payload_text, encode(payload_hash, 'hex') AS payload_hash,
            to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.MS') AS at, status, seq::text, study_seq::text,
            envelope_text, encode(leaf_hash, 'hex') AS leaf_hash, batch_no::text
       FROM ledger_entries ORDER BY id`);

async function bundles() {
  const out: Record<string, string> = {};
  for (const r of await q(`SELECT id FROM ledger_entries ORDER BY id`)) {
    const e = await findEntryByRef(t.ctx, String(r.id));
    out[String(r.id)] = JSON.stringify(await proofBundle(t.ctx, e!));
  }
  return out;
}

const findings = (r: AuditReport) => r.findings.map((f) => `${f.severity} ${f.code} ${f.message}`).sort();
const tampers = (r: AuditReport) => r.findings.filter((f) => f.severity === "tamper");

/** The sealer as it ran before the migration (no partitions to make ahead), in batches of `maxBatch`. */
const sealOld = (maxBatch: number) =>
  sealOnce(ledgerStore(t.ctx.db), {
    origin: t.ctx.env.logOrigin,
    maxBatch,
    crypto: t.ctx.crypto,
    signer: t.ctx.signer,
  });

async function enrolWithRecords() {
  const s = await enrollParticipant(t.ctx, p.inv, {
    study: "PART-1",
    site: "S1",
    personal: { fullName: `Person ${subjects}`, email: `p${subjects}@part.test` },
  });
  subjects++;
  await giveCompleteConsent(t.ctx, "PART-1", s.subjectCode);
  for (const visit of ["SCREENING", "WEEK4"]) {
    const data = { sbp: 110 + subjects, temp: 36.6 };
    recordIds.push(
      (await saveRecord(t.ctx, p.inv, "PART-1", { subject: s.subjectCode, form: "VITALS", visit, data })).id,
    );
  }
}

/** Run SQL as an attacker with superuser rights would: with the append-only triggers switched off. */
async function tamper(statements: string[]) {
  await t.ctx.db.transaction(async (tx) => {
    await tx.execute(sql.raw("SET LOCAL session_replication_role = replica"));
    for (const s of statements) await tx.execute(sql.raw(s));
  });
}

beforeAll(async () => {
  t = await openDatabaseBefore("0023_partition-ledger");
  // Today's services and audit read issue 20's tables (migration 0024, new tables only): made ahead, dropped before
  // the real migrations run (they stay empty here).
  later = await applyLater(t, "0024_pre-commitment");
  laterSupply = await applyLater(t, "0025_drug-supply"); // issue 21's tables, read by the audit, the same way
  laterSharing = await applyLater(t, "0026_data-sharing"); // issue 22's tables and study_settings' new column
  expect(await q(`SELECT relkind FROM pg_class WHERE relname = 'ledger_entries'`)).toEqual([{ relkind: "r" }]);
  await createStudy(t.ctx, { code: "PART-1", title: "Partitioned", sites: [{ code: "S1", name: "1" }] }, null);
  await createStudy(t.ctx, { code: "PART-2", title: "Neighbour", sites: [{ code: "S1", name: "1" }] }, null);
  for (const [k, role, study, site] of [
    ["inv", "investigator", "PART-1", "S1"],
    ["mon", "monitor", "PART-1", undefined],
  ] as const) {
    const u = await createUser(
      t.ctx,
      { email: `${k}@part.test`, fullName: `${k} person`, password: PW, role, study, site },
      null,
    );
    p[k] = (await principalForUser(t.ctx, u.id))!;
  }
  const fields = [
    { name: "sbp", label: "SBP", type: "number", integer: true, min: 50, max: 250 },
    { name: "temp", label: "Temp", type: "number", min: 30, max: 45 },
  ];
  const definition = { code: "VITALS", title: "Vitals", version: 1, visits: ["SCREENING", "WEEK4"], fields };
  await importForm(t.ctx, "PART-1", definition, { actorId: null });
  // Several batches sealed on the old schema, interleaved with writes.
  for (let i = 0; i < 3; i++) {
    await enrolWithRecords();
    while (await sealOld(9));
  }
  await correctRecord(t.ctx, p.inv, "PART-1", recordIds[0], { data: { sbp: 121, temp: 36.9 }, reason: "typo" });
  await signRecord(t.ctx, p.inv, "PART-1", recordIds[1], { meaning: "approved", password: PW }, meta);
  await markSdv(t.ctx, p.mon, "PART-1", recordIds[2]);
  const query = await openQuery(t.ctx, p.mon, "PART-1", recordIds[3], { field: "sbp", text: "Please confirm" });
  await answerQuery(t.ctx, p.inv, "PART-1", query.id, "Confirmed against the source");
  while (await sealOld(9));
  await closeQuery(t.ctx, p.mon, "PART-1", query.id);
  // Entries still pending when the migration runs.
  await enrolWithRecords();
}, 600_000);

afterAll(async () => {
  await t?.close();
});

describe(`migration 0023: ledger_entries partitioned by seq range, on ${engineUnderTest()}`, () => {
  it(
    "moves every row unchanged: the proofs and the audit's report are the same; pending rows stay pending; " +
      "sealing continues from where it was",
    async () => {
      const rowsBefore = await entryRows();
      const pendingBefore = rowsBefore.filter((r) => r.status === "pending").length;
      const batchesBefore = await q(`SELECT count(*)::int AS n FROM batches`);
      expect(batchesBefore[0].n).toBeGreaterThanOrEqual(4);
      expect(pendingBefore).toBeGreaterThan(0);
      const bundlesBefore = await bundles();
      const auditBefore = await runIntegrityAudit(t.ctx);
      expect(tampers(auditBefore)).toEqual([]);

      await laterSharing.dropLater();
      await laterSupply.dropLater();
      await later.dropLater();
      await t.database.migrate();

      // The table is partitioned; each row is in the partition of its seq (pending ones in the default).
      expect(await q(`SELECT relkind FROM pg_class WHERE relname = 'ledger_entries'`)).toEqual([{ relkind: "p" }]);
      const placed = await q(
        `SELECT tableoid::regclass::text AS part, status, count(*)::int AS n
           FROM ledger_entries GROUP BY 1, 2 ORDER BY 1`,
      );
      expect(placed).toEqual([
        { part: "ledger_entries_pending", status: "pending", n: pendingBefore },
        { part: "ledger_entries_s0", status: "sealed", n: rowsBefore.length - pendingBefore },
      ]);
      // Partitions exist one whole range ahead of the log.
      const parts = await q(
        `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
          WHERE i.inhparent = 'ledger_entries'::regclass ORDER BY 1`,
      );
      expect(parts.map((r) => r.relname)).toEqual(["ledger_entries_pending", "ledger_entries_s0", "ledger_entries_s1"]);
      // No foreign key references the partitioned table any more.
      expect(
        await q(`SELECT conname FROM pg_constraint WHERE contype = 'f' AND confrelid = 'ledger_entries'::regclass`),
      ).toEqual([]);

      expect(await entryRows()).toEqual(rowsBefore);
      expect(await bundles()).toEqual(bundlesBefore);
      expect(findings(await runIntegrityAudit(t.ctx))).toEqual(findings(auditBefore));

      // Sealing continues: the pending entries and new ones are sealed after the last batch, seqs gapless.
      const [last] = await q(`SELECT max(batch_no)::int AS b, max(seq)::int AS s FROM ledger_entries`);
      await enrolWithRecords();
      await correctRecord(t.ctx, p.inv, "PART-1", recordIds[5], { data: { sbp: 99, temp: 37.1 }, reason: "typo" });
      t.ctx.env = { ...t.ctx.env, sealMaxBatch: 9 };
      const made = await sealAll(t.ctx);
      expect(made.length).toBeGreaterThan(1);
      expect(made[0]).toMatchObject({ batchNo: Number(last.b) + 1, firstSeq: Number(last.s) + 1 });
      const after = await q(`SELECT seq, status, tableoid::regclass::text AS part FROM ledger_entries ORDER BY seq`);
      expect(after.map((r) => num(r.seq))).toEqual(after.map((_, i) => i));
      expect(new Set(after.map((r) => `${r.status} ${r.part}`))).toEqual(new Set(["sealed ledger_entries_s0"]));
      const report = await runIntegrityAudit(t.ctx);
      expect(tampers(report)).toEqual([]);
      // Every entry (old and new) has its proof, from its batch.
      for (const [id, b] of Object.entries(await bundles())) {
        expect(JSON.parse(b).status, id).toBe("sealed");
        if (bundlesBefore[id] && JSON.parse(bundlesBefore[id]).status === "sealed") expect(b).toBe(bundlesBefore[id]);
      }
    },
  );

  it(
    "still refuses a DELETE (pending or sealed), an UPDATE of a sealed row, a row inserted sealed, " + "a TRUNCATE",
    async () => {
      await enrolWithRecords(); // some pending rows
      const [pending] = await q(`SELECT id FROM ledger_entries WHERE status = 'pending' LIMIT 1`);
      const [sealed] = await q(`SELECT id, seq FROM ledger_entries WHERE status = 'sealed' ORDER BY seq DESC LIMIT 1`);
      const attempts: [string, RegExp][] = [
        [`DELETE FROM ledger_entries WHERE id = '${pending.id}'`, /ledger_entries is append-only: DELETE rejected/],
        [`DELETE FROM ledger_entries WHERE id = '${sealed.id}'`, /ledger_entries is append-only: DELETE rejected/],
        [`DELETE FROM ledger_entries_pending`, /ledger_entries is append-only: DELETE rejected/],
        [`DELETE FROM ledger_entries_s0`, /ledger_entries is append-only: DELETE rejected/],
        [`UPDATE ledger_entries SET kind = 'x' WHERE id = '${sealed.id}'`, /append-only: UPDATE rejected/],
        [`UPDATE ledger_entries SET seq = 99999999 WHERE id = '${sealed.id}'`, /append-only: UPDATE rejected/],
        [`UPDATE ledger_entries SET seq = NULL, status = 'pending' WHERE id = '${sealed.id}'`, /append-only/],
        [`UPDATE ledger_entries_s0 SET payload_text = 'x' WHERE id = '${sealed.id}'`, /append-only: UPDATE rejected/],
        [`TRUNCATE ledger_entries CASCADE`, /append-only/],
        [`TRUNCATE ledger_entries_s0`, /append-only/],
        [`TRUNCATE ledger_entries_pending`, /append-only/],
        [
          `INSERT INTO ledger_entries (study_code, kind, payload_text, payload_hash, at, status, seq, study_seq,
           envelope_text, leaf_hash, batch_no)
         VALUES ('x', 'site.added', '{}', '\\x00', now(), 'sealed', 99999, 1, '{}', '\\x00', 1)`,
          /inserted pending/,
        ],
      ];
      for (const [s, err] of attempts) await expect(q(s), s).rejects.toThrow(err);
      // An id already used by a sealed entry is refused (the unique index on id is per partition).
      await expect(
        q(`INSERT INTO ledger_entries (id, study_code, kind, payload_text, payload_hash, at)
         VALUES ('${sealed.id}', 'x', 'site.added', '{}', '\\x00', now())`),
      ).rejects.toThrow(/duplicate key/);
      // A pending entry cannot be moved out by an UPDATE of its partition key alone.
      await expect(q(`UPDATE ledger_entries SET seq = 999 WHERE id = '${pending.id}'`)).rejects.toThrow(/append-only/);
      const [{ n }] = await q(
        `SELECT count(*)::int AS n FROM ledger_entries WHERE id IN ('${pending.id}', '${sealed.id}')`,
      );
      expect(n).toBe(2);
      await sealAll(t.ctx);
      expect(tampers(await runIntegrityAudit(t.ctx))).toEqual([]);
    },
  );

  /** One transaction of raw SQL; what it raises (at a statement or at commit), or null when it committed. */
  async function attempt(statements: string[]): Promise<string | null> {
    try {
      await t.ctx.db.transaction(async (tx) => {
        for (const s of statements) await tx.execute(sql.raw(s));
      });
      return null;
    } catch (e) {
      const err = e as { message?: string; cause?: { message?: string } };
      return `${err.message ?? ""} ${err.cause?.message ?? ""}`;
    }
  }
  /** Ids no entry has, one per attempt. */
  const newId = (n: number) => `00000000-0000-4000-8000-0000000f000${n}`;
  const forge = (value: string) => `SELECT set_config('trialseal.sealing', '${value}', true)`;
  /**
   * Insert a sealed row copied from `source` (a table or subquery holding the entry), with a seq of its own in the
   * next partition (so no unique index of one partition sees a twin); `o` replaces its id, payload or envelope.
   */
  let forgedSeq = 10_000_001;
  const one = (id: unknown) => `(SELECT * FROM ledger_entries WHERE id = '${id}' LIMIT 1)`;
  const insertSealed = (source: string, o: { id?: string; payload?: string; envelope?: string } = {}) =>
    `INSERT INTO ledger_entries (id, study_id, study_code, kind, payload_text, payload_hash, at, status, seq,
       study_seq, envelope_text, leaf_hash, batch_no)
     SELECT ${o.id ? `'${o.id}'` : "e.id"}, e.study_id, e.study_code, e.kind, ${o.payload ?? "e.payload_text"},
       e.payload_hash, e.at, 'sealed', ${forgedSeq++}, 1, ${o.envelope ?? "'{}'"}, '\\x00', 1 FROM ${source} AS e`;

  it(
    "refuses a forged seal setting: a pending entry deleted, a sealed row inserted beside its pending or sealed " +
      "twin, a pending entry deleted and put back (sealed or pending) with another payload",
    async () => {
      await enrolWithRecords(); // some pending rows
      await enrolWithRecords();
      // Each attempt on its own pending entry, so each outcome shows on its own (if the guards let one through).
      const pendings = (await q(`SELECT id FROM ledger_entries WHERE status = 'pending' ORDER BY at, id`)).map((r) =>
        String(r.id),
      );
      let next = 0;
      const pid = () => pendings[next++];
      const [sealed] = await q(`SELECT id FROM ledger_entries WHERE status = 'sealed' ORDER BY seq LIMIT 1`);
      const before = await entryRows();
      const cases: [string, (id: string) => string[], RegExp][] = [
        [
          "delete a pending entry",
          (id) => [forge(id), `DELETE FROM ledger_entries WHERE id = '${id}'`],
          /append-only: DELETE rejected/,
        ],
        [
          "delete a pending entry (its partition)",
          (id) => [forge(id), `DELETE FROM ledger_entries_pending WHERE id = '${id}'`],
          /append-only: DELETE rejected/,
        ],
        [
          "insert a sealed twin of a pending entry",
          (id) => [forge(`moved ${id}`), insertSealed(one(id))],
          /inserted pending/,
        ],
        [
          "insert a sealed twin of a sealed entry (another partition)",
          () => [forge(`moved ${sealed.id}`), insertSealed(one(sealed.id))],
          /inserted pending/,
        ],
        [
          "delete a pending entry and put it back sealed with another payload",
          (id) => [
            `CREATE TEMP TABLE keep ON COMMIT DROP AS SELECT * FROM ledger_entries WHERE id = '${id}'`,
            forge(id),
            `DELETE FROM ledger_entries WHERE id = '${id}'`,
            insertSealed("keep", { payload: `'{"forged":true}'` }),
          ],
          /append-only: DELETE rejected|inserted pending/,
        ],
        [
          "delete a pending entry and put it back pending with another payload",
          (id) => [
            `CREATE TEMP TABLE keep2 ON COMMIT DROP AS SELECT * FROM ledger_entries WHERE id = '${id}'`,
            forge(id),
            `DELETE FROM ledger_entries WHERE id = '${id}'`,
            `INSERT INTO ledger_entries (id, study_id, study_code, kind, payload_text, payload_hash, at)
             SELECT id, study_id, study_code, kind, '{"forged":true}', payload_hash, at FROM keep2`,
          ],
          /append-only: DELETE rejected/,
        ],
        [
          "insert a sealed row with a new id",
          (id) => [forge(`moved ${newId(1)}`), insertSealed(one(id), { id: newId(1) })],
          /inserted pending/,
        ],
        [
          "insert a sealed row straight into a sealed partition",
          (id) => [
            forge(`moved ${newId(4)}`),
            insertSealed(one(id), { id: newId(4) }).replace("INTO ledger_entries ", "INTO ledger_entries_s1 "),
          ],
          /inserted pending/,
        ],
        [
          "delete a pending entry in a writable CTE that puts it back sealed",
          (id) => [
            forge(id),
            `WITH d AS (DELETE FROM ledger_entries WHERE id = '${id}' RETURNING *) ${insertSealed("d")}`,
          ],
          /append-only: DELETE rejected/,
        ],
        [
          "delete a pending entry with MERGE",
          (id) => [
            forge(id),
            `MERGE INTO ledger_entries e USING (SELECT '${id}'::uuid AS id) v ON e.id = v.id WHEN MATCHED THEN DELETE`,
          ],
          /append-only: DELETE rejected/,
        ],
        [
          "insert a sealed row with a new id, without all seal fields",
          (id) => [forge(`moved ${newId(5)}`), insertSealed(one(id), { id: newId(5), envelope: "NULL" })],
          /inserted pending/,
        ],
      ];
      const outcomes: Record<string, string | null> = {};
      for (const [name, statements] of cases) outcomes[name] = await attempt(statements(pid()));
      expect(next).toBeLessThanOrEqual(pendings.length);
      // All outcomes in one comparison, so a failure shows every attempt that got through.
      const refused = (name: string, err: RegExp) =>
        outcomes[name] !== null && err.test(outcomes[name])
          ? "refused"
          : `not refused: ${outcomes[name] ?? "committed"}`;
      expect(Object.fromEntries(cases.map(([name, , err]) => [name, refused(name, err)]))).toEqual(
        Object.fromEntries(cases.map(([name]) => [name, "refused"])),
      );
      expect(await entryRows()).toEqual(before);
      // The seal itself still passes the guards, and the log stays whole.
      await sealAll(t.ctx);
      expect(tampers(await runIntegrityAudit(t.ctx))).toEqual([]);
    },
  );

  it("names a data row whose entry does not exist, for each of the ten columns that were foreign keys", async () => {
    // Rows for the columns the populated log has no row for yet, each written through its service.
    const admin = await createUser(
      t.ctx,
      { email: "admin@part.test", fullName: "admin person", password: PW, role: "admin", study: "PART-1" },
      null,
    );
    const dm = await createUser(
      t.ctx,
      { email: "dm@part.test", fullName: "dm person", password: PW, role: "data_manager", study: "PART-1" },
      null,
    );
    p.admin = (await principalForUser(t.ctx, admin.id))!;
    p.dm = (await principalForUser(t.ctx, dm.id))!;
    await setFormsBeforeConsent(t.ctx, p.admin, "PART-1", { formsBeforeConsent: "VITALS" });
    await setSchedule(t.ctx, p.admin, "PART-1", {
      baseline: { kind: "enrolment" },
      visits: [{ code: "WEEK4", name: "Week 4", day: 28, windowBefore: 3, windowAfter: 3, forms: ["VITALS"] }],
    });
    const [subject] = await q(`SELECT subject_code FROM participants ORDER BY subject_code LIMIT 1`);
    await setDisposition(t.ctx, p.inv, "PART-1", String(subject.subject_code), {
      status: "randomized",
      date: "2026-02-02",
    });
    const job = await createImportJob(t.ctx, p.dm, "PART-1", {
      fileName: "v.csv",
      bytes: new TextEncoder().encode(`subject,visit,sbp\n${subject.subject_code},WEEK4,120\n`),
      formCode: "VITALS",
      dryRun: false,
    });
    const done = await runImportJob(t.ctx, job.id);
    expect(done.status, done.error ?? "").toBe("done");
    await sealAll(t.ctx);
    // The ten columns migration 0023 dropped a foreign key from (each pointed at ledger_entries(id)).
    const columns = [
      ["record_versions", "entry_id"],
      ["sdv_marks", "entry_id"],
      ["signatures", "entry_id"],
      ["paper_consents", "entry_id"],
      ["paper_consents", "attest_entry_id"],
      ["study_settings", "entry_id"],
      ["import_jobs", "entry_id"],
      ["participant_dispositions", "entry_id"],
      ["query_events", "entry_id"],
      ["visit_schedules", "entry_id"],
    ] as const;
    // None of them is a foreign key any more (to ledger_entries or anything else).
    const fks = await q(
      `SELECT conrelid::regclass::text AS t, a.attname AS c FROM pg_constraint k
         JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = ANY (k.conkey) WHERE k.contype = 'f'`,
    );
    expect(fks.filter((r) => columns.some(([t2, c]) => r.t === t2 && r.c === c))).toEqual([]);
    const tampered: string[] = [];
    const statements: string[] = [];
    for (const [i, [table, column]] of columns.entries()) {
      // A different row for each column of one table (paper_consents has two), so each change is its own.
      const rows = await q(`SELECT id::text FROM ${table} WHERE ${column} IS NOT NULL ORDER BY id`);
      const row = rows[columns.slice(0, i).filter(([t2]) => t2 === table).length];
      expect(row, `a ${table} row with ${column}`).toBeDefined();
      const ghost = `00000000-0000-4000-8000-${String(i).padStart(12, "0")}`;
      statements.push(`UPDATE ${table} SET ${column} = '${ghost}' WHERE id = '${row.id}'`);
      tampered.push(`${table} ${row.id}`);
    }
    // Without the triggers (as a superuser could); without foreign keys the database itself no longer refuses it.
    await tamper(statements);
    const named = new Set(tampers(await runIntegrityAudit(t.ctx)).map((f) => `${f.table} ${f.id}`));
    for (const [i, [table, column]] of columns.entries())
      expect(named.has(tampered[i]), `${table}.${column}`).toBe(true);
  });

  it(
    "still lets a pending row be inserted and then sealed by an UPDATE with seal fields of the session's choosing " +
      "(the allowed transition, as before partitioning); the audit names such a row",
    async () => {
      const [src] = await q(`SELECT id FROM ledger_entries ORDER BY seq LIMIT 1`);
      const allowed = "00000000-0000-4000-8000-0000000f0003";
      const seq = forgedSeq++;
      expect(
        await attempt([
          `INSERT INTO ledger_entries (id, study_id, study_code, kind, payload_text, payload_hash, at)
           SELECT '${allowed}', study_id, study_code, kind, payload_text, payload_hash, at
             FROM ledger_entries WHERE id = '${src.id}'`,
          `UPDATE ledger_entries SET status = 'sealed', seq = ${seq}, study_seq = 1, envelope_text = '{}',
             leaf_hash = '\\x00', batch_no = 1 WHERE id = '${allowed}'`,
        ]),
      ).toBeNull();
      expect(await q(`SELECT tableoid::regclass::text AS part FROM ledger_entries WHERE id = '${allowed}'`)).toEqual([
        { part: "ledger_entries_s1" },
      ]);
      const named = tampers(await runIntegrityAudit(t.ctx)).map((f) => `${f.code} ${f.seq}`);
      expect(named).toContain(`SEQ_OUTSIDE_BATCHES ${seq}`);
    },
  );
});
