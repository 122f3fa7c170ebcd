/**
 * The sealer: closes a batch of pending entries, assigning seq and studySeq, envelopes and leaf hashes,
 * the batch root and header, and signs the new checkpoint of the batch log. Storage is a port (SealStore),
 * implemented in db/log-store.ts; `store.transaction` must run everything in one database transaction
 * holding the one-sealer lock, so a crash leaves either no batch or a complete one.
 */
import { toHex } from "./bytes.ts";
import type { Crypto, Signer } from "./crypto.ts";
import { rootOf } from "./merkle.ts";
import { MerkleLevels } from "./tree.ts";
import { checkpointText, keyId, signNote } from "./checkpoint.ts";
import { envelopeLeaf, headerLeaf, type BatchHeader, type Envelope } from "./envelope.ts";

export interface PendingEntry {
  id: string;
  /** Null for the deployment scope (entries of no study, ADR 0016): its studySeq runs like a study's. */
  studyId: string | null;
  studyCode: string;
  kind: string;
  payloadHash: Uint8Array;
  at: Date;
}

export interface SealedEntryUpdate {
  id: string;
  seq: number;
  studySeq: number;
  envelopeText: string;
  leafHash: Uint8Array;
  batchNo: number;
}

export interface SealStoreTx {
  lastBatch(): Promise<{ batchNo: number; firstSeq: number; size: number } | null>;
  pendingEntries(limit: number): Promise<PendingEntry[]>;
  /** The next studySeq for each study (0 when the study has no sealed entry). */
  nextStudySeqs(studyIds: (string | null)[]): Promise<Map<string | null, number>>;
  sealEntries(updates: SealedEntryUpdate[]): Promise<void>;
  insertBatch(b: {
    batchNo: number;
    firstSeq: number;
    size: number;
    root: Uint8Array;
    headerText: string;
    leafHash: Uint8Array;
    sealedAt: Date;
    tree: Uint8Array;
  }): Promise<void>;
  /** Leaf hashes of batches 0..n-1 of the batch log, in order. */
  batchLeafHashes(): Promise<Uint8Array[]>;
  insertCheckpoint(c: {
    treeSize: number;
    root: Uint8Array;
    noteText: string;
    checkpointHash: Uint8Array;
    keyId: string;
    createdAt: Date;
  }): Promise<void>;
}

export interface SealStore {
  transaction<T>(fn: (tx: SealStoreTx) => Promise<T>): Promise<T>;
}

export interface SealerConfig {
  origin: string;
  maxBatch: number;
  crypto: Crypto;
  signer: Signer;
  now?: () => Date;
}

export interface SealResult {
  batchNo: number;
  firstSeq: number;
  size: number;
  treeSize: number;
  checkpoint: string;
}

/** Seal one batch if anything is pending. Returns null when there was nothing to seal. */
export async function sealOnce(store: SealStore, cfg: SealerConfig): Promise<SealResult | null> {
  const c = cfg.crypto;
  return store.transaction(async (tx) => {
    const pending = await tx.pendingEntries(cfg.maxBatch);
    if (pending.length === 0) return null;
    const last = await tx.lastBatch();
    const batchNo = last ? last.batchNo + 1 : 0;
    const firstSeq = last ? last.firstSeq + last.size : 0;
    const studySeqs = await tx.nextStudySeqs([...new Set(pending.map((p) => p.studyId))]);
    const updates: SealedEntryUpdate[] = [];
    const leaves: Uint8Array[] = [];
    pending.forEach((p, i) => {
      const studySeq = studySeqs.get(p.studyId) ?? 0;
      studySeqs.set(p.studyId, studySeq + 1);
      const envelope: Envelope = {
        v: 1,
        log: cfg.origin,
        seq: firstSeq + i,
        studySeq,
        at: p.at.toISOString(),
        study: p.studyCode,
        kind: p.kind,
        payloadHash: toHex(p.payloadHash),
      };
      const { text, leaf } = envelopeLeaf(c, envelope);
      leaves.push(leaf);
      updates.push({ id: p.id, seq: firstSeq + i, studySeq, envelopeText: text, leafHash: leaf, batchNo });
    });
    // Built level by level once all leaves are known (no allocation per node, ADR 0046).
    const tree = MerkleLevels.fromLeaves(c, leaves);
    const root = tree.root();
    const sealedAt = (cfg.now ?? (() => new Date()))();
    const header: BatchHeader = {
      v: 1,
      log: cfg.origin,
      batch: batchNo,
      first: firstSeq,
      size: pending.length,
      root: toHex(root),
      sealedAt: sealedAt.toISOString(),
    };
    const { text: headerText, leaf: headerLeafHash } = headerLeaf(c, header);
    await tx.sealEntries(updates);
    await tx.insertBatch({
      batchNo,
      firstSeq,
      size: pending.length,
      root,
      headerText,
      leafHash: headerLeafHash,
      sealedAt,
      tree: tree.serialize(),
    });
    const logLeaves = await tx.batchLeafHashes();
    if (logLeaves.length !== batchNo + 1)
      throw new Error(`batch log has ${logLeaves.length} leaves, expected ${batchNo + 1}`);
    const logRoot = rootOf(c, logLeaves);
    const body = checkpointText({ origin: cfg.origin, treeSize: batchNo + 1, root: logRoot });
    const note = signNote(c, body, cfg.origin, cfg.signer);
    await tx.insertCheckpoint({
      treeSize: batchNo + 1,
      root: logRoot,
      noteText: note,
      checkpointHash: c.sha256(new TextEncoder().encode(body)),
      keyId: toHex(keyId(c, cfg.origin, cfg.signer.publicKey)),
      createdAt: sealedAt,
    });
    return { batchNo, firstSeq, size: pending.length, treeSize: batchNo + 1, checkpoint: note };
  });
}
