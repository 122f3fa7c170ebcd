/**
 * Verification of one anchor receipt against the checkpoint it claims to anchor (pure). local and rfc3161
 * are checked fully offline; evm needs an EvmReader (an RPC endpoint) and is reported "not_checked" without one.
 */
import type { Crypto } from "../log/crypto.ts";
import { fromBase64, fromHex, toHex, utf8 } from "../log/bytes.ts";
import { BundleAnchorSchema, LedgerPolicySchema, type LedgerPolicy } from "../ledgers/receipt.ts";
import { recordSignedBy } from "../ledgers/local-record.ts";
import { parseNote } from "../log/checkpoint.ts";
import { checkEvmReceipt, EvmCheckError, logIdOf, type EvmReader } from "../ledgers/evm-event.ts";
import type { TsaError } from "../ledgers/rfc3161-token.ts";

export type AnchorErrorCode =
  | "ANCHOR_MALFORMED"
  | "ANCHOR_UNKNOWN_LEDGER"
  | "ANCHOR_CHECKPOINT_MISMATCH"
  | "LOCAL_SIGNATURE_INVALID"
  | "LOCAL_NO_VALID_KEY"
  | EvmCheckError["code"]
  | "EVM_UNREACHABLE"
  | TsaError["code"];

export interface AnchorCheck {
  ledger: string;
  type: string;
  status: "ok" | "failed" | "not_checked";
  code?: AnchorErrorCode;
  message: string;
  /** The time the ledger attests for the checkpoint (record time, block timestamp, TSA genTime). */
  time?: string;
  /**
   * The accuracy the receipt itself states for that time (an RFC 3161 token's `accuracy` field), if any. The
   * verifier turns it into the drift it allows (anchoring/ledgers/ledger-time.ts), unless the policy says otherwise.
   */
  statedAccuracyMs?: number;
}

export interface AnchorVerifyOptions {
  /** A reader for an EVM chain id (from `--rpc URL`); without one, EVM receipts are not checked. */
  evm?: (chainId: number) => EvmReader | undefined;
}

export async function verifyAnchor(
  c: Crypto,
  input: unknown,
  cp: { note: string; treeSize: number; origin: string },
  ledgers: Record<string, unknown>,
  opts: AnchorVerifyOptions = {},
): Promise<AnchorCheck> {
  const parsed = BundleAnchorSchema.safeParse(input);
  const name =
    typeof (input as { ledger?: unknown })?.ledger === "string" ? String((input as { ledger: string }).ledger) : "?";
  if (!parsed.success) {
    const i = parsed.error.issues[0];
    return {
      ledger: name,
      type: "?",
      status: "failed",
      code: "ANCHOR_MALFORMED",
      message: `anchor ${i.path.join(".")}: ${i.message}`,
    };
  }
  const { ledger, receipt } = parsed.data;
  const fail = (code: AnchorErrorCode, message: string): AnchorCheck => ({
    ledger,
    type: receipt.type,
    status: "failed",
    code,
    message,
  });
  const raw = Object.hasOwn(ledgers, ledger) ? ledgers[ledger] : undefined;
  const pol = LedgerPolicySchema.safeParse(raw);
  if (raw === undefined || !pol.success)
    return fail(
      "ANCHOR_UNKNOWN_LEDGER",
      `the trust policy has no ${raw === undefined ? "" : "valid "}entry for ledger "${ledger}"`,
    );
  const policy: LedgerPolicy = pol.data;
  if (policy.type !== receipt.type)
    return fail(
      "ANCHOR_UNKNOWN_LEDGER",
      `ledger "${ledger}" is a ${policy.type} ledger in the policy, the receipt is ${receipt.type}`,
    );
  // The anchored checkpoint hash: SHA-256 of the note's signed text (anchoring/log/checkpoint.ts checkpointHash).
  let signedText: string;
  try {
    signedText = parseNote(cp.note).text;
  } catch {
    return fail("ANCHOR_CHECKPOINT_MISMATCH", "the checkpoint note cannot be parsed");
  }
  const hash = c.sha256(utf8(signedText));
  const hashHex = toHex(hash);

  if (receipt.type === "local" && policy.type === "local") {
    const r = receipt.record;
    if (r.checkpoint !== hashHex || r.treeSize !== cp.treeSize)
      return fail(
        "ANCHOR_CHECKPOINT_MISMATCH",
        `the local-ledger record anchors checkpoint ${r.checkpoint.slice(0, 16)}… of size ${r.treeSize}, not this one`,
      );
    if (r.ledger !== policy.ledger)
      return fail("ANCHOR_UNKNOWN_LEDGER", `the record is from ledger ${r.ledger}, the policy trusts ${policy.ledger}`);
    const keys = policy.keys.filter(
      (k) => (k.notBefore === null || r.time >= k.notBefore) && (k.notAfter === null || r.time < k.notAfter),
    );
    if (keys.length === 0) return fail("LOCAL_NO_VALID_KEY", `no ledger key in the policy is valid at ${r.time}`);
    if (!keys.some((k) => recordSignedBy(c, r, fromHex(k.publicKey))))
      return fail("LOCAL_SIGNATURE_INVALID", "the local-ledger record is not signed by a trusted ledger key");
    return {
      ledger,
      type: "local",
      status: "ok",
      message: `record ${r.pos} of local ledger ${r.ledger}, signed by its key, at ${r.time}`,
      time: r.time,
    };
  }

  if (receipt.type === "rfc3161" && policy.type === "rfc3161") {
    // Loaded on first use: the ASN.1/CMS libraries are large, and most bundles carry no time-stamp token.
    const { TsaError, verifyToken } = await import("../ledgers/rfc3161-token.ts");
    try {
      const info = await verifyToken(fromBase64(receipt.token), {
        data: utf8(signedText),
        imprint: hash,
        trusted: policy.certificates.map(fromBase64),
      });
      const time = info.genTime.toISOString();
      return {
        ledger,
        type: "rfc3161",
        status: "ok",
        message: `RFC 3161 token (serial ${info.serial}) by a trusted TSA, genTime ${time}`,
        time,
        ...(info.accuracyMs === null ? {} : { statedAccuracyMs: info.accuracyMs }),
      };
    } catch (err) {
      if (err instanceof TsaError)
        return fail(err.code === "TSA_IMPRINT_MISMATCH" ? "ANCHOR_CHECKPOINT_MISMATCH" : err.code, err.message);
      return fail("TSA_TOKEN_MALFORMED", `the time-stamp token could not be checked: ${(err as Error).message}`);
    }
  }

  if (receipt.type === "evm" && policy.type === "evm") {
    const reader = opts.evm?.(policy.chainId);
    if (!reader)
      return {
        ledger,
        type: "evm",
        status: "not_checked",
        message:
          `EVM receipt (chain ${receipt.chainId}, tx ${receipt.txHash}) not checked: ` +
          "no RPC endpoint given (use --rpc URL)",
      };
    try {
      const r = await checkEvmReceipt(reader, receipt, {
        policy,
        logId: logIdOf(c, cp.origin),
        checkpointHash: `0x${hashHex}`,
        treeSize: cp.treeSize,
      });
      const time = r.time.toISOString();
      return {
        ledger,
        type: "evm",
        status: "ok",
        message:
          `Anchored event in block ${receipt.blockNumber} of chain ${receipt.chainId} ` +
          `(${r.confirmations} confirmations), block time ${time}`,
        time,
      };
    } catch (err) {
      if (err instanceof EvmCheckError) return fail(err.code, err.message);
      return fail("EVM_UNREACHABLE", `could not read chain ${policy.chainId}: ${(err as Error).message}`);
    }
  }
  return fail("ANCHOR_MALFORMED", "unsupported receipt type");
}
