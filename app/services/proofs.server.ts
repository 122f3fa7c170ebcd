/** Proof bundles, checkpoints and consistency proofs, built from what the database stores. */
import { toHex } from "../../anchoring/bytes.ts";
import type { Bundle } from "../../anchoring/bundle.ts";
import { consistencyProof, inclusionProof } from "../../anchoring/merkle.ts";
import * as q from "../../db/queries/ledger.ts";
import type { AppContext } from "./context.server.ts";
import { ServiceError } from "./errors.server.ts";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Find an entry by id or (once sealed) by seq; anything else is simply not found. */
export async function findEntryByRef(ctx: AppContext, ref: string) {
  if (UUID.test(ref)) return q.findEntryById(ctx.db, ref);
  if (/^(0|[1-9][0-9]{0,15})$/.test(ref) && Number.isSafeInteger(Number(ref))) return q.findEntryBySeq(ctx.db, Number(ref));
  return null;
}

export type ProofResult = { status: "pending"; entryId: string } | { status: "sealed"; bundle: Bundle };

/** The proof bundle of a sealed entry: payload, envelope, batch inclusion, and the checkpoint sealed with it. */
export async function proofBundle(ctx: AppContext, entry: q.EntryRow): Promise<ProofResult> {
  if (entry.status !== "sealed" || entry.batchNo === null || entry.seq === null) return { status: "pending", entryId: entry.id };
  const batch = await q.findBatch(ctx.db, entry.batchNo);
  if (!batch) throw new Error(`batch ${entry.batchNo} of sealed entry ${entry.id} is missing`);
  const cp = await q.findCheckpoint(ctx.db, batch.batchNo + 1);
  if (!cp) throw new Error(`checkpoint ${batch.batchNo + 1} is missing`);
  const leaves = await q.entryLeafHashes(ctx.db, batch.firstSeq, batch.size);
  const logLeaves = await q.batchLeafHashes(ctx.db, cp.treeSize);
  const leafIndex = entry.seq - batch.firstSeq;
  return {
    status: "sealed",
    bundle: {
      format: "trialseal-proof/v1",
      payload: JSON.parse(entry.payloadText),
      envelope: JSON.parse(entry.envelopeText!),
      batch: { header: JSON.parse(batch.headerText), leafIndex, inclusion: inclusionProof(ctx.crypto, leaves, leafIndex).map(toHex) },
      checkpoints: [
        {
          note: cp.noteText,
          log: { index: batch.batchNo, treeSize: cp.treeSize, inclusion: inclusionProof(ctx.crypto, logLeaves, batch.batchNo).map(toHex) },
          anchors: [],
        },
      ],
    },
  };
}

export function latestCheckpoint(ctx: AppContext) {
  return q.latestCheckpoint(ctx.db);
}

/** RFC 9162 consistency proof between batch-log sizes `from` and `to` (both at most the latest size). */
export async function consistencyBetween(ctx: AppContext, from: number, to: number) {
  const size = (await q.latestCheckpoint(ctx.db))?.treeSize ?? 0;
  if (!Number.isSafeInteger(from) || from < 1) throw new ServiceError("invalid", "from must be a whole number of at least 1", "from");
  if (!Number.isSafeInteger(to) || to < from) throw new ServiceError("invalid", "to must be a whole number not below from", "to");
  if (to > size) throw new ServiceError("invalid", `to (${to}) is beyond the log's size (${size})`, "to");
  const leaves = await q.batchLeafHashes(ctx.db, to);
  return { from, to, proof: consistencyProof(ctx.crypto, leaves, from, to).map(toHex) };
}
