/**
 * Local-ledger records (pure). Each record is one JSON line, signed with the ledger's own Ed25519 key over
 * `trialseal-local-ledger/v1\n` + JCS(record without sig), and chained: `prev` is the SHA-256 of the previous
 * record's exact line (JCS of the whole record, signature included); the first record's prev is all zeros.
 */
import { canonicalize } from "../log/canonical.ts";
import type { Crypto, Signer } from "../log/crypto.ts";
import { fromBase64, toBase64, toHex, utf8 } from "../log/bytes.ts";
import type { LocalRecord } from "./receipt.ts";

export const LOCAL_FORMAT = "trialseal-local-ledger/v1" as const;
export const GENESIS_PREV = "0".repeat(64);

export function signedMessage(r: Omit<LocalRecord, "sig">): Uint8Array {
  const { format, ledger, pos, prev, time, treeSize, checkpoint } = r;
  return utf8(`${LOCAL_FORMAT}\n${canonicalize({ format, ledger, pos, prev, time, treeSize, checkpoint })}`);
}

export function signRecord(signer: Signer, r: Omit<LocalRecord, "sig">): LocalRecord {
  return { ...r, sig: toBase64(signer.sign(signedMessage(r))) };
}

/** The exact line stored for a record (without the newline). */
export function recordLine(r: LocalRecord): string {
  return canonicalize(r);
}

/** SHA-256 (hex) of a record's line: the next record's `prev`. */
export function recordHash(c: Crypto, r: LocalRecord): string {
  return toHex(c.sha256(utf8(recordLine(r))));
}

export function recordSignedBy(c: Crypto, r: LocalRecord, publicKey: Uint8Array): boolean {
  let sig: Uint8Array;
  try {
    sig = fromBase64(r.sig);
  } catch {
    return false;
  }
  return c.ed25519Verify(publicKey, signedMessage(r), sig);
}
