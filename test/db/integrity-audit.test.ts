/**
 * The whole-study audit on PGlite and PostgreSQL, on a study with thousands of entries across many batches:
 * clean when nothing was touched; then each tamper an attacker with superuser rights could make (append-only
 * triggers disabled with session_replication_role = replica) is found and named, and undone: a value altered
 * in a data row and in a payload, a ledger row deleted, a row inserted, two seqs swapped, a batch header edited,
 * a checkpoint replaced by one signed with another key, a record's prev chain broken, an anchor receipt edited
 * and a local-ledger record removed from its file. The erasure procedure is reported as "erased by procedure",
 * the audit stays clean and every proof still verifies.
 */
import { randomBytes } from "node:crypto";
import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sql } from "drizzle-orm";
import { openTestDatabase, engineUnderTest, type TestDb } from "../helpers/db.ts";
import { giveCompleteConsent } from "../helpers/consent.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { createUser } from "../../app/accounts/users.server.ts";
import { principalForUser } from "../../app/accounts/auth.server.ts";
import { enrollParticipant, eraseParticipantData } from "../../app/participants/participants.server.ts";
import { importForm } from "../../app/records/forms.server.ts";
import { correctRecord, saveRecord } from "../../app/records/records.server.ts";
import {
  answerQuery,
  closeQuery,
  markSdv,
  openQuery,
  releaseLock,
  setLock,
  signRecord,
} from "../../app/clinical-monitoring/clinical-monitoring.server.ts";
import { appendEntry } from "../../app/log/append-entry.server.ts";
import { sealAll } from "../../app/log/sealer.server.ts";
import { anchorOnce, deploymentTrustPolicy } from "../../app/anchor-worker/anchor-worker.server.ts";
import { findEntryByRef, proofBundle } from "../../app/log/proofs.server.ts";
import { runIntegrityAudit, type AuditReport } from "../../app/integrity-audit/integrity-audit.server.ts";
import { verifyBundle } from "../../anchoring/verifier/verify-bundle.ts";
import { checkpointText, signNote } from "../../anchoring/log/checkpoint.ts";
import { nodeSigner } from "../../anchoring/adapters/crypto-node.ts";
import type { Principal } from "../../app/platform/permissions.server.ts";

const PW = "amber otter winter forty-two";
const meta = { ip: "127.0.0.1", userAgent: "test" };
let t: TestDb;
const p: Record<string, Principal> = {};
let entries = 0;

/** Run SQL as an attacker with superuser rights would: with the append-only triggers switched off. */
async function tamper(statements: string[]) {
  await t.ctx.db.transaction(async (tx) => {
    await tx.execute(sql.raw("SET LOCAL session_replication_role = replica"));
    for (const s of statements) await tx.execute(sql.raw(s));
  });
}
const one = async (q: string) => (await t.database.execute(q))[0] as Record<string, unknown>;
const codes = (r: AuditReport) =>
  [...new Set(r.findings.filter((f) => f.severity === "tamper").map((f) => f.code))].sort();
const hex = (v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString("hex") : String(v).replace(/^\\x/, ""));

beforeAll(async () => {
  t = await openTestDatabase();
  t.ctx.env = { ...t.ctx.env, sealMaxBatch: 250 };
  await createStudy(t.ctx, { code: "AUD-1", title: "Audited", sites: [{ code: "S1", name: "1" }] }, null);
  await createStudy(t.ctx, { code: "AUD-2", title: "Neighbour", sites: [{ code: "S1", name: "1" }] }, null);
  for (const [k, role, study, site] of [
    ["admin", "admin", undefined, undefined],
    ["inv", "investigator", "AUD-1", "S1"],
    ["mon", "monitor", "AUD-1", undefined],
    ["dm", "data_manager", "AUD-1", undefined],
  ] as const) {
    const u = await createUser(
      t.ctx,
      { email: `${k}@aud.test`, fullName: `${k} person`, password: PW, role, study, site },
      null,
    );
    p[k] = (await principalForUser(t.ctx, u.id))!;
  }
  await importForm(
    t.ctx,
    "AUD-1",
    {
      code: "VITALS",
      title: "Vitals",
      version: 1,
      visits: ["SCREENING", "WEEK4"],
      fields: [
        { name: "sbp", label: "SBP", type: "number", integer: true, min: 50, max: 250 },
        { name: "temp", label: "Temp", type: "number", min: 30, max: 45 },
      ],
    },
    { actorId: null },
  );
  const recordIds: string[] = [];
  for (let i = 0; i < 12; i++) {
    const s = await enrollParticipant(t.ctx, p.inv, {
      study: "AUD-1",
      site: "S1",
      personal: { fullName: `Person ${i}`, email: `p${i}@aud.test` },
    });
    await giveCompleteConsent(t.ctx, "AUD-1", s.subjectCode);
    for (const visit of ["SCREENING", "WEEK4"])
      recordIds.push(
        (
          await saveRecord(t.ctx, p.inv, "AUD-1", {
            subject: s.subjectCode,
            form: "VITALS",
            visit,
            data: { sbp: 110 + i, temp: 36.6 },
          })
        ).id,
      );
  }
  for (const id of recordIds.slice(0, 8))
    await correctRecord(t.ctx, p.inv, "AUD-1", id, { data: { sbp: 121, temp: 36.9 }, reason: "transcription error" });
  await signRecord(t.ctx, p.inv, "AUD-1", recordIds[0], { meaning: "approved", password: PW }, meta);
  await markSdv(t.ctx, p.mon, "AUD-1", recordIds[1]);
  const q = await openQuery(t.ctx, p.mon, "AUD-1", recordIds[2], { field: "sbp", text: "Please confirm the value" });
  await answerQuery(t.ctx, p.inv, "AUD-1", q.id, "Confirmed against the source");
  await closeQuery(t.ctx, p.mon, "AUD-1", q.id);
  const lock = await setLock(t.ctx, p.dm, "AUD-1", { scope: "record", target: recordIds[3], reason: "cleaned" });
  await releaseLock(t.ctx, p.dm, "AUD-1", lock.id, "late correction needed");
  // Volume: thousands of entries of both studies, interleaved, written in bulk transactions.
  const studies = [
    { id: String((await one(`SELECT id FROM studies WHERE code = 'AUD-1'`)).id), code: "AUD-1" },
    { id: String((await one(`SELECT id FROM studies WHERE code = 'AUD-2'`)).id), code: "AUD-2" },
  ];
  for (let chunk = 0; chunk < 6; chunk++) {
    await t.ctx.db.transaction(async (tx) => {
      for (let i = 0; i < 500; i++)
        await appendEntry(tx, t.ctx.crypto, studies[i % 2], "site.added", {
          site: `X${chunk}-${i}`,
          timeZone: "UTC",
          actor: null,
        });
    });
  }
  await sealAll(t.ctx);
  await anchorOnce(t.ctx);
  entries = Number((await one(`SELECT count(*)::int AS n FROM ledger_entries`)).n);
}, 600_000);
afterAll(async () => {
  await t?.close();
});

describe(`whole-study audit on ${engineUnderTest()}`, () => {
  it("is clean on an untouched log of thousands of entries across many batches, with progress", async () => {
    const phases = new Set<string>();
    const r = await runIntegrityAudit(t.ctx, { onProgress: (x) => phases.add(x.phase) });
    expect(
      r.findings.filter((f) => f.severity === "tamper"),
      JSON.stringify(r.findings.slice(0, 5)),
    ).toEqual([]);
    expect(r.clean).toBe(true);
    expect(entries).toBeGreaterThan(3000);
    expect(r.checked.entries).toBe(entries);
    expect(r.checked.batches).toBeGreaterThan(12);
    expect(r.checked.checkpoints).toBe(r.checked.batches);
    expect(r.checked.anchors).toBeGreaterThan(0);
    expect(r.checked.records).toBe(24);
    expect([...phases].sort()).toEqual(["anchors", "data", "log"]);
    const study = await runIntegrityAudit(t.ctx, { study: "AUD-1" });
    expect(study.clean).toBe(true);
    expect(study.study).toBe("AUD-1");
    const from = await runIntegrityAudit(t.ctx, { fromCheckpoint: 5 });
    expect(from.clean).toBe(true);
    expect(from.checked.entries).toBeLessThan(entries);
    await expect(runIntegrityAudit(t.ctx, { fromCheckpoint: 99_999 })).rejects.toMatchObject({
      field: "fromCheckpoint",
    });
  });

  it(
    "names each tamper: altered value, altered payload, deleted row, inserted row, swapped seqs, edited header, " +
      "replaced checkpoint",
    async () => {
      // A value changed in a data row (the portal would show it), not in the log.
      const rv = await one(`SELECT id, data_text FROM record_versions ORDER BY version DESC, id LIMIT 1`);
      await tamper([
        `UPDATE record_versions SET data_text = replace(data_text, '"sbp":121', '"sbp":181') WHERE id = '${rv.id}'`,
      ]);
      let r = await runIntegrityAudit(t.ctx, { study: "AUD-1" });
      expect(r.findings).toContainEqual(
        expect.objectContaining({ code: "DATA_ROW_MISMATCH", table: "record_versions", field: "values", id: rv.id }),
      );
      expect(r.clean).toBe(false);
      await tamper([`UPDATE record_versions SET data_text = '${rv.data_text}' WHERE id = '${rv.id}'`]);

      // Tampers in separate places, each found in the same audit by its own finding: a payload changed in the log
      // itself (an early batch), a ledger row deleted (the last batch), a row inserted after the fact (past the
      // batches), two seqs swapped (batch 3) and a batch header's size edited (batch 2: it changes the batch log's
      // roots from checkpoint 3 on, which no other tamper here touches). Then each is undone: clean again.
      const e = await one(
        `SELECT seq, payload_text FROM ledger_entries ` +
          `WHERE kind = 'record.saved' AND status = 'sealed' ORDER BY seq LIMIT 1`,
      );
      const victim = await one(
        `SELECT * FROM ledger_entries WHERE kind = 'site.added' AND status = 'sealed' ` +
          `ORDER BY seq DESC LIMIT 1 OFFSET 7`,
      );
      const end = Number((await one(`SELECT max(first_seq + size)::int AS n FROM batches`)).n);
      const [a, b] = (await t.database.execute(
        `SELECT id, seq FROM ledger_entries WHERE batch_no = 3 ORDER BY seq LIMIT 2`,
      )) as { id: string; seq: number }[];
      expect(new Set([Number(e.seq), Number(victim.seq), Number(a.seq), Number(b.seq)]).size).toBe(4);
      // Through a free seq of the same partition (ledger_entries is partitioned by seq range, ADR 0045).
      const swap = (x: typeof a, y: typeof a) => [
        `UPDATE ledger_entries SET seq = 9999999 WHERE id = '${x.id}'`,
        `UPDATE ledger_entries SET seq = ${x.seq} WHERE id = '${y.id}'`,
        `UPDATE ledger_entries SET seq = ${y.seq} WHERE id = '${x.id}'`,
      ];
      const h = await one(`SELECT header_text FROM batches WHERE batch_no = 2`);
      await tamper([
        `UPDATE ledger_entries SET payload_text = replace(payload_text, '"visit":"SCREENING"', ` +
          `'"visit":"WEEK4"') WHERE seq = ${e.seq}`,
        `DELETE FROM ledger_entries WHERE id = '${victim.id}'`,
        `INSERT INTO ledger_entries (id, study_id, study_code, kind, payload_text, payload_hash, ` +
          `at, status, seq, study_seq, envelope_text, leaf_hash, batch_no) ` +
          `SELECT gen_random_uuid(), study_id, study_code, kind, payload_text, payload_hash, at, ` +
          `'sealed', ${end}, 99999, envelope_text, leaf_hash, batch_no FROM ledger_entries ` +
          `WHERE seq = 0`,
        ...swap(a, b),
        `UPDATE batches SET header_text = replace(header_text, '"size":', '"size":1') WHERE batch_no = 2`,
      ]);
      r = await runIntegrityAudit(t.ctx);
      expect(r.findings).toContainEqual(
        expect.objectContaining({ code: "ENTRY_PAYLOAD_ALTERED", seq: Number(e.seq), field: "payload" }),
      );
      expect(r.findings).toContainEqual(expect.objectContaining({ code: "SEQ_MISSING", seq: Number(victim.seq) }));
      expect(r.findings).toContainEqual(expect.objectContaining({ code: "SEQ_OUTSIDE_BATCHES", seq: end }));
      expect(r.findings).toContainEqual(
        expect.objectContaining({ code: "ENTRY_FIELD_MISMATCH", seq: Number(a.seq), field: "seq" }),
      );
      expect(r.findings).toContainEqual(expect.objectContaining({ code: "BATCH_ROOT_MISMATCH", batch: 3 }));
      expect(r.findings).toContainEqual(
        expect.objectContaining({ code: "BATCH_HEADER_ALTERED", batch: 2, field: "size" }),
      );
      expect(r.findings).toContainEqual(expect.objectContaining({ code: "CHECKPOINT_ROOT_MISMATCH", treeSize: 3 }));
      const cols = Object.keys(victim);
      const lit = (v: unknown) =>
        v === null
          ? "NULL"
          : v instanceof Uint8Array
            ? `'\\x${hex(v)}'::bytea`
            : v instanceof Date
              ? `'${v.toISOString()}'`
              : `'${String(v).replace(/'/g, "''")}'`;
      await tamper([
        `UPDATE ledger_entries SET payload_text = '${String(e.payload_text).replace(/'/g, "''")}' WHERE seq = ${e.seq}`,
        `INSERT INTO ledger_entries (${cols.join(", ")}) VALUES (${cols.map((c) => lit(victim[c])).join(", ")})`,
        `DELETE FROM ledger_entries WHERE seq = ${end}`,
        ...swap({ ...a, seq: b.seq }, { ...b, seq: a.seq }),
        `UPDATE batches SET header_text = '${h.header_text}' WHERE batch_no = 2`,
      ]);
      expect((await runIntegrityAudit(t.ctx)).clean).toBe(true);

      // A batch header edited so that it is no header (batch 5, after checkpoint 4: its invalid leaf changes the
      // roots of checkpoints 6 on) and, in the same audit, a checkpoint replaced by one signed with another key
      // over another root.
      const h5 = await one(`SELECT header_text FROM batches WHERE batch_no = 5`);
      const cp = await one(`SELECT note_text FROM checkpoints WHERE tree_size = 4`);
      const forged = signNote(
        t.ctx.crypto,
        checkpointText({ origin: t.ctx.env.logOrigin, treeSize: 4, root: new Uint8Array(randomBytes(32)) }),
        t.ctx.env.logOrigin,
        nodeSigner(new Uint8Array(randomBytes(32))),
      );
      await tamper([
        `UPDATE batches SET header_text = replace(header_text, '"sealedAt":"', '"sealedAt":"1') WHERE batch_no = 5`,
        `UPDATE checkpoints SET note_text = '${forged}' WHERE tree_size = 4`,
      ]);
      r = await runIntegrityAudit(t.ctx);
      expect(codes(r)).toEqual(expect.arrayContaining(["BATCH_HEADER_INVALID"]));
      expect(r.findings).toContainEqual(expect.objectContaining({ code: "CHECKPOINT_SIGNATURE_INVALID", treeSize: 4 }));
      expect(r.findings).toContainEqual(expect.objectContaining({ code: "CHECKPOINT_ROOT_MISMATCH", treeSize: 4 }));
      await tamper([
        `UPDATE batches SET header_text = '${h5.header_text}' WHERE batch_no = 5`,
        `UPDATE checkpoints SET note_text = '${cp.note_text}' WHERE tree_size = 4`,
      ]);
      expect((await runIntegrityAudit(t.ctx)).clean).toBe(true);
    },
  );

  it(
    "names a broken prev chain, a lock or query changed behind the log, " +
      "an edited anchor receipt and an anchor missing from the local ledger file",
    async () => {
      // A correction re-pointed away from the version it corrects (payload and hash rewritten consistently).
      const v2 = await one(
        `SELECT e.id, e.payload_text, e.payload_hash FROM record_versions rv JOIN ledger_entries e ` +
          `ON e.id = rv.entry_id WHERE rv.version = 2 ORDER BY e.seq LIMIT 1`,
      );
      const payload = JSON.parse(String(v2.payload_text));
      const altered = JSON.stringify({ ...payload, prev: "00".repeat(32) });
      // In the same study audit: a lock quietly released, a query's text changed.
      await tamper([
        `UPDATE ledger_entries SET payload_text = '${altered}' WHERE id = '${v2.id}'`,
        `UPDATE locks SET reason = 'nothing to see' `,
        `UPDATE queries SET text = 'Different question'`,
      ]);
      let r = await runIntegrityAudit(t.ctx, { study: "AUD-1" });
      expect(r.findings).toContainEqual(expect.objectContaining({ code: "RECORD_CHAIN_BROKEN", id: payload.record }));
      expect(r.findings).toContainEqual(
        expect.objectContaining({ code: "DATA_ROW_MISMATCH", table: "locks", field: "reason" }),
      );
      expect(r.findings).toContainEqual(
        expect.objectContaining({ code: "DATA_ROW_MISMATCH", table: "queries", field: "text" }),
      );
      await tamper([
        `UPDATE ledger_entries SET payload_text = '${String(v2.payload_text)}' WHERE id = '${v2.id}'`,
        `UPDATE locks SET reason = 'cleaned'`,
        `UPDATE queries SET text = 'Please confirm the value'`,
      ]);

      // An anchor receipt edited in the database, and a record removed from the local ledger file.
      const an = await one(
        `SELECT id, receipt_text FROM anchors WHERE ledger = 'local' AND status = 'final' ORDER BY tree_size LIMIT 1`,
      );
      const rec = JSON.parse(String(an.receipt_text));
      const edited = JSON.stringify({ ...rec, record: { ...rec.record, time: "2020-01-01T00:00:00.000Z" } });
      await tamper([`UPDATE anchors SET receipt_text = '${edited}' WHERE id = '${an.id}'`]);
      r = await runIntegrityAudit(t.ctx);
      expect(r.findings).toContainEqual(expect.objectContaining({ code: "ANCHOR_INVALID", ledger: "local" }));
      expect(r.findings).toContainEqual(expect.objectContaining({ code: "ANCHOR_NOT_IN_LEDGER", ledger: "local" }));
      await tamper([`UPDATE anchors SET receipt_text = '${String(an.receipt_text)}' WHERE id = '${an.id}'`]);
      expect((await runIntegrityAudit(t.ctx)).clean).toBe(true);
      // The local ledger file rolled back (its last record gone, as after restoring an old copy): the anchor it
      // held is no longer in the ledger itself, whatever the database says.
      const dir = path.join(t.ctx.env.dataDir, "ledger");
      const file = path.join(dir, readdirSync(dir).find((f) => f.endsWith(".jsonl"))!);
      const original = readFileSync(file, "utf8");
      const lines = original.split("\n").filter(Boolean);
      expect(lines.length).toBeGreaterThan(0);
      writeFileSync(
        file,
        lines
          .slice(0, -1)
          .map((l) => `${l}\n`)
          .join(""),
      );
      try {
        const fresh = (await import("../../app/anchor-worker/ledger-factory.server.ts")).buildLedgers(
          t.ctx.env,
          t.ctx.crypto,
        );
        const r2 = await runIntegrityAudit({ ...t.ctx, ledgers: fresh });
        expect(r2.findings).toContainEqual(expect.objectContaining({ code: "ANCHOR_NOT_IN_LEDGER", ledger: "local" }));
        expect(r2.clean).toBe(false);
      } finally {
        writeFileSync(file, original);
      }
    },
  );

  it(
    "reports the erasure procedure as erased by procedure; " + "the audit stays clean and every proof verifies",
    async () => {
      await expect(eraseParticipantData(t.ctx, p.dm, "AUD-1", "S1-001", "request 42")).rejects.toMatchObject({
        code: "forbidden",
      });
      await expect(eraseParticipantData(t.ctx, p.admin, "AUD-1", "S1-001", " ")).rejects.toMatchObject({
        field: "reason",
      });
      await eraseParticipantData(t.ctx, p.admin, "AUD-1", "S1-001", "data subject request 42");
      await expect(eraseParticipantData(t.ctx, p.admin, "AUD-1", "S1-001", "again")).rejects.toMatchObject({
        code: "conflict",
      });
      const row = await one(
        `SELECT name_enc, email_enc, subject_key_enc, erased_at FROM participants WHERE subject_code = 'S1-001'`,
      );
      expect([row.name_enc, row.email_enc, row.subject_key_enc]).toEqual([null, null, null]);
      await sealAll(t.ctx);
      const r = await runIntegrityAudit(t.ctx, { study: "AUD-1" });
      expect(r.clean, JSON.stringify(r.findings.filter((f) => f.severity === "tamper"))).toBe(true);
      expect(r.findings).toContainEqual(
        expect.objectContaining({ code: "ERASED_BY_PROCEDURE", severity: "info", table: "participants" }),
      );
      const policy = deploymentTrustPolicy(t.ctx);
      for (const seq of [0, 1, 2, 50, Math.floor(entries / 2), entries - 1]) {
        const b = await proofBundle(t.ctx, (await findEntryByRef(t.ctx, String(seq)))!);
        if (b.status !== "sealed") throw new Error("not sealed");
        expect((await verifyBundle(t.ctx.crypto, b.bundle, policy)).verdict).toBe("valid");
      }
    },
  );
});
