/** Anchor rows: one per (ledger, checkpoint) the anchor worker has committed to anchoring. */
import { asc, eq, sql } from "drizzle-orm";
import type { DbOrTx } from "../client.ts";
import { anchors, checkpoints } from "../schema/index.ts";
import { rowsOf } from "./rows.ts";

export type AnchorRow = typeof anchors.$inferSelect;

/**
 * Commit to anchoring checkpoint `treeSize` on `ledger`, unless the ledger already has an unfinished
 * (pending) row, or has anchored that size or a larger one. Returns the new row, or null.
 * At most one pending row per ledger: during an outage rows do not pile up (one per interval); once the
 * ledger is back, the pending row completes and the next tick anchors the latest checkpoint.
 */
export async function commitToAnchor(
  db: DbOrTx,
  ledger: string,
  cp: { treeSize: number; checkpointHash: Uint8Array },
): Promise<AnchorRow | null> {
  const rows = await db.execute(sql`
    INSERT INTO anchors (ledger, tree_size, checkpoint_hash, status, next_attempt_at)
    SELECT ${ledger}, ${cp.treeSize}, ${cp.checkpointHash}, 'pending', now()
    WHERE NOT EXISTS (
      SELECT 1 FROM anchors WHERE ledger = ${ledger}
        AND (status = 'pending' OR (status IN ('included', 'final') AND tree_size >= ${cp.treeSize}))
    )
    ON CONFLICT (ledger, tree_size) DO NOTHING
    RETURNING id`);
  const id = rowsOf<{ id: string }>(rows)[0]?.id;
  if (!id) return null;
  const [row] = await db.select().from(anchors).where(eq(anchors.id, id));
  return row ?? null;
}

/**
 * Lease the ledger's next piece of work of one kind. `pending` rows are taken strictly in tree-size order (the
 * lowest one, and only when its back-off has expired), so an EVM ledger never sends a larger checkpoint before a
 * smaller one. `included` rows (awaiting finality, or re-orged away) are taken one by one above `afterSize`.
 */
export async function leaseNext(
  db: DbOrTx,
  ledger: string,
  leaseMs: number,
  kind: "pending" | "included",
  afterSize = -1,
): Promise<(AnchorRow & { noteText: string }) | null> {
  const res = await db.execute(sql`
    UPDATE anchors SET lease_until = now() + ${`${leaseMs} milliseconds`}::interval, updated_at = now()
    WHERE id = (
      SELECT id FROM anchors
      WHERE ledger = ${ledger} AND status = ${kind} AND tree_size > ${afterSize}
      ORDER BY tree_size ASC LIMIT 1
    )
    AND (lease_until IS NULL OR lease_until < now())
    AND (status = 'included' OR next_attempt_at IS NULL OR next_attempt_at <= now())
    RETURNING id`);
  const id = rowsOf<{ id: string }>(res)[0]?.id;
  if (!id) return null;
  const [row] = await db
    .select({ a: anchors, noteText: checkpoints.noteText })
    .from(anchors)
    .innerJoin(checkpoints, eq(checkpoints.treeSize, anchors.treeSize))
    .where(eq(anchors.id, id));
  return row ? { ...row.a, noteText: row.noteText } : null;
}

export async function saveWork(db: DbOrTx, id: string, work: unknown) {
  await db
    .update(anchors)
    .set({ workText: JSON.stringify(work), updatedAt: new Date() })
    .where(eq(anchors.id, id));
}

export async function markAnchored(
  db: DbOrTx,
  id: string,
  r: { status: "included" | "final"; receiptText: string; anchoredAt: Date | null },
) {
  await db
    .update(anchors)
    .set({
      status: r.status,
      receiptText: r.receiptText,
      anchoredAt: r.anchoredAt,
      finalAt: r.status === "final" ? new Date() : null,
      lastError: null,
      leaseUntil: null,
      nextAttemptAt: null,
      updatedAt: new Date(),
    })
    .where(eq(anchors.id, id));
}

/** A failed attempt: count it, remember the error, and back off until `next`. */
/**
 * An error text fit to store and show: a ledger's garbage answer can put NUL (refused by PostgreSQL text) and
 * other control characters into a message; they become U+FFFD, and the text is cut at 1000 characters.
 */
export function storableError(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: deliberate: they become U+FFFD before storing
  return text.replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/g, "\ufffd").slice(0, 1000);
}

export async function markAttemptFailed(db: DbOrTx, id: string, error: string, next: Date) {
  await db
    .update(anchors)
    .set({
      attempts: sql`${anchors.attempts} + 1`,
      lastError: storableError(error),
      nextAttemptAt: next,
      leaseUntil: null,
      updatedAt: new Date(),
    })
    .where(eq(anchors.id, id));
}

/** A receipt that no longer holds (e.g. its transaction was re-orged away): anchor again. */
export async function backToPending(db: DbOrTx, id: string, why: string) {
  await db
    .update(anchors)
    .set({
      status: "pending",
      receiptText: null,
      anchoredAt: null,
      lastError: storableError(why),
      nextAttemptAt: new Date(),
      leaseUntil: null,
      updatedAt: new Date(),
    })
    .where(eq(anchors.id, id));
}

/** Refused for good (e.g. the contract already holds a larger tree size). */
export async function markFailed(db: DbOrTx, id: string, why: string) {
  await db
    .update(anchors)
    .set({ status: "failed", lastError: storableError(why), leaseUntil: null, updatedAt: new Date() })
    .where(eq(anchors.id, id));
}

/** Give the lease back without changing anything (e.g. an included row re-checked and still not final). */
export async function releaseLease(db: DbOrTx, id: string) {
  await db.update(anchors).set({ leaseUntil: null }).where(eq(anchors.id, id));
}

export interface LedgerStatusRow {
  ledger: string;
  lastFinalSize: number | null;
  lastFinalAt: Date | null;
  pending: number;
  included: number;
  failed: number;
  lastError: string | null;
  nextAttemptAt: Date | null;
  attempts: number;
}

/** Per ledger: last final checkpoint, counts by status, and the error of the row at the head of its queue. */
export async function ledgerStatus(db: DbOrTx): Promise<LedgerStatusRow[]> {
  const rows = await db.execute(sql`
    SELECT ledger,
      max(tree_size) FILTER (WHERE status = 'final') AS last_final_size,
      max(anchored_at) FILTER (WHERE status = 'final') AS last_final_at,
      count(*) FILTER (WHERE status = 'pending')::int AS pending,
      count(*) FILTER (WHERE status = 'included')::int AS included,
      count(*) FILTER (WHERE status = 'failed')::int AS failed,
      (array_agg(last_error ORDER BY tree_size) FILTER (WHERE status IN ('pending', 'included')))[1] AS last_error,
      (array_agg(next_attempt_at ORDER BY tree_size) FILTER (WHERE status = 'pending'))[1] AS next_attempt_at,
      coalesce((array_agg(attempts ORDER BY tree_size) FILTER (WHERE status = 'pending'))[1], 0)::int AS attempts
    FROM anchors GROUP BY ledger ORDER BY ledger`);
  const date = (v: unknown) => (v === null || v === undefined ? null : v instanceof Date ? v : new Date(String(v)));
  return rowsOf(rows).map((r) => ({
    ledger: String(r.ledger),
    lastFinalSize: r.last_final_size === null ? null : Number(r.last_final_size),
    lastFinalAt: date(r.last_final_at),
    pending: Number(r.pending),
    included: Number(r.included),
    failed: Number(r.failed),
    lastError: (r.last_error as string | null) ?? null,
    nextAttemptAt: date(r.next_attempt_at),
    attempts: Number(r.attempts),
  }));
}

/** For each ledger, the first final anchor of a checkpoint that covers batch `batchNo` (tree size > batchNo). */
export async function firstFinalAnchorsCovering(
  db: DbOrTx,
  batchNo: number,
): Promise<{ ledger: string; treeSize: number; receiptText: string }[]> {
  const rows = await db.execute(sql`
    SELECT DISTINCT ON (ledger) ledger, tree_size, receipt_text FROM anchors
    WHERE status = 'final' AND tree_size > ${batchNo} AND receipt_text IS NOT NULL
    ORDER BY ledger, tree_size`);
  return rowsOf(rows).map((r) => ({
    ledger: String(r.ledger),
    treeSize: Number(r.tree_size),
    receiptText: String(r.receipt_text),
  }));
}

export async function anchorsOf(db: DbOrTx, ledger?: string) {
  return db
    .select()
    .from(anchors)
    .where(ledger ? eq(anchors.ledger, ledger) : undefined)
    .orderBy(asc(anchors.treeSize));
}

/** Per UTC day over the last `days` days: batches sealed and anchors that became final (all ledgers). */
export async function logActivityByDay(db: DbOrTx, days: number) {
  const since = new Date(Date.now() - days * 86_400_000).toISOString();
  const rows = await db.execute(sql`
    SELECT day, sum(batches)::int AS batches, sum(anchors)::int AS anchors FROM (
      SELECT to_char(sealed_at at time zone 'UTC', 'YYYY-MM-DD') AS day, 1 AS batches, 0 AS anchors
        FROM batches WHERE sealed_at >= ${since}::timestamptz
      UNION ALL
      SELECT to_char(final_at at time zone 'UTC', 'YYYY-MM-DD'), 0, 1
        FROM anchors WHERE status = 'final' AND final_at >= ${since}::timestamptz
    ) x GROUP BY day ORDER BY day`);
  return rowsOf<{ day: string; batches: number; anchors: number }>(rows).map((r) => ({
    day: String(r.day),
    batches: Number(r.batches),
    anchors: Number(r.anchors),
  }));
}
