/** Reads for the integrity audit of paper consent attestations against their `consent.paper_attested` entries. */
import { sql } from "drizzle-orm";
import type { DbOrTx } from "../client.ts";
import { rowsOf } from "./rows.ts";

const ISO = sql.raw(`'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'`);

/** A study's paper consents with the attestation entry each names (times as UTC ISO with milliseconds). */
export async function paperAttestationRows(db: DbOrTx, studyId: string) {
  return rowsOf<{
    id: string;
    scan_sha256: unknown;
    attested_by: string | null;
    attested_iso: string | null;
    attest_entry_id: string | null;
    e_id: string | null;
    e_kind: string | null;
    e_payload: string | null;
    e_seq: string | number | null;
    e_study: string | null;
    e_at_iso: string | null;
  }>(
    await db.execute(sql`
      SELECT t.id, t.scan_sha256, t.attested_by, to_char(t.attested_at AT TIME ZONE 'UTC', ${ISO}) AS attested_iso,
             t.attest_entry_id, e.id AS e_id, e.kind AS e_kind, e.payload_text AS e_payload, e.seq AS e_seq,
             e.study_id AS e_study, to_char(e.at AT TIME ZONE 'UTC', ${ISO}) AS e_at_iso
        FROM paper_consents t LEFT JOIN ledger_entries e ON e.id = t.attest_entry_id
       WHERE t.study_id = ${studyId} ORDER BY t.id`),
  );
}

/** A study's `consent.paper_attested` entries that no paper_consents row names. */
export async function attestationEntriesWithoutRow(db: DbOrTx, studyId: string) {
  return rowsOf<{ id: string; seq: string | number | null; payload_text: string }>(
    await db.execute(sql`
      SELECT e.id, e.seq, e.payload_text FROM ledger_entries e
       WHERE e.study_id = ${studyId} AND e.kind = 'consent.paper_attested'
         AND NOT EXISTS (SELECT 1 FROM paper_consents t WHERE t.attest_entry_id = e.id)
       ORDER BY e.seq NULLS LAST, e.id`),
  );
}
