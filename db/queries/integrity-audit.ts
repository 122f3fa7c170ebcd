/** Reads for the whole-study audit: everything paged by key, so memory stays bounded on large logs. */
import { and, asc, eq, gt, gte, isNotNull, lt, or, sql, isNull } from "drizzle-orm";
import type { DbOrTx } from "../client.ts";
import { anchors, batches, checkpoints, ledgerEntries } from "../schema/index.ts";
import type { StoredBatch, StoredCheckpoint, StoredEntry } from "../../anchoring/verifier/log-auditor.ts";
import { rowsOf } from "./rows.ts";

export async function batchesFrom(db: DbOrTx, afterBatch: number, limit: number): Promise<StoredBatch[]> {
  return db
    .select({
      batchNo: batches.batchNo,
      firstSeq: batches.firstSeq,
      size: batches.size,
      root: batches.root,
      headerText: batches.headerText,
      leafHash: batches.leafHash,
    })
    .from(batches)
    .where(gt(batches.batchNo, afterBatch))
    .orderBy(asc(batches.batchNo))
    .limit(limit);
}

const entryColumns = {
  id: ledgerEntries.id,
  seq: ledgerEntries.seq,
  studySeq: ledgerEntries.studySeq,
  studyCode: ledgerEntries.studyCode,
  kind: ledgerEntries.kind,
  at: ledgerEntries.at,
  payloadText: ledgerEntries.payloadText,
  payloadHash: ledgerEntries.payloadHash,
  envelopeText: ledgerEntries.envelopeText,
  leafHash: ledgerEntries.leafHash,
  batchNo: ledgerEntries.batchNo,
};

/** Entries with seq in [from, to), by seq. */
export async function entriesInSeqRange(db: DbOrTx, from: number, to: number): Promise<StoredEntry[]> {
  const rows = await db
    .select(entryColumns)
    .from(ledgerEntries)
    .where(and(gte(ledgerEntries.seq, from), lt(ledgerEntries.seq, to)))
    .orderBy(asc(ledgerEntries.seq));
  return rows.map((r) => ({ ...r, seq: r.seq! }));
}

/** Entries marked sealed that lie beyond the log's end or carry no seq: not covered by any batch. */
export async function strayEntries(db: DbOrTx, logEnd: number): Promise<StoredEntry[]> {
  const rows = await db
    .select(entryColumns)
    .from(ledgerEntries)
    .where(
      or(
        gte(ledgerEntries.seq, logEnd),
        and(eq(ledgerEntries.status, "sealed"), isNull(ledgerEntries.seq)),
        and(isNotNull(ledgerEntries.seq), eq(ledgerEntries.status, "pending")),
      ),
    )
    .orderBy(asc(ledgerEntries.seq))
    .limit(1000);
  return rows.map((r) => ({ ...r, seq: r.seq ?? -1 }));
}

export async function checkpointsAll(db: DbOrTx): Promise<StoredCheckpoint[]> {
  return db
    .select({
      treeSize: checkpoints.treeSize,
      root: checkpoints.root,
      noteText: checkpoints.noteText,
      checkpointHash: checkpoints.checkpointHash,
    })
    .from(checkpoints)
    .orderBy(asc(checkpoints.treeSize));
}

export async function anchoredReceipts(db: DbOrTx) {
  return db
    .select({
      id: anchors.id,
      ledger: anchors.ledger,
      treeSize: anchors.treeSize,
      checkpointHash: anchors.checkpointHash,
      status: anchors.status,
      receiptText: anchors.receiptText,
    })
    .from(anchors)
    .where(and(isNotNull(anchors.receiptText), or(eq(anchors.status, "final"), eq(anchors.status, "included"))))
    .orderBy(asc(anchors.ledger), asc(anchors.treeSize));
}

export async function countBatches(db: DbOrTx): Promise<number> {
  const [r] = await db.select({ n: sql<number>`count(*)::int` }).from(batches);
  return Number(r.n);
}

/** One study's entries of some kinds, in log order (sealed by seq, then pending by write time), paged. */
export async function studyEntriesOfKinds(
  db: DbOrTx,
  studyId: string,
  kinds: string[],
  after: { seq: number | null; at: Date; id: string } | null,
  limit: number,
) {
  const order = sql`coalesce(${ledgerEntries.seq}, 9223372036854775807)`;
  const cursor = after
    ? sql`(${order}, ${ledgerEntries.at}, ${ledgerEntries.id})
        > (${after.seq ?? sql`9223372036854775807`}, ${after.at.toISOString()}::timestamptz, ${after.id}::uuid)`
    : undefined;
  return db
    .select({
      id: ledgerEntries.id,
      seq: ledgerEntries.seq,
      at: ledgerEntries.at,
      kind: ledgerEntries.kind,
      payloadText: ledgerEntries.payloadText,
      payloadHash: ledgerEntries.payloadHash,
    })
    .from(ledgerEntries)
    .where(
      and(
        eq(ledgerEntries.studyId, studyId),
        sql`${ledgerEntries.kind} in (${sql.join(
          kinds.map((k) => sql`${k}`),
          sql`, `,
        )})`,
        cursor,
      ),
    )
    .orderBy(order, asc(ledgerEntries.at), asc(ledgerEntries.id))
    .limit(limit);
}

/**
 * Rows of a data table joined with the ledger entry each one names (null columns when the entry is missing).
 * `table`/`entryColumn` are fixed identifiers chosen by the caller (never user input).
 */
export async function rowsWithEntries(
  db: DbOrTx,
  table: string,
  entryColumn: string,
  studyId: string,
  studyColumn = "study_id",
) {
  const rows = await db.execute(
    sql`SELECT t.*, e.id AS e_id, e.kind AS e_kind, e.payload_text AS e_payload, e.seq AS e_seq
        FROM ${sql.identifier(table)} t LEFT JOIN ledger_entries e ON e.id = t.${sql.identifier(entryColumn)}
        WHERE t.${sql.identifier(studyColumn)} = ${studyId}`,
  );
  return rowsOf<Record<string, unknown>>(rows);
}

/** Entries of a kind in a study that no row of `table` points to (the row was deleted). */
export async function entriesWithoutRow(db: DbOrTx, studyId: string, kind: string, table: string, entryColumn: string) {
  const rows = await db.execute(
    sql`SELECT e.id, e.seq FROM ledger_entries e WHERE e.study_id = ${studyId} AND e.kind = ${kind}
        AND NOT EXISTS (SELECT 1 FROM ${sql.identifier(table)} t WHERE t.${sql.identifier(entryColumn)} = e.id)
        ORDER BY e.seq NULLS LAST`,
  );
  return rowsOf<{ id: string; seq: number | null }>(rows).map((r) => ({
    id: String(r.id),
    seq: r.seq === null ? null : Number(r.seq),
  }));
}

/** SDV marks of a study with their entries (sdv_marks has no study column: through the record). */
export async function sdvMarksWithEntries(db: DbOrTx, studyId: string) {
  const rows = await db.execute(
    sql`SELECT m.*, e.id AS e_id, e.kind AS e_kind, e.payload_text AS e_payload, e.seq AS e_seq
        FROM sdv_marks m JOIN records r ON r.id = m.record_id LEFT JOIN ledger_entries e ON e.id = m.entry_id
        WHERE r.study_id = ${studyId}`,
  );
  return rowsOf<Record<string, unknown>>(rows);
}

export async function studyTableRows(
  db: DbOrTx,
  table: "records" | "locks" | "queries" | "participants",
  studyId: string,
) {
  return rowsOf<Record<string, unknown>>(
    await db.execute(sql`SELECT * FROM ${sql.identifier(table)} WHERE study_id = ${studyId}`),
  );
}

/** Each study's next studySeq after the entries with seq < end (the prefix a --from-checkpoint audit trusts). */
export async function nextStudySeqsBefore(db: DbOrTx, end: number): Promise<Map<string, number>> {
  const rows = rowsOf<{ study_code: string; next: number }>(
    await db.execute(
      sql`SELECT study_code, max(study_seq) + 1 AS next FROM ledger_entries WHERE seq < ${end} GROUP BY study_code`,
    ),
  );
  return new Map(rows.map((r) => [String(r.study_code), Number(r.next)]));
}
