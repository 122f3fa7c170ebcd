import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openTestDatabase, engineUnderTest, type TestDb } from "../helpers/db.ts";
import { createStudy } from "../../app/studies/studies.server.ts";

let t: TestDb;
let studyId: string;

const q = (sql: string) => t.database.execute(sql);

beforeAll(async () => {
  t = await openTestDatabase();
  const { study } = await createStudy(
    t.ctx,
    { code: "AO-1", title: "Append-only", sites: [{ code: "S1", name: "Site 1" }] },
    null,
  );
  studyId = study.id;
  // Rows in every append-only table, inserted the way the sealer and services do.
  await q(`INSERT INTO batches (batch_no, first_seq, size, root, header_text, leaf_hash, sealed_at)
           VALUES (0, 0, 1, '\\x00', '{}', '\\x01', now())`);
  await q(`INSERT INTO checkpoints (tree_size, root, note_text, checkpoint_hash, key_id, created_at)
           VALUES (1, '\\x00', 'note', '\\x02', 'abcd', now())`);
  await q(`INSERT INTO audit_events (action) VALUES ('test')`);
});

afterAll(async () => {
  await t?.close();
});

describe(`append-only ledger tables on ${engineUnderTest()}`, () => {
  it(
    "rejects UPDATE and DELETE of ledger entries, batches, " + "checkpoints and audit events with the trigger's error",
    async () => {
      const attempts = [
        `UPDATE ledger_entries SET kind = 'x'`,
        `DELETE FROM ledger_entries`,
        `UPDATE batches SET size = 2`,
        `DELETE FROM batches`,
        `UPDATE checkpoints SET note_text = 'forged'`,
        `DELETE FROM checkpoints`,
        `UPDATE audit_events SET action = 'x'`,
        `DELETE FROM audit_events`,
        `TRUNCATE ledger_entries CASCADE`,
        `TRUNCATE batches`,
        `TRUNCATE checkpoints CASCADE`,
        `TRUNCATE audit_events`,
      ];
      for (const sql of attempts) {
        await expect(q(sql), sql).rejects.toThrow(/append-only/);
      }
      const [{ n }] = await q(`SELECT count(*)::int AS n FROM ledger_entries`);
      expect(n).toBeGreaterThanOrEqual(2); // study.registered + site.added, untouched
      const [{ size }] = await q(`SELECT size FROM batches WHERE batch_no = 0`);
      expect(size).toBe(1);
    },
  );

  it("rejects UPDATE and DELETE of record versions", async () => {
    await q(
      `INSERT INTO participants (id, study_id, site_id, subject_code) ` +
        `SELECT '00000000-0000-4000-8000-000000000001', study_id, id, 'S-001' FROM sites ` +
        `WHERE study_id = '${studyId}'`,
    );
    await q(
      `INSERT INTO forms (id, study_id, code, version, title, definition_text, ` +
        `definition_sha256) VALUES ('00000000-0000-4000-8000-000000000002', '${studyId}', 'F', 1, ` +
        `'F', '{}', '\\x00')`,
    );
    await q(
      `INSERT INTO records (id, study_id, site_id, participant_id, form_code, visit) ` +
        `SELECT '00000000-0000-4000-8000-000000000003', study_id, site_id, id, 'F', 'V1' ` +
        `FROM participants WHERE subject_code = 'S-001'`,
    );
    const [entry] = await q(`SELECT id FROM ledger_entries LIMIT 1`);
    await q(
      `INSERT INTO record_versions (record_id, study_id, version, form_id, form_version, data_text, entry_id)
             VALUES ('00000000-0000-4000-8000-000000000003', '${studyId}', 1, ` +
        `'00000000-0000-4000-8000-000000000002', 1, '{"a":1}', '${entry.id}')`,
    );
    await expect(q(`UPDATE record_versions SET data_text = '{"a":2}'`)).rejects.toThrow(
      /record_versions is append-only: UPDATE rejected/,
    );
    await expect(q(`DELETE FROM record_versions`)).rejects.toThrow(/record_versions is append-only: DELETE rejected/);
    const [{ data_text }] = await q(`SELECT data_text FROM record_versions`);
    expect(data_text).toBe('{"a":1}');
  });

  it("allows exactly one transition, pending -> sealed, and nothing after it", async () => {
    const [e] = await q(`SELECT id FROM ledger_entries ORDER BY at LIMIT 1`);
    const seal =
      `UPDATE ledger_entries SET status = 'sealed', seq = 0, study_seq = 0, ` +
      `envelope_text = '{}', leaf_hash = '\\x00', batch_no = 0 WHERE id = '${e.id}'`;
    // Sealing while also changing the payload is refused.
    await expect(q(seal.replace("status = 'sealed',", "status = 'sealed', payload_text = 'forged',"))).rejects.toThrow(
      /append-only/,
    );
    // Sealing without all seal fields is refused.
    await expect(q(`UPDATE ledger_entries SET status = 'sealed' WHERE id = '${e.id}'`)).rejects.toThrow(/append-only/);
    await q(seal);
    const [row] = await q(`SELECT status, seq FROM ledger_entries WHERE id = '${e.id}'`);
    expect(row.status).toBe("sealed");
    expect(Number(row.seq)).toBe(0);
    // Once sealed, nothing changes: not back to pending, not another seq.
    await expect(q(`UPDATE ledger_entries SET status = 'pending' WHERE id = '${e.id}'`)).rejects.toThrow(/append-only/);
    await expect(q(`UPDATE ledger_entries SET seq = 5 WHERE id = '${e.id}'`)).rejects.toThrow(/append-only/);
  });

  it("refuses rows inserted already sealed", async () => {
    await expect(
      q(`INSERT INTO ledger_entries (study_id, study_code, kind, payload_text, payload_hash, at, status, seq)
         VALUES ('${studyId}', 'AO-1', 'site.added', '{}', '\\x00', now(), 'sealed', 99)`),
    ).rejects.toThrow(/inserted pending/);
  });
});
