/** Reads for the whole-study audit: everything paged by key, so memory stays bounded on large logs. */
import { and, asc, eq, gt, gte, isNotNull, lt, or, sql, isNull } from "drizzle-orm";
import type { DbOrTx } from "../client.ts";
import { anchors, batches, checkpoints, ledgerEntries } from "../schema/index.ts";
import type { StoredBatch, StoredCheckpoint, StoredEntry } from "../../anchoring/verifier/log-auditor.ts";
import { rowsOf } from "./rows.ts";

/** Batches numbered above `afterBatch` and below `beforeBatch` (the log size an audit checks), by number. */
export async function batchesFrom(
  db: DbOrTx,
  afterBatch: number,
  limit: number,
  beforeBatch = Number.MAX_SAFE_INTEGER,
): Promise<StoredBatch[]> {
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
    .where(and(gt(batches.batchNo, afterBatch), lt(batches.batchNo, beforeBatch)))
    .orderBy(asc(batches.batchNo))
    .limit(limit);
}

/** The number of batches the log holds now (the highest batch number + 1; 0 when nothing is sealed). */
export async function batchLogSizeNow(db: DbOrTx): Promise<number> {
  const [r] = await db.select({ n: sql<number>`coalesce(max(${batches.batchNo}) + 1, 0)::int` }).from(batches);
  return Number(r.n);
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

/** A bytea column as bytes: postgres.js gives a Buffer, PGlite a Uint8Array (a `\\x` hex text from other paths). */
function bytesOf(v: unknown): Uint8Array | null {
  if (v === null || v === undefined) return null;
  if (v instanceof Uint8Array) return v;
  const s = String(v);
  return s.startsWith("\\x") ? Uint8Array.from(Buffer.from(s.slice(2), "hex")) : Uint8Array.from(Buffer.from(s, "hex"));
}
const intOf = (v: unknown) => (v === null || v === undefined ? null : Number(v));

/**
 * Entries with seq in [from, to), in seq order, as pages of at most `page` entries: keyset pages on the seq index,
 * read as raw rows (no ORM row mapping; bytea stays the driver's Buffer), so a page is the only thing held. Used by
 * the whole-log audit, which streams the log instead of querying each batch.
 */
export async function* streamLogEntries(
  db: DbOrTx,
  from: number,
  to = Number.MAX_SAFE_INTEGER,
  page = 5000,
): AsyncGenerator<StoredEntry[]> {
  const fetch = (next: number) =>
    db.execute(
      sql`SELECT id, seq, study_seq, study_code, kind, (extract(epoch FROM at) * 1000)::float8 AS at_ms,
                 payload_text, payload_hash, envelope_text, leaf_hash, batch_no
            FROM ledger_entries WHERE seq >= ${next} AND seq < ${to} ORDER BY seq LIMIT ${page}`,
    );
  // The next page is asked for before this one is handed over: the database reads while the caller checks.
  let ahead: Promise<unknown> | null = fetch(from);
  try {
    while (ahead) {
      const rows = rowsOf<Record<string, unknown>>(await ahead);
      ahead = null;
      if (rows.length === 0) return;
      const out: StoredEntry[] = new Array(rows.length);
      for (let i = 0; i < rows.length; i++) {
        const r = rows[i];
        out[i] = {
          id: String(r.id),
          seq: Number(r.seq),
          studySeq: intOf(r.study_seq),
          studyCode: String(r.study_code),
          kind: String(r.kind),
          at: new Date(Number(r.at_ms)),
          payloadText: String(r.payload_text),
          payloadHash: bytesOf(r.payload_hash) ?? new Uint8Array(0),
          envelopeText: r.envelope_text === null ? null : String(r.envelope_text),
          leafHash: bytesOf(r.leaf_hash),
          batchNo: intOf(r.batch_no),
        };
      }
      const next = out[out.length - 1].seq + 1;
      if (rows.length === page && next < to) ahead = fetch(next);
      yield out;
    }
  } finally {
    // Abandoned early (a batch out of order restarts the scan): the page asked for ahead is not wanted.
    (ahead as Promise<unknown> | null)?.catch(() => {});
  }
}

/**
 * Entries marked sealed that lie beyond the log's end or carry no seq: not covered by any batch. An audit of the log
 * up to `logSize` batches passes it: entries in the range of a batch numbered `logSize` or more (sealed while it ran)
 * are left to the next audit, which checks them with their batch.
 */
export async function strayEntries(
  db: DbOrTx,
  logEnd: number,
  logSize = Number.MAX_SAFE_INTEGER,
): Promise<StoredEntry[]> {
  const sealedLater = sql`EXISTS (SELECT 1 FROM ${batches} b WHERE b.batch_no >= ${logSize}
    AND ${ledgerEntries.seq} >= b.first_seq AND ${ledgerEntries.seq} < b.first_seq + b.size)`;
  const rows = await db
    .select(entryColumns)
    .from(ledgerEntries)
    .where(
      or(
        and(gte(ledgerEntries.seq, logEnd), sql`NOT ${sealedLater}`),
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

export async function countBatches(db: DbOrTx, beforeBatch = Number.MAX_SAFE_INTEGER): Promise<number> {
  const [r] = await db.select({ n: sql<number>`count(*)::int` }).from(batches).where(lt(batches.batchNo, beforeBatch));
  return Number(r.n);
}

/**
 * One study's entries of some kinds, in log order (sealed by seq, then pending by write time), paged after the last
 * entry of the previous page. The sealed part is a keyset page on the seq index (`seq > after.seq ORDER BY seq`), so a
 * page costs its own rows, not a scan and sort of the whole table as an order on coalesce(seq, ...) did (1M site.added
 * entries read 1,000 at a time were 1,000 full scans); the pending part follows by (at, id).
 */
export async function studyEntriesOfKinds(
  db: DbOrTx,
  studyId: string,
  kinds: string[],
  after: { seq: number | null; at: Date; id: string } | null,
  limit: number,
) {
  const columns = {
    id: ledgerEntries.id,
    seq: ledgerEntries.seq,
    at: ledgerEntries.at,
    kind: ledgerEntries.kind,
    payloadText: ledgerEntries.payloadText,
    payloadHash: ledgerEntries.payloadHash,
  };
  const ofStudy = and(
    eq(ledgerEntries.studyId, studyId),
    sql`${ledgerEntries.kind} in (${sql.join(
      kinds.map((k) => sql`${k}`),
      sql`, `,
    )})`,
  );
  const sealed =
    after === null || after.seq !== null
      ? await db
          .select(columns)
          .from(ledgerEntries)
          .where(and(ofStudy, isNotNull(ledgerEntries.seq), after ? gt(ledgerEntries.seq, after.seq!) : undefined))
          .orderBy(asc(ledgerEntries.seq))
          .limit(limit)
      : [];
  if (sealed.length === limit) return sealed;
  const cursor =
    after && after.seq === null
      ? sql`(${ledgerEntries.at}, ${ledgerEntries.id}) > (${after.at.toISOString()}::timestamptz, ${after.id}::uuid)`
      : undefined;
  const pending = await db
    .select(columns)
    .from(ledgerEntries)
    .where(and(ofStudy, isNull(ledgerEntries.seq), cursor))
    .orderBy(asc(ledgerEntries.at), asc(ledgerEntries.id))
    .limit(limit - sealed.length);
  return [...sealed, ...pending];
}

/**
 * Rows of a data table joined with the ledger entry each one names (null columns when the entry is missing).
 * `e_study` is the entry's study: a row moved to another study names an entry of the first one.
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
    sql`SELECT t.*, e.id AS e_id, e.kind AS e_kind, e.payload_text AS e_payload, e.seq AS e_seq,
               e.study_id AS e_study
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
