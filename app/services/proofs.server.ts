/** Proof bundles, checkpoints and consistency proofs, built from what the database stores. */
import { asc, desc, eq, and, gte, lt } from "drizzle-orm";
import { toHex } from "../../anchoring/bytes.ts";
import type { Bundle } from "../../anchoring/bundle.ts";
import { consistencyProof, inclusionProof } from "../../anchoring/merkle.ts";
import { batches, checkpoints, ledgerEntries } from "../../db/schema/index.ts";
import type { AppContext } from "./context.server.ts";
import { ServiceError } from "./errors.server.ts";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Find an entry by id or (once sealed) by seq. */
export async function findEntryByRef(ctx: AppContext, ref: string) {
  if (UUID.test(ref)) {
    const [e] = await ctx.db.select().from(ledgerEntries).where(eq(ledgerEntries.id, ref));
    return e ?? null;
  }
  if (/^(0|[1-9][0-9]{0,15})$/.test(ref) && Number.isSafeInteger(Number(ref))) {
    const [e] = await ctx.db.select().from(ledgerEntries).where(eq(ledgerEntries.seq, Number(ref)));
    return e ?? null;
  }
  return null;
}

async function batchLeafHashes(ctx: AppContext, size: number) {
  const rows = await ctx.db.select({ leaf: batches.leafHash }).from(batches).where(lt(batches.batchNo, size)).orderBy(asc(batches.batchNo));
  return rows.map((r) => r.leaf);
}

export type ProofResult = { status: "pending"; entryId: string } | { status: "sealed"; bundle: Bundle };

/** The proof bundle of a sealed entry: payload, envelope, batch inclusion, and the checkpoint sealed with it. */
export async function proofBundle(ctx: AppContext, entry: typeof ledgerEntries.$inferSelect): Promise<ProofResult> {
  if (entry.status !== "sealed" || entry.batchNo === null || entry.seq === null) return { status: "pending", entryId: entry.id };
  const [batch] = await ctx.db.select().from(batches).where(eq(batches.batchNo, entry.batchNo));
  if (!batch) throw new Error(`batch ${entry.batchNo} of sealed entry ${entry.id} is missing`);
  const leaves = (
    await ctx.db
      .select({ leaf: ledgerEntries.leafHash })
      .from(ledgerEntries)
      .where(and(gte(ledgerEntries.seq, batch.firstSeq), lt(ledgerEntries.seq, batch.firstSeq + batch.size)))
      .orderBy(asc(ledgerEntries.seq))
  ).map((r) => r.leaf!);
  const leafIndex = entry.seq - batch.firstSeq;
  const [cp] = await ctx.db.select().from(checkpoints).where(eq(checkpoints.treeSize, batch.batchNo + 1));
  if (!cp) throw new Error(`checkpoint ${batch.batchNo + 1} is missing`);
  const logLeaves = await batchLeafHashes(ctx, cp.treeSize);
  return {
    status: "sealed",
    bundle: {
      format: "trialseal-proof/v1",
      payload: JSON.parse(entry.payloadText),
      envelope: JSON.parse(entry.envelopeText!),
      batch: { header: JSON.parse(batch.headerText), leafIndex, inclusion: inclusionProof(ctx.crypto, leaves, leafIndex).map(toHex) },
      checkpoints: [{ note: cp.noteText, log: { index: batch.batchNo, treeSize: cp.treeSize, inclusion: inclusionProof(ctx.crypto, logLeaves, batch.batchNo).map(toHex) }, anchors: [] }],
    },
  };
}

export async function latestCheckpoint(ctx: AppContext) {
  const [cp] = await ctx.db.select().from(checkpoints).orderBy(desc(checkpoints.treeSize)).limit(1);
  return cp ?? null;
}

/** RFC 9162 consistency proof between batch-log sizes `from` and `to` (both stored checkpoints' sizes). */
export async function consistencyBetween(ctx: AppContext, from: number, to: number) {
  const latest = await latestCheckpoint(ctx);
  const size = latest?.treeSize ?? 0;
  if (!Number.isSafeInteger(from) || from < 1) throw new ServiceError("invalid", "from must be a whole number of at least 1", "from");
  if (!Number.isSafeInteger(to) || to < from) throw new ServiceError("invalid", "to must be a whole number not below from", "to");
  if (to > size) throw new ServiceError("invalid", `to (${to}) is beyond the log's size (${size})`, "to");
  const leaves = await batchLeafHashes(ctx, to);
  return { from, to, proof: consistencyProof(ctx.crypto, leaves, from, to).map(toHex) };
}
