/**
 * The whole-log audit's integrity checks (pure, streaming, bounded memory). The caller feeds every batch in
 * order, each with the sealed entries in its seq range, then every checkpoint in tree-size order. Everything is
 * recomputed from the stored text (payload, envelope, header, note) and compared with the stored hashes and
 * with each other; every disagreement becomes a finding with a stable code and the place it concerns.
 * Memory: the batch log's Merkle levels (64 bytes per batch) and one counter per study.
 */
import type { Crypto } from "../log/crypto.ts";
import { toHex, utf8 } from "../log/bytes.ts";
import { EnvelopeSchema, BatchHeaderSchema, headerLeaf } from "../log/envelope.ts";
import { canonicalize } from "../log/canonical.ts";
import { parsePayload } from "../log/payloads.ts";
import { MerkleLevels } from "../log/tree.ts";
import { checkpointHash, noteSignedBy, parseCheckpoint, parseNote, parseVkey } from "../log/checkpoint.ts";
import type { TrustPolicy } from "./trust-policy.ts";

export type AuditCode =
  | "ENTRY_PAYLOAD_ALTERED"
  | "ENTRY_PAYLOAD_INVALID"
  | "ENTRY_ENVELOPE_INVALID"
  | "ENTRY_FIELD_MISMATCH"
  | "ENTRY_LEAF_MISMATCH"
  | "ENTRY_WRONG_BATCH"
  | "SEQ_MISSING"
  | "SEQ_DUPLICATED"
  | "SEQ_OUTSIDE_BATCHES"
  | "STUDY_SEQ_GAP"
  | "BATCH_NOT_CONSECUTIVE"
  | "BATCH_HEADER_INVALID"
  | "BATCH_HEADER_ALTERED"
  | "BATCH_ROOT_MISMATCH"
  | "BATCH_MISSING"
  | "CHECKPOINT_INVALID"
  | "CHECKPOINT_SIGNATURE_INVALID"
  | "CHECKPOINT_ROOT_MISMATCH"
  | "CHECKPOINT_HASH_MISMATCH"
  | "CHECKPOINT_MISSING"
  | "ANCHOR_CHECKPOINT_MISMATCH"
  | "ANCHOR_INVALID"
  | "ANCHOR_NOT_IN_LEDGER"
  | "RECORD_CHAIN_BROKEN"
  | "DATA_ROW_MISMATCH"
  | "DATA_ROW_MISSING"
  | "DATA_ROW_UNLOGGED"
  | "AUDIT_EVENT_MISSING"
  | "AUDIT_EVENT_MISMATCH"
  | "AUDIT_EVENT_UNLOGGED"
  | "AUDIT_EVENT_UNSEALED_LEGACY"
  | "AUDIT_LEGACY_MISMATCH"
  | "ERASED_BY_PROCEDURE"
  | "CONTACT_OF_STAFF"
  | "CONTACT_SHARED"
  /** Data sealed while a database lock held, with no unlock before it (ADR 0054). */
  | "DATA_CHANGED_UNDER_LOCK"
  /** A SAP outcome list version sealed after the first enrolment without a reason or flag (ADR 0049). */
  | "OUTCOME_CHANGED_WITHOUT_REASON"
  | "ANCHOR_NOT_CHECKED"
  // Randomization (issue 20, ADR 0052): a slot altered after commitment, skipped or reused; an early allocation.
  | "SLOT_ALTERED"
  | "SLOT_SKIPPED"
  | "SLOT_REUSED"
  | "ALLOCATION_BEFORE_COMMITMENT"
  // Drug supply (issue 21, ADR 0061): a kit of another type than the allocation's dispensed, a destruction witnessed
  // by its recorder, a kit of a recalled lot dispensed after the recall.
  | "KIT_TYPE_MISMATCH"
  | "WITNESS_IS_RECORDER"
  | "DISPENSED_AFTER_RECALL";

/** "tamper": the stored data disagree with themselves; "info": reported, not a finding against integrity. */
export type Severity = "tamper" | "info";

export interface AuditFinding {
  code: AuditCode;
  severity: Severity;
  message: string;
  seq?: number;
  batch?: number;
  treeSize?: number;
  study?: string;
  field?: string;
  ledger?: string;
  table?: string;
  id?: string;
}

export interface StoredEntry {
  id: string;
  seq: number;
  studySeq: number | null;
  studyCode: string;
  kind: string;
  at: Date;
  payloadText: string;
  payloadHash: Uint8Array;
  envelopeText: string | null;
  leafHash: Uint8Array | null;
  batchNo: number | null;
}

export interface StoredBatch {
  batchNo: number;
  firstSeq: number;
  size: number;
  root: Uint8Array;
  headerText: string;
  leafHash: Uint8Array;
}

export interface StoredCheckpoint {
  treeSize: number;
  root: Uint8Array;
  noteText: string;
  checkpointHash: Uint8Array;
}

/** Both present and byte for byte equal (compared in place: the audit compares three hashes per entry). */
const same = (a: Uint8Array | null, b: Uint8Array | null) => {
  if (a === null || b === null || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
};
const encoder = new TextEncoder();

export class LogAuditor {
  readonly findings: AuditFinding[] = [];
  private readonly batchLog: MerkleLevels;
  private nextSeq = 0;
  private nextBatch = 0;
  private readonly studySeqs = new Map<string, number>();
  private lastCheckpointSize = 0;
  /** The batch begun and not yet ended: its row, its entries' Merkle tree so far, the next seq it expects. */
  private open: { b: StoredBatch; tree: MerkleLevels; expect: number } | null = null;
  /** Reused for the UTF-8 bytes each entry hashes (0x00 first, for its RFC 6962 leaf hash). */
  private scratch = new Uint8Array(4096);
  entriesChecked = 0;
  batchesChecked = 0;
  checkpointsChecked = 0;

  constructor(
    private readonly c: Crypto,
    private readonly policy: TrustPolicy,
    private readonly opts: { study?: string } = {},
  ) {
    this.batchLog = new MerkleLevels(c);
  }

  private add(f: AuditFinding) {
    // Findings about other studies' entries stay out of a study's report, except log-wide structure.
    if (this.opts.study && f.study && f.study !== this.opts.study) return;
    this.findings.push(f);
  }

  /** The seq just after the last batch checked. */
  get logEnd(): number {
    return this.nextSeq;
  }

  /**
   * One batch and the sealed entries whose seq falls in its range (ordered by seq), or only the header when
   * `trustedPrefix` (batches before --from-checkpoint are taken as anchored: only their header leaf is used).
   */
  batch(b: StoredBatch, entries: StoredEntry[], trustedPrefix = false): void {
    this.beginBatch(b, trustedPrefix);
    if (!trustedPrefix) for (const e of entries) this.batchEntry(e);
    this.endBatch();
  }

  /**
   * The same as `batch`, streamed: the batch row first, then each of its entries in seq order (`batchEntry`), then
   * `endBatch`; only the batch's Merkle tree is held meanwhile, not its entries.
   */
  beginBatch(b: StoredBatch, trustedPrefix = false): void {
    const c = this.c;
    if (b.batchNo !== this.nextBatch) {
      this.add({
        code: "BATCH_MISSING",
        severity: "tamper",
        batch: this.nextBatch,
        message: `batch ${this.nextBatch} is missing: the next stored batch is ${b.batchNo}`,
      });
      this.nextBatch = b.batchNo;
    }
    if (b.firstSeq !== this.nextSeq) {
      this.add({
        code: "BATCH_NOT_CONSECUTIVE",
        severity: "tamper",
        batch: b.batchNo,
        message: `batch ${b.batchNo} starts at seq ${b.firstSeq}, but the previous batch ended at ${this.nextSeq}`,
      });
    }
    let header: ReturnType<typeof BatchHeaderSchema.parse> | null = null;
    try {
      header = BatchHeaderSchema.parse(JSON.parse(b.headerText));
    } catch {
      this.add({
        code: "BATCH_HEADER_INVALID",
        severity: "tamper",
        batch: b.batchNo,
        message: `batch ${b.batchNo}: the stored header is not a valid batch header`,
      });
    }
    const hl = header ? headerLeaf(c, header) : null;
    if (header && hl) {
      if (hl.text !== b.headerText)
        this.add({
          code: "BATCH_HEADER_ALTERED",
          severity: "tamper",
          batch: b.batchNo,
          field: "header",
          message: `batch ${b.batchNo}: the header text is not in canonical form`,
        });
      const fields: [string, unknown, unknown][] = [
        ["batch", header.batch, b.batchNo],
        ["first", header.first, b.firstSeq],
        ["size", header.size, b.size],
        ["root", header.root, toHex(b.root)],
        ["log", header.log, this.policy.origin],
      ];
      for (const [f, h, row] of fields)
        if (h !== row)
          this.add({
            code: "BATCH_HEADER_ALTERED",
            severity: "tamper",
            batch: b.batchNo,
            field: f,
            message:
              `batch ${b.batchNo}: header ${f} is ${JSON.stringify(h)}, ` + `the batch row says ${JSON.stringify(row)}`,
          });
      if (!same(hl.leaf, b.leafHash))
        this.add({
          code: "BATCH_HEADER_ALTERED",
          severity: "tamper",
          batch: b.batchNo,
          field: "leaf",
          message: `batch ${b.batchNo}: the stored header leaf hash does not match the header text`,
        });
    }
    // The batch log is built from the recomputed header leaves (a stored leaf could have been edited to match).
    this.batchLog.append(hl ? hl.leaf : c.sha256(utf8(`invalid header ${b.batchNo}`)));
    this.batchesChecked++;
    this.nextBatch = b.batchNo + 1;
    if (trustedPrefix) {
      this.nextSeq = b.firstSeq + b.size;
      this.open = null;
      return;
    }
    this.open = { b, tree: new MerkleLevels(c), expect: b.firstSeq };
  }

  /** The next sealed entry (by seq) in the seq range of the batch begun. */
  batchEntry(e: StoredEntry): void {
    const c = this.c;
    const o = this.open;
    if (!o) throw new Error("batchEntry outside a batch (beginBatch first; not for a trusted batch)");
    const b = o.b;
    if (e.seq < o.expect) {
      this.add({
        code: "SEQ_DUPLICATED",
        severity: "tamper",
        seq: e.seq,
        study: e.studyCode,
        batch: b.batchNo,
        message: `seq ${e.seq} is stored more than once`,
      });
      return;
    }
    while (o.expect < e.seq) {
      this.add({
        code: "SEQ_MISSING",
        severity: "tamper",
        seq: o.expect,
        batch: b.batchNo,
        message: `seq ${o.expect} of batch ${b.batchNo} is missing (deleted?)`,
      });
      o.tree.append(c.sha256(utf8(`missing ${o.expect}`)));
      o.expect++;
    }
    o.tree.append(this.entry(e, b.batchNo));
    o.expect = e.seq + 1;
  }

  /** After the last entry of the batch begun (a trusted batch too). */
  endBatch(): void {
    const c = this.c;
    const o = this.open;
    this.open = null;
    if (!o) return;
    const { b, tree } = o;
    while (o.expect < b.firstSeq + b.size) {
      this.add({
        code: "SEQ_MISSING",
        severity: "tamper",
        seq: o.expect,
        batch: b.batchNo,
        message: `seq ${o.expect} of batch ${b.batchNo} is missing (deleted?)`,
      });
      tree.append(c.sha256(utf8(`missing ${o.expect}`)));
      o.expect++;
    }
    if (tree.size > 0 && !same(tree.root(), b.root)) {
      this.add({
        code: "BATCH_ROOT_MISMATCH",
        severity: "tamper",
        batch: b.batchNo,
        message:
          `batch ${b.batchNo}: the Merkle root of its entries is ${toHex(tree.root()).slice(0, 16)}…, ` +
          `the batch says ${toHex(b.root).slice(0, 16)}…`,
      });
    }
    this.nextSeq = b.firstSeq + b.size;
  }

  /**
   * SHA-256 of `text` in UTF-8, with the RFC 6962 leaf prefix 0x00 first when `leaf` (anchoring/log/merkle.ts
   * leafHash): encoded into a reused buffer, so the hash is the only allocation.
   */
  private hashText(text: string, leaf: boolean): Uint8Array {
    if (this.scratch.length < 1 + text.length * 3) this.scratch = new Uint8Array(1 + text.length * 3);
    this.scratch[0] = 0;
    const { written } = encoder.encodeInto(text, this.scratch.subarray(1));
    return this.c.sha256(this.scratch.subarray(leaf ? 0 : 1, 1 + written));
  }

  /** Check one sealed entry; returns the leaf hash recomputed from its envelope (what the batch root covers). */
  private entry(e: StoredEntry, batchNo: number): Uint8Array {
    const c = this.c;
    this.entriesChecked++;
    const where = { seq: e.seq, study: e.studyCode };
    const payloadHash = this.hashText(e.payloadText, false);
    if (!same(payloadHash, e.payloadHash))
      this.add({
        ...where,
        code: "ENTRY_PAYLOAD_ALTERED",
        severity: "tamper",
        field: "payload",
        message: `entry seq ${e.seq} (${e.kind}): the payload no longer hashes to the stored payload hash`,
      });
    let payload: unknown = null;
    try {
      payload = JSON.parse(e.payloadText);
    } catch {
      this.add({
        ...where,
        code: "ENTRY_PAYLOAD_INVALID",
        severity: "tamper",
        field: "payload",
        message: `entry seq ${e.seq}: the payload is not JSON`,
      });
    }
    if (payload !== null) {
      const p = parsePayload(e.kind, payload);
      if (!p.success)
        this.add({
          ...where,
          code: "ENTRY_PAYLOAD_INVALID",
          severity: "tamper",
          field: "payload",
          message: `entry seq ${e.seq} (${e.kind}): ${p.error}`,
        });
    }
    if (e.batchNo !== batchNo)
      this.add({
        ...where,
        code: "ENTRY_WRONG_BATCH",
        severity: "tamper",
        field: "batch",
        message: `entry seq ${e.seq} says batch ${e.batchNo}, its seq lies in batch ${batchNo}`,
      });
    let env: ReturnType<typeof EnvelopeSchema.parse> | null = null;
    try {
      env = EnvelopeSchema.parse(JSON.parse(e.envelopeText ?? ""));
    } catch {
      this.add({
        ...where,
        code: "ENTRY_ENVELOPE_INVALID",
        severity: "tamper",
        field: "envelope",
        message: `entry seq ${e.seq}: the stored envelope is not a valid envelope`,
      });
      return c.sha256(utf8(`invalid envelope ${e.seq}`));
    }
    // envelopeLeaf(c, env), with the leaf hashed in the reused buffer.
    const envText = canonicalize(env);
    const leaf = { text: envText, leaf: this.hashText(envText, true) };
    if (leaf.text !== e.envelopeText)
      this.add({
        ...where,
        code: "ENTRY_ENVELOPE_INVALID",
        severity: "tamper",
        field: "envelope",
        message: `entry seq ${e.seq}: the envelope text is not in canonical form`,
      });
    const fields: [string, unknown, unknown][] = [
      ["seq", env.seq, e.seq],
      ["studySeq", env.studySeq, e.studySeq],
      ["at", env.at, e.at.toISOString()],
      ["study", env.study, e.studyCode],
      ["kind", env.kind, e.kind],
      ["payloadHash", env.payloadHash, toHex(e.payloadHash)],
      ["log", env.log, this.policy.origin],
    ];
    for (const [f, a, b] of fields)
      if (a !== b)
        this.add({
          ...where,
          code: "ENTRY_FIELD_MISMATCH",
          severity: "tamper",
          field: f,
          message:
            `entry seq ${e.seq}: ${f} is ${JSON.stringify(b)} in the row ` +
            `but ${JSON.stringify(a)} in its sealed envelope`,
        });
    if (!same(leaf.leaf, e.leafHash))
      this.add({
        ...where,
        code: "ENTRY_LEAF_MISMATCH",
        severity: "tamper",
        field: "leaf",
        message: `entry seq ${e.seq}: the stored leaf hash does not match its envelope`,
      });
    // studySeq runs without gaps per study, in seq order.
    const want = this.studySeqs.get(env.study) ?? 0;
    if (env.studySeq !== want)
      this.add({
        ...where,
        code: "STUDY_SEQ_GAP",
        severity: "tamper",
        field: "studySeq",
        message: `study ${env.study}: entry seq ${e.seq} has study seq ${env.studySeq}, expected ${want}`,
      });
    this.studySeqs.set(env.study, Math.max(want, env.studySeq) + 1);
    return leaf.leaf;
  }

  /** Sealed entries found beyond the last batch (or in no batch at all): inserted behind the sealer's back. */
  strayEntry(e: StoredEntry): void {
    this.add({
      code: "SEQ_OUTSIDE_BATCHES",
      severity: "tamper",
      seq: e.seq,
      study: e.studyCode,
      message: `entry seq ${e.seq} (${e.kind}) is marked sealed but lies in no sealed batch (inserted?)`,
    });
  }

  /** One checkpoint, after the batches it covers were fed (tree sizes ascending). */
  checkpoint(cp: StoredCheckpoint): void {
    const c = this.c;
    this.checkpointsChecked++;
    for (let n = this.lastCheckpointSize + 1; n < cp.treeSize; n++) {
      this.add({
        code: "CHECKPOINT_MISSING",
        severity: "tamper",
        treeSize: n,
        message: `there is no checkpoint for log size ${n} (each sealed batch signs one)`,
      });
    }
    this.lastCheckpointSize = Math.max(this.lastCheckpointSize, cp.treeSize);
    try {
      const note = parseNote(cp.noteText);
      const body = parseCheckpoint(note.text);
      const keys = this.policy.logKeys.filter(
        (k) => k.fromSize <= cp.treeSize && (k.untilSize === null || cp.treeSize < k.untilSize),
      );
      if (!keys.some((k) => noteSignedBy(c, note, parseVkey(c, k.vkey))))
        this.add({
          code: "CHECKPOINT_SIGNATURE_INVALID",
          severity: "tamper",
          treeSize: cp.treeSize,
          message: `checkpoint ${cp.treeSize} is not signed by a log key valid for that size`,
        });
      if (body.origin !== this.policy.origin || body.treeSize !== cp.treeSize)
        this.add({
          code: "CHECKPOINT_INVALID",
          severity: "tamper",
          treeSize: cp.treeSize,
          message: `checkpoint ${cp.treeSize}: its note names origin ${body.origin} and size ${body.treeSize}`,
        });
      if (!same(body.root, cp.root))
        this.add({
          code: "CHECKPOINT_ROOT_MISMATCH",
          severity: "tamper",
          treeSize: cp.treeSize,
          message: `checkpoint ${cp.treeSize}: the signed root differs from the stored root`,
        });
      if (cp.treeSize === this.batchLog.size && !same(body.root, this.batchLog.root())) {
        this.add({
          code: "CHECKPOINT_ROOT_MISMATCH",
          severity: "tamper",
          treeSize: cp.treeSize,
          message:
            `checkpoint ${cp.treeSize}: the signed root is not the root of the first ${cp.treeSize} batch headers ` +
            "(replaced checkpoint or edited batches)",
        });
      }
    } catch (err) {
      this.add({
        code: "CHECKPOINT_INVALID",
        severity: "tamper",
        treeSize: cp.treeSize,
        message: `checkpoint ${cp.treeSize}: ${(err as Error).message}`,
      });
      return;
    }
    if (!same(checkpointHash(c, cp.noteText), cp.checkpointHash)) {
      this.add({
        code: "CHECKPOINT_HASH_MISMATCH",
        severity: "tamper",
        treeSize: cp.treeSize,
        message: `checkpoint ${cp.treeSize}: the stored checkpoint hash does not match its note`,
      });
    }
  }

  /** With --from-checkpoint: each study's next studySeq after the trusted prefix. */
  seedStudySeqs(next: Map<string, number>): void {
    for (const [study, n] of next) this.studySeqs.set(study, n);
  }

  /** A checkpoint inside the trusted prefix (--from-checkpoint): not re-checked, but not missing either. */
  skipCheckpoint(treeSize: number): void {
    this.lastCheckpointSize = Math.max(this.lastCheckpointSize, treeSize);
  }

  /** Call once the batch log is complete: the last batches must be covered by a checkpoint too. */
  finishCheckpoints(): void {
    for (let n = this.lastCheckpointSize + 1; n <= this.batchLog.size; n++) {
      this.add({
        code: "CHECKPOINT_MISSING",
        severity: "tamper",
        treeSize: n,
        message: `there is no checkpoint for log size ${n} (each sealed batch signs one)`,
      });
    }
  }

  /** The recomputed batch-log size (what the checkpoints must sign). */
  get batchLogSize(): number {
    return this.batchLog.size;
  }
}
