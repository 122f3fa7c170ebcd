/** Reads for the integrity audit of the audit trail against its `audit.event` entries (ADR 0016). */
import { sql } from "drizzle-orm";
import type { DbOrTx } from "../client.ts";
import { rowsOf } from "./rows.ts";

export interface AuditEventWithEntry {
  id: string | number;
  at_iso: string;
  action: string;
  outcome: "success" | "failure" | "denied";
  actor_user_id: string | null;
  actor_label: string | null;
  study_id: string | null;
  site_id: string | null;
  participant_id: string | null;
  ip: string | null;
  detail_text: string;
  entry_id: string | null;
  e_id: string | null;
  e_kind: string | null;
  e_payload: string | null;
  e_seq: string | number | null;
  e_study: string | null;
}

/** A page of audit_events rows (id > after, in id order) with the entry each names; only a study's when given. */
export async function auditEventsWithEntries(
  db: DbOrTx,
  after: number,
  limit: number,
  studyId?: string,
): Promise<AuditEventWithEntry[]> {
  return rowsOf<AuditEventWithEntry>(
    await db.execute(sql`
      SELECT a.id, to_char(a.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS at_iso, a.action, a.outcome,
             a.actor_user_id, a.actor_label, a.study_id, a.site_id, a.participant_id, a.ip,
             a.detail::text AS detail_text,
             a.entry_id, e.id AS e_id, e.kind AS e_kind, e.payload_text AS e_payload, e.seq AS e_seq,
             e.study_id AS e_study
        FROM audit_events a LEFT JOIN ledger_entries e ON e.id = a.entry_id
       WHERE a.id > ${after} ${studyId ? sql`AND a.study_id = ${studyId}` : sql``}
       ORDER BY a.id LIMIT ${limit}`),
  );
}

/** audit.event entries that no audit_events row names (the row was deleted, or its link altered). */
export async function auditEntriesWithoutRow(db: DbOrTx, studyId?: string, limit = 10_000) {
  return rowsOf<{ id: string; seq: string | number | null; payload_text: string; study_code: string }>(
    await db.execute(sql`
      SELECT e.id, e.seq, e.payload_text, e.study_code FROM ledger_entries e
       WHERE e.kind = 'audit.event' ${studyId ? sql`AND e.study_id = ${studyId}` : sql``}
         AND NOT EXISTS (SELECT 1 FROM audit_events a WHERE a.entry_id = e.id)
       ORDER BY e.seq NULLS LAST, e.id LIMIT ${limit}`),
  );
}

/**
 * The smallest event id the log holds an audit.event entry for: rows below it were written before events were
 * sealed (migration 0016). Read from the log (a regular expression on the canonical text, which never fails on a
 * damaged payload), not from audit_events, which an attacker could edit.
 */
export async function firstSealedEventId(db: DbOrTx): Promise<number | null> {
  const [r] = rowsOf<{ id: string | number | null }>(
    await db.execute(sql`
      SELECT min(substring(payload_text from '"event":([0-9]{1,18})[,}]')::bigint) AS id
        FROM ledger_entries WHERE kind = 'audit.event'`),
  );
  return r?.id === null || r?.id === undefined ? null : Number(r.id);
}

/** A page of the rows no entry names (entry_id null: written before migration 0016), id > after, up to `upTo`. */
export async function unsealedEvents(
  db: DbOrTx,
  after: number,
  limit: number,
  upTo?: number,
): Promise<AuditEventWithEntry[]> {
  return rowsOf<AuditEventWithEntry>(
    await db.execute(sql`
      SELECT a.id, to_char(a.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS at_iso, a.action, a.outcome,
             a.actor_user_id, a.actor_label, a.study_id, a.site_id, a.participant_id, a.ip,
             a.detail::text AS detail_text, a.entry_id
        FROM audit_events a
       WHERE a.entry_id IS NULL AND a.id > ${after} ${upTo === undefined ? sql`` : sql`AND a.id <= ${upTo}`}
       ORDER BY a.id LIMIT ${limit}`),
  );
}

/** The `audit.legacy_sealed` entries (one, once the deployment has been upgraded), in log order. */
export async function legacySealedEntries(db: DbOrTx) {
  return rowsOf<{ id: string; seq: string | number | null; payload_text: string }>(
    await db.execute(sql`
      SELECT id, seq, payload_text FROM ledger_entries
       WHERE study_id IS NULL AND kind = 'audit.legacy_sealed' ORDER BY seq NULLS LAST, at, id`),
  );
}

/** Whether any audit_events row has no entry (uses the entry_id unique index). */
export async function anyUnsealedEvent(db: DbOrTx): Promise<boolean> {
  return rowsOf(await db.execute(sql`SELECT 1 AS x FROM audit_events WHERE entry_id IS NULL LIMIT 1`)).length > 0;
}

/** A study's audit.event entries whose row now names another study or none (its study_id was altered). */
export async function studyEntriesWithMovedRow(db: DbOrTx, studyId: string, limit = 10_000) {
  return rowsOf<{
    id: string;
    seq: string | number | null;
    event: string | number;
    action: string;
    row_study: string | null;
  }>(
    await db.execute(sql`
      SELECT e.id, e.seq, a.id AS event, a.action, a.study_id AS row_study
        FROM ledger_entries e JOIN audit_events a ON a.entry_id = e.id
       WHERE e.study_id = ${studyId} AND e.kind = 'audit.event' AND a.study_id IS DISTINCT FROM ${studyId}
       ORDER BY a.id LIMIT ${limit}`),
  );
}
