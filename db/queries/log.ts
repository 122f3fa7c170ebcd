import { and, asc, desc, eq, gte, lt, sql } from "drizzle-orm";
import type { DbOrTx } from "../client.ts";
import { batches, checkpoints, ledgerEntries, participants } from "../schema/index.ts";

export interface NewEntry {
  /** Null for the deployment scope (audit-trail events of no study, ADR 0016). */
  studyId: string | null;
  studyCode: string;
  kind: string;
  payloadText: string;
  payloadHash: Uint8Array;
  at?: Date;
}

export type EntryRow = typeof ledgerEntries.$inferSelect;

/** Insert a pending ledger entry (call inside the transaction that writes the data it records). */
export async function insertPendingEntry(db: DbOrTx, e: NewEntry) {
  const [row] = await db
    .insert(ledgerEntries)
    .values({ ...e, at: e.at ?? new Date() })
    .returning({ id: ledgerEntries.id, at: ledgerEntries.at });
  return row;
}

export async function findEntryById(db: DbOrTx, id: string): Promise<EntryRow | null> {
  const [e] = await db.select().from(ledgerEntries).where(eq(ledgerEntries.id, id));
  return e ?? null;
}

/** The site of a study's participant by subject code (null when there is no such participant). */
export async function siteOfSubject(db: DbOrTx, studyId: string, subject: string): Promise<string | null> {
  const [p] = await db
    .select({ siteId: participants.siteId })
    .from(participants)
    .where(and(eq(participants.studyId, studyId), eq(participants.subjectCode, subject)));
  return p?.siteId ?? null;
}

export async function findEntryBySeq(db: DbOrTx, seq: number): Promise<EntryRow | null> {
  const [e] = await db.select().from(ledgerEntries).where(eq(ledgerEntries.seq, seq));
  return e ?? null;
}

/** True when at least `n` entries are pending (reads at most n index entries). */
export async function pendingAtLeast(db: DbOrTx, n: number): Promise<boolean> {
  const rows = await db
    .select({ id: ledgerEntries.id })
    .from(ledgerEntries)
    .where(eq(ledgerEntries.status, "pending"))
    .offset(n - 1)
    .limit(1);
  return rows.length > 0;
}

/** Entry counts of a study by status (pending / sealed). */
export async function entryCountsByStatus(db: DbOrTx, studyId: string) {
  const rows = await db
    .select({ status: ledgerEntries.status, n: sql<number>`count(*)::int` })
    .from(ledgerEntries)
    .where(eq(ledgerEntries.studyId, studyId))
    .groupBy(ledgerEntries.status);
  return {
    pending: rows.find((r) => r.status === "pending")?.n ?? 0,
    sealed: rows.find((r) => r.status === "sealed")?.n ?? 0,
  };
}

/** Leaf hashes of the entries with seq in [first, first + size), in seq order. */
export async function entryLeafHashes(db: DbOrTx, first: number, size: number): Promise<Uint8Array[]> {
  const rows = await db
    .select({ leaf: ledgerEntries.leafHash })
    .from(ledgerEntries)
    .where(and(gte(ledgerEntries.seq, first), lt(ledgerEntries.seq, first + size)))
    .orderBy(asc(ledgerEntries.seq));
  return rows.map((r) => r.leaf!);
}

export async function findBatch(db: DbOrTx, batchNo: number) {
  const [b] = await db.select().from(batches).where(eq(batches.batchNo, batchNo));
  return b ?? null;
}

/** A batch (without its tree) and the checkpoint sealed with it (tree size = batch + 1), in one round trip. */
export async function findBatchWithCheckpoint(db: DbOrTx, batchNo: number) {
  const [r] = await db
    .select({
      batchNo: batches.batchNo,
      firstSeq: batches.firstSeq,
      size: batches.size,
      root: batches.root,
      headerText: batches.headerText,
      leafHash: batches.leafHash,
      sealedAt: batches.sealedAt,
      cpTreeSize: checkpoints.treeSize,
      cpRoot: checkpoints.root,
      cpNote: checkpoints.noteText,
      cpKeyId: checkpoints.keyId,
    })
    .from(batches)
    .leftJoin(checkpoints, eq(checkpoints.treeSize, sql`${batches.batchNo} + 1`))
    .where(eq(batches.batchNo, batchNo));
  if (!r) return null;
  const { cpTreeSize, cpRoot, cpNote, cpKeyId, ...batch } = r;
  return {
    batch,
    checkpoint:
      cpTreeSize === null ? null : { treeSize: cpTreeSize, root: cpRoot!, noteText: cpNote!, keyId: cpKeyId! },
  };
}
export type BatchRow = NonNullable<Awaited<ReturnType<typeof findBatchWithCheckpoint>>>["batch"];

/**
 * 32-byte nodes at the given byte offsets of a batch's stored tree, read with substring() so that only the
 * needed TOAST chunks are fetched (the column's storage is EXTERNAL: uncompressed, sliceable).
 */
export async function batchTreeNodes(db: DbOrTx, batchNo: number, offsets: number[]): Promise<Uint8Array[]> {
  if (offsets.length === 0) return [];
  const parts = offsets.map((o) => sql`substring(${batches.tree} from ${o + 1}::int for 32)`);
  const [row] = await db
    .select({ nodes: sql<Uint8Array | null>`${sql.join(parts, sql` || `)}`, size: batches.size })
    .from(batches)
    .where(eq(batches.batchNo, batchNo));
  const bytes = row?.nodes;
  if (!bytes || bytes.length !== offsets.length * 32) throw new Error(`batch ${batchNo} has no stored tree`);
  return offsets.map((_, k) => new Uint8Array(bytes.subarray(k * 32, k * 32 + 32)));
}

/** Leaf hashes of batches 0..size-1 of the batch log (all batches when size is omitted), in order. */
export async function batchLeafHashes(db: DbOrTx, size?: number): Promise<Uint8Array[]> {
  const rows = await db
    .select({ leaf: batches.leafHash })
    .from(batches)
    .where(size === undefined ? undefined : lt(batches.batchNo, size))
    .orderBy(asc(batches.batchNo));
  return rows.map((r) => r.leaf);
}

/** Leaf hashes of batches from..to-1, in order. */
export async function batchLeafHashesFrom(db: DbOrTx, from: number, to: number): Promise<Uint8Array[]> {
  const rows = await db
    .select({ leaf: batches.leafHash })
    .from(batches)
    .where(and(gte(batches.batchNo, from), lt(batches.batchNo, to)))
    .orderBy(asc(batches.batchNo));
  return rows.map((r) => r.leaf);
}

export async function findCheckpoint(db: DbOrTx, treeSize: number) {
  const [c] = await db.select().from(checkpoints).where(eq(checkpoints.treeSize, treeSize));
  return c ?? null;
}

export async function latestCheckpoint(db: DbOrTx) {
  const [c] = await db.select().from(checkpoints).orderBy(desc(checkpoints.treeSize)).limit(1);
  return c ?? null;
}

/** Per UTC day over the last `days` days: a study's entries written, and how many of them are sealed. */
export async function studyActivityByDay(db: DbOrTx, studyId: string, days: number) {
  const since = new Date(Date.now() - days * 86_400_000);
  return db
    .select({
      day: sql<string>`to_char(${ledgerEntries.at} at time zone 'UTC', 'YYYY-MM-DD')`,
      written: sql<number>`count(*)::int`,
      sealed: sql<number>`count(*) filter (where ${ledgerEntries.status} = 'sealed')::int`,
    })
    .from(ledgerEntries)
    .where(and(eq(ledgerEntries.studyId, studyId), gte(ledgerEntries.at, since)))
    .groupBy(sql`1`)
    .orderBy(sql`1`);
}

/** Sealed entries of one batch, by seq. */
export async function entriesOfBatch(db: DbOrTx, batchNo: number): Promise<EntryRow[]> {
  return db.select().from(ledgerEntries).where(eq(ledgerEntries.batchNo, batchNo)).orderBy(asc(ledgerEntries.seq));
}
