/**
 * The blinded commitments of the drug supply (issue 21, ADR 0057). A lot's and a kit's kit type (and a kit's lot) are
 * sealed only as SHA-256 of a canonical JSON object that holds a 16-byte secret nonce kept in the database: with two
 * kit types a salted hash could be guessed, a hash over a secret nonce cannot. Once the nonce, lot and kit type are
 * disclosed (to an unblinded role, or to everyone at unblinding) anyone recomputes the hash. Browser-safe.
 */
import { toHex, utf8 } from "../log/bytes.ts";
import { canonicalize } from "../log/canonical.ts";
import type { Crypto } from "../log/crypto.ts";

export interface LotDisclosure {
  lot: string;
  kitType: string;
  /** The lot's nonce, base64url of 16 bytes. */
  nonce: string;
}

export interface KitDisclosure {
  kit: string;
  lot: string;
  kitType: string;
  /** The kit's nonce, base64url of 16 bytes. */
  nonce: string;
}

/** `supply.lot_registered`'s blindHash (lowercase hex). */
export function lotBlindHash(crypto: Crypto, d: LotDisclosure): string {
  return toHex(crypto.sha256(utf8(canonicalize({ kitType: d.kitType, lot: d.lot, nonce: d.nonce }))));
}

/** `supply.kit_registered`'s blindHash (lowercase hex). */
export function kitBlindHash(crypto: Crypto, d: KitDisclosure): string {
  return toHex(crypto.sha256(utf8(canonicalize({ kit: d.kit, kitType: d.kitType, lot: d.lot, nonce: d.nonce }))));
}
