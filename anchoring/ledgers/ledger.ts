/**
 * The one interface every anchoring ledger implements (see docs/ledgers.md). A ledger anchors a checkpoint
 * (its hash: SHA-256 of the exact signed note text, and its tree size) and returns a receipt; it can later
 * re-check a receipt it issued (an EVM transaction may be re-orged away, or become final).
 *
 * Adapters live one per folder (local/, evm/, rfc3161/); they are wired from configuration in one place
 * (app/anchor-worker/ledger-factory.server.ts). Receipt verification for proof bundles is separate and pure
 * (verify-anchor.ts), like sigstore-js keeps its offline verifier apart from network code.
 */
import type { AnchorReceipt, LedgerPolicy } from "./receipt.ts";

export interface AnchorRequest {
  /** The log origin (first line of the checkpoint). */
  origin: string;
  treeSize: number;
  /** SHA-256 of the note's signed text (the checkpoint body; anchoring/log/checkpoint.ts checkpointHash). */
  checkpointHash: Uint8Array;
  /** The signed note itself; its signed text is what the hash covers. */
  note: string;
}

export type Finality = "pending" | "included" | "final";

export interface AnchorOutcome {
  status: Finality;
  receipt: AnchorReceipt;
  /** Time the ledger attests (local record time, block timestamp, TSA genTime), when known. */
  anchoredAt?: Date;
}

/**
 * Adapter-specific in-flight state that must survive a crash between "sent" and "receipt stored" (e.g. a
 * signed EVM transaction and its hash). The worker persists it before the send and passes it back.
 */
export type WorkState = Record<string, unknown>;

export interface AnchorContext {
  /** Previously saved in-flight state of this anchor (null on the first attempt). */
  work: WorkState | null;
  /** Persist in-flight state before an irreversible step (e.g. broadcasting a transaction). */
  saveWork(work: WorkState): Promise<void>;
}

export interface Ledger {
  /** Configured name (the key in the trust policy's `ledgers`). */
  readonly name: string;
  readonly type: AnchorReceipt["type"];
  /** Anchor one checkpoint. Throws LedgerError when the ledger cannot be reached or refuses. */
  anchor(req: AnchorRequest, ctx: AnchorContext): Promise<AnchorOutcome>;
  /** Re-check a receipt this ledger issued: its finality now (pending means it was dropped, e.g. by a reorg). */
  refresh(receipt: AnchorReceipt): Promise<AnchorOutcome>;
  /** What a verifier needs to check this ledger's receipts (goes into the trust policy). */
  policy(): LedgerPolicy;
  close?(): Promise<void>;
}

/** A ledger failure. `retryable` false means retrying the same request cannot succeed. */
export class LedgerError extends Error {
  constructor(
    readonly ledger: string,
    message: string,
    readonly retryable = true,
  ) {
    super(message);
    this.name = "LedgerError";
  }
}
