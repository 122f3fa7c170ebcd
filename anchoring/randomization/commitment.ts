/**
 * The randomization commitment (ADR 0051, ADR 0055): per stratum, the RFC 6962 Merkle tree whose leaf at index i is
 * slot i (anchoring/randomization/slots.ts slotLeafHash), its root and size, an allocation's inclusion proof, and
 * the design sealed as a hash of its canonical text under the list's secret nonce. The portal seals what
 * `stratumCommitment` returns; the verifier recomputes it from the revealed slots. Browser-safe: no node: imports.
 */
import { fromHex, toHex } from "../log/bytes.ts";
import type { Crypto } from "../log/crypto.ts";
import { inclusionProofWith, MerkleError, rootFromInclusionProof } from "../log/merkle.ts";
import { saltedTextHash } from "../log/text-hash.ts";
import { MerkleLevels } from "../log/tree.ts";
import { type Slot, slotLeafHash } from "./slots.ts";

/** What the commitment seals for one stratum. */
export interface StratumCommitment {
  key: string;
  /** RFC 6962 root of the stratum's slot leaves, lowercase hex. */
  root: string;
  size: number;
}

/** The slot tree of one stratum's slots (in seq order: slot i at index i). */
export function slotTree(crypto: Crypto, slots: readonly Slot[]): MerkleLevels {
  const tree = new MerkleLevels(crypto);
  tree.extend(slots.map((s) => fromHex(slotLeafHash(crypto, s))));
  return tree;
}

/** The {key, root, size} of a stratum; its slots must be in seq order with seq = index. */
export function stratumCommitment(crypto: Crypto, key: string, slots: readonly Slot[]): StratumCommitment {
  for (const [i, s] of slots.entries())
    if (s.seq !== i || s.stratum !== key) throw new RangeError(`slot ${i} of ${key} is ${s.stratum} seq ${s.seq}`);
  if (slots.length === 0) throw new RangeError(`stratum ${key} has no slots`);
  return { key, root: toHex(slotTree(crypto, slots).root()), size: slots.length };
}

/** The inclusion proof (hex, leaf to root) of slot `seq` in its stratum's tree. */
export function slotInclusionProof(crypto: Crypto, slots: readonly Slot[], seq: number): string[] {
  return slotTree(crypto, slots).inclusionProof(seq).map(toHex);
}

/** Does `leaf` (hex) at index `seq` lead by `proof` to `root` in a tree of `size` leaves? */
export function slotIncluded(
  crypto: Crypto,
  c: StratumCommitment,
  seq: number,
  leaf: string,
  proof: readonly string[],
): { ok: true } | { ok: false; why: string } {
  try {
    const got = toHex(rootFromInclusionProof(crypto, seq, c.size, fromHex(leaf), proof.map(fromHex)));
    return got === c.root
      ? { ok: true }
      : { ok: false, why: "the inclusion proof does not lead to the committed root" };
  } catch (e) {
    return { ok: false, why: e instanceof MerkleError ? e.message : "malformed inclusion proof" };
  }
}

/**
 * The ranges [lo, hi) of the subtrees whose roots an inclusion proof of leaf `index` in a tree of `size` lists, in
 * the proof's order (leaf to root). A verified proof authenticates each of these subtree roots.
 */
export function proofRanges(index: number, size: number): [number, number][] {
  const ranges: [number, number][] = [];
  inclusionProofWith(
    (lo, hi) => {
      ranges.push([lo, hi]);
      return new Uint8Array(0);
    },
    index,
    size,
  );
  return ranges.reverse();
}

/**
 * The design as sealed (ADR 0052): SHA-256 of the list's SECRET design nonce (32 bytes, base64url, revealed only in
 * the allocations file), a newline and the design's canonical text. Never the payload's salt: it is public, and a
 * design has little entropy (block sizes were found in about a thousand guesses with it).
 */
export function designHash(crypto: Crypto, designNonce: string, designText: string): string {
  return saltedTextHash(crypto, designNonce, designText);
}
