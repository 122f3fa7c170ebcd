/**
 * Anchor receipts as they travel in proof bundles, and each ledger's verification data in the trust policy.
 * Shapes only (zod); verify-anchor.ts checks them.
 */
import { z } from "zod";
import { utcMillis } from "../log/envelope.ts";

const hex32 = z.string().regex(/^[0-9a-f]{64}$/, "expected 32 bytes as lowercase hex");
const nat = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const address = z.string().regex(/^0x[0-9a-fA-F]{40}$/, "expected a 20-byte 0x address");
const txHash = z.string().regex(/^0x[0-9a-f]{64}$/, "expected a 32-byte 0x hash");
const base64 = z.string().regex(/^[A-Za-z0-9+/]+={0,2}$/, "expected base64");

/** A local-ledger record (it is its own receipt). */
export const LocalRecordSchema = z.strictObject({
  format: z.literal("trialseal-local-ledger/v1"),
  ledger: z.string().min(1).max(255),
  pos: nat,
  prev: hex32,
  time: utcMillis,
  treeSize: nat,
  checkpoint: hex32,
  sig: base64.max(200),
});
export type LocalRecord = z.infer<typeof LocalRecordSchema>;

export const LocalReceiptSchema = z.strictObject({ type: z.literal("local"), record: LocalRecordSchema });

export const EvmReceiptSchema = z.strictObject({
  type: z.literal("evm"),
  chainId: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
  contract: address,
  txHash,
  blockNumber: nat,
  blockHash: txHash,
  logIndex: nat,
});

export const Rfc3161ReceiptSchema = z.strictObject({
  type: z.literal("rfc3161"),
  /** DER TimeStampToken (a CMS ContentInfo), base64. */
  token: base64.max(100_000),
});

export const AnchorReceiptSchema = z.discriminatedUnion("type", [
  LocalReceiptSchema,
  EvmReceiptSchema,
  Rfc3161ReceiptSchema,
]);
export type AnchorReceipt = z.infer<typeof AnchorReceiptSchema>;
export type LocalReceipt = z.infer<typeof LocalReceiptSchema>;
export type EvmReceipt = z.infer<typeof EvmReceiptSchema>;
export type Rfc3161Receipt = z.infer<typeof Rfc3161ReceiptSchema>;

/** One anchor in a proof bundle's checkpoint: which configured ledger, and its receipt. */
export const BundleAnchorSchema = z.strictObject({
  ledger: z.string().min(1).max(100),
  receipt: AnchorReceiptSchema,
});
export type BundleAnchor = z.infer<typeof BundleAnchorSchema>;

// ---- trust policy entries ----

export const LocalLedgerPolicySchema = z.strictObject({
  type: z.literal("local"),
  /** The ledger id written in every record. */
  ledger: z.string().min(1).max(255),
  /** Ed25519 public keys (hex), each valid for records whose time lies in [notBefore, notAfter). */
  keys: z
    .array(
      z.strictObject({
        publicKey: hex32,
        notBefore: utcMillis.nullable().default(null),
        notAfter: utcMillis.nullable().default(null),
      }),
    )
    .min(1),
});

export const EvmLedgerPolicySchema = z.strictObject({
  type: z.literal("evm"),
  chainId: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
  contract: address,
  /** The only address allowed to anchor (the contract's owner). */
  sender: address,
  /** Blocks on top of (and including) the anchor's block before it counts as final. */
  confirmations: z.number().int().min(1).max(10_000),
  /** Where a verifier may read the chain (any node of the same chain will do). */
  rpcHint: z.string().max(500).nullable().default(null),
});

export const Rfc3161LedgerPolicySchema = z.strictObject({
  type: z.literal("rfc3161"),
  /** Trusted certificates (DER, base64): the TSA's CA (and optionally intermediates). */
  certificates: z.array(base64.max(20_000)).min(1).max(16),
  url: z.string().max(500).nullable().default(null),
});

export const LedgerPolicySchema = z.discriminatedUnion("type", [
  LocalLedgerPolicySchema,
  EvmLedgerPolicySchema,
  Rfc3161LedgerPolicySchema,
]);
export type LedgerPolicy = z.infer<typeof LedgerPolicySchema>;
export type LocalLedgerPolicy = z.infer<typeof LocalLedgerPolicySchema>;
export type EvmLedgerPolicy = z.infer<typeof EvmLedgerPolicySchema>;
export type Rfc3161LedgerPolicy = z.infer<typeof Rfc3161LedgerPolicySchema>;
