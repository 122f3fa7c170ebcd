/**
 * The anchoring contract's event and the check of an EVM receipt against a chain (pure: the chain is read
 * through the small EvmReader interface; anchoring/adapters/evm-reader.ts implements it with viem over
 * JSON-RPC).
 *
 *   event Anchored(bytes32 indexed logId, bytes32 indexed checkpointHash, uint64 treeSize)
 *
 * logId = SHA-256 of the log origin line.
 */
import type { Crypto } from "../log/crypto.ts";
import { toHex, utf8 } from "../log/bytes.ts";
import type { EvmLedgerPolicy, EvmReceipt } from "./receipt.ts";

/** keccak256("Anchored(bytes32,bytes32,uint64)"), checked against viem in the tests. */
export const ANCHORED_TOPIC = "0x1860b667daa8786e835acc6d0d9fafa39131dab783d4e42bd24388c656749f4d";

export function logIdOf(c: Crypto, origin: string): string {
  return `0x${toHex(c.sha256(utf8(origin)))}`;
}

export interface EvmLog {
  address: string;
  topics: string[];
  data: string;
  logIndex: number;
}

export interface EvmTxReceipt {
  transactionHash: string;
  blockNumber: number;
  blockHash: string;
  from: string;
  to: string | null;
  status: "success" | "reverted";
  logs: EvmLog[];
}

/** What the verifier and the adapter read from a chain. */
export interface EvmReader {
  chainId(): Promise<number>;
  blockNumber(): Promise<number>;
  /** null when the chain does not know the transaction (never mined, or re-orged away). */
  receipt(txHash: string): Promise<EvmTxReceipt | null>;
  /** The canonical block at a height: hash and timestamp (seconds), null when the chain is shorter. */
  block(number: number): Promise<{ hash: string; timestamp: number } | null>;
}

export type EvmCheckCode =
  | "EVM_WRONG_CHAIN"
  | "EVM_WRONG_CONTRACT"
  | "EVM_TX_NOT_FOUND"
  | "EVM_TX_FAILED"
  | "EVM_WRONG_SENDER"
  | "EVM_BLOCK_MISMATCH"
  | "EVM_EVENT_MISMATCH"
  | "EVM_NOT_FINAL";

export class EvmCheckError extends Error {
  constructor(
    readonly code: EvmCheckCode,
    message: string,
  ) {
    super(message);
    this.name = "EvmCheckError";
  }
}

const eq = (a: string | null | undefined, b: string) => !!a && a.toLowerCase() === b.toLowerCase();
const word = (n: number) => `0x${n.toString(16).padStart(64, "0")}`;

/** Find the Anchored event in a transaction receipt at `logIndex`, and check it says what we expect. */
export function checkEvent(
  r: EvmTxReceipt,
  o: { contract: string; logIndex: number; logId: string; checkpointHash: string; treeSize: number },
): EvmLog {
  const log = r.logs.find((l) => l.logIndex === o.logIndex);
  if (!log)
    throw new EvmCheckError("EVM_EVENT_MISMATCH", `transaction ${r.transactionHash} has no log at index ${o.logIndex}`);
  if (!eq(log.address, o.contract))
    throw new EvmCheckError(
      "EVM_WRONG_CONTRACT",
      `the event was emitted by ${log.address}, not by the trusted contract ${o.contract}`,
    );
  if (log.topics[0]?.toLowerCase() !== ANCHORED_TOPIC)
    throw new EvmCheckError("EVM_EVENT_MISMATCH", "the log is not an Anchored event");
  if (!eq(log.topics[1], o.logId)) throw new EvmCheckError("EVM_EVENT_MISMATCH", "the event anchors another log");
  if (!eq(log.topics[2], o.checkpointHash))
    throw new EvmCheckError("EVM_EVENT_MISMATCH", "the event anchors another checkpoint hash");
  if (!eq(log.data, word(o.treeSize)))
    throw new EvmCheckError("EVM_EVENT_MISMATCH", `the event anchors another tree size than ${o.treeSize}`);
  return log;
}

export interface EvmCheckResult {
  confirmations: number;
  final: boolean;
  /** Block timestamp: the checkpoint existed by then. */
  time: Date;
}

/**
 * Check an EVM receipt against the chain: chain id, the transaction's receipt (success, from the trusted
 * sender, to the trusted contract), its block still canonical (same hash at that height), the event, and
 * confirmations. `requireFinal` false reports a not-yet-final anchor instead of failing it.
 */
export async function checkEvmReceipt(
  reader: EvmReader,
  receipt: EvmReceipt,
  o: {
    policy: Pick<EvmLedgerPolicy, "chainId" | "contract" | "sender" | "confirmations">;
    logId: string;
    checkpointHash: string;
    treeSize: number;
    requireFinal?: boolean;
  },
): Promise<EvmCheckResult> {
  const p = o.policy;
  if (receipt.chainId !== p.chainId)
    throw new EvmCheckError(
      "EVM_WRONG_CHAIN",
      `the receipt is for chain ${receipt.chainId}, the policy trusts chain ${p.chainId}`,
    );
  if (!eq(receipt.contract, p.contract))
    throw new EvmCheckError(
      "EVM_WRONG_CONTRACT",
      `the receipt names contract ${receipt.contract}, the policy trusts ${p.contract}`,
    );
  const chainId = await reader.chainId();
  if (chainId !== p.chainId)
    throw new EvmCheckError("EVM_WRONG_CHAIN", `the RPC endpoint serves chain ${chainId}, not ${p.chainId}`);
  const r = await reader.receipt(receipt.txHash);
  if (!r)
    throw new EvmCheckError(
      "EVM_TX_NOT_FOUND",
      `the chain does not know transaction ${receipt.txHash} (never mined, or re-orged away)`,
    );
  if (r.status !== "success") throw new EvmCheckError("EVM_TX_FAILED", `transaction ${receipt.txHash} reverted`);
  if (!eq(r.to, p.contract))
    throw new EvmCheckError(
      "EVM_WRONG_CONTRACT",
      `transaction ${receipt.txHash} was sent to ${r.to}, not to the trusted contract ${p.contract}`,
    );
  if (!eq(r.from, p.sender))
    throw new EvmCheckError(
      "EVM_WRONG_SENDER",
      `transaction ${receipt.txHash} was sent by ${r.from}, not by the trusted sender ${p.sender}`,
    );
  if (r.blockNumber !== receipt.blockNumber || !eq(r.blockHash, receipt.blockHash)) {
    throw new EvmCheckError(
      "EVM_BLOCK_MISMATCH",
      `the transaction is in block ${r.blockNumber} ${r.blockHash}, ` +
        `the receipt says ${receipt.blockNumber} ${receipt.blockHash}`,
    );
  }
  checkEvent(r, {
    contract: p.contract,
    logIndex: receipt.logIndex,
    logId: o.logId,
    checkpointHash: o.checkpointHash,
    treeSize: o.treeSize,
  });
  const block = await reader.block(receipt.blockNumber);
  if (!block || !eq(block.hash, receipt.blockHash))
    throw new EvmCheckError(
      "EVM_BLOCK_MISMATCH",
      `block ${receipt.blockNumber} is no longer ${receipt.blockHash} on the canonical chain`,
    );
  const head = await reader.blockNumber();
  const confirmations = head - receipt.blockNumber + 1;
  const final = confirmations >= p.confirmations;
  if (!final && o.requireFinal !== false)
    throw new EvmCheckError("EVM_NOT_FINAL", `${confirmations} of ${p.confirmations} confirmations so far`);
  return { confirmations, final, time: new Date(block.timestamp * 1000) };
}
