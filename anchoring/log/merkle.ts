/**
 * RFC 6962 / RFC 9162 Merkle trees: hashing (section 2.1.1), inclusion proofs (2.1.3) and consistency
 * proofs (2.1.4). Verification follows the RFC 9162 algorithms in the decomposed form used by
 * transparency-dev/merkle. Pure: SHA-256 comes from the injected Crypto.
 */
import type { Crypto } from "./crypto.ts";
import { bytesEqual, concatBytes } from "./bytes.ts";

export const HASH_SIZE = 32;
const LEAF_PREFIX = new Uint8Array([0]);

export class MerkleError extends Error {
  constructor(
    readonly code: "INDEX_OUT_OF_RANGE" | "WRONG_PROOF_SIZE" | "BAD_HASH_SIZE" | "ROOT_MISMATCH" | "BAD_SIZES",
    message: string,
  ) {
    super(message);
    this.name = "MerkleError";
  }
}

export function leafHash(c: Crypto, data: Uint8Array): Uint8Array {
  return c.sha256(concatBytes(LEAF_PREFIX, data));
}

export function nodeHash(c: Crypto, left: Uint8Array, right: Uint8Array): Uint8Array {
  const buf = new Uint8Array(1 + left.length + right.length);
  buf[0] = 1;
  buf.set(left, 1);
  buf.set(right, 1 + left.length);
  return c.sha256(buf);
}

/** The largest power of two strictly less than n (n >= 2). */
export function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/** RFC 6962 Merkle Tree Hash over leaf hashes [lo, hi). Iterative, O(n) hashes, O(log n) memory. */
export function rootOf(c: Crypto, leaves: readonly Uint8Array[], lo = 0, hi = leaves.length): Uint8Array {
  const n = hi - lo;
  if (n === 0) return c.sha256(new Uint8Array(0));
  // Stack of complete subtrees, left to right; sizes strictly decrease (powers of two).
  const stack: Uint8Array[] = [];
  const sizes: number[] = [];
  for (let i = lo; i < hi; i++) {
    let h = leaves[i];
    let s = 1;
    while (sizes.length > 0 && sizes[sizes.length - 1] === s) {
      h = nodeHash(c, stack.pop()!, h);
      s += sizes.pop()!;
    }
    stack.push(h);
    sizes.push(s);
  }
  let h = stack.pop()!;
  while (stack.length > 0) h = nodeHash(c, stack.pop()!, h);
  return h;
}

/** The Merkle tree hash of leaves [lo, hi); proofs are built from such subtree roots. */
export type RangeRoot = (lo: number, hi: number) => Uint8Array;

/** RFC 6962 PATH(m, D[0:size]): the inclusion proof of leaf `index`, from any subtree-root source. */
export function inclusionProofWith(rangeRoot: RangeRoot, index: number, size: number): Uint8Array[] {
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0 || index >= size) {
    throw new MerkleError("INDEX_OUT_OF_RANGE", `leaf ${index} is not in a tree of size ${size}`);
  }
  const path: Uint8Array[] = [];
  let lo = 0;
  let hi = size;
  // Walk down, collecting siblings root-to-leaf, then reverse (proofs list them leaf-to-root).
  while (hi - lo > 1) {
    const k = splitPoint(hi - lo);
    if (index < lo + k) {
      path.push(rangeRoot(lo + k, hi));
      hi = lo + k;
    } else {
      path.push(rangeRoot(lo, lo + k));
      lo = lo + k;
    }
  }
  return path.reverse();
}

/** RFC 6962 PROOF(size1, D[0:size2]): the consistency proof, from any subtree-root source. */
export function consistencyProofWith(rangeRoot: RangeRoot, size1: number, size2: number): Uint8Array[] {
  if (!Number.isSafeInteger(size1) || !Number.isSafeInteger(size2) || size1 < 0 || size2 < size1) {
    throw new MerkleError("BAD_SIZES", `no consistency proof from ${size1} to ${size2}`);
  }
  if (size1 === 0 || size1 === size2) return [];
  const out: Uint8Array[] = [];
  const sub = (m: number, lo: number, hi: number, complete: boolean) => {
    if (m === hi - lo) {
      if (!complete) out.push(rangeRoot(lo, hi));
      return;
    }
    const k = splitPoint(hi - lo);
    if (m <= k) {
      sub(m, lo, lo + k, complete);
      out.push(rangeRoot(lo + k, hi));
    } else {
      sub(m - k, lo + k, hi, false);
      out.push(rangeRoot(lo, lo + k));
    }
  };
  sub(size1, 0, size2, true);
  return out;
}

/** Inclusion proof over an array of leaf hashes (recomputes subtree roots: O(n) per proof). */
export function inclusionProof(
  c: Crypto,
  leaves: readonly Uint8Array[],
  index: number,
  size = leaves.length,
): Uint8Array[] {
  if (size > leaves.length)
    throw new MerkleError("INDEX_OUT_OF_RANGE", `tree size ${size} exceeds ${leaves.length} leaves`);
  return inclusionProofWith((lo, hi) => rootOf(c, leaves, lo, hi), index, size);
}

/** Consistency proof over an array of leaf hashes. */
export function consistencyProof(
  c: Crypto,
  leaves: readonly Uint8Array[],
  size1: number,
  size2 = leaves.length,
): Uint8Array[] {
  if (size2 > leaves.length) throw new MerkleError("BAD_SIZES", `tree size ${size2} exceeds ${leaves.length} leaves`);
  return consistencyProofWith((lo, hi) => rootOf(c, leaves, lo, hi), size1, size2);
}

// ---- verification (untrusted input: sizes and indexes are checked before use) ----

function bitLen(x: bigint): number {
  return x === 0n ? 0 : x.toString(2).length;
}
function onesCount(x: bigint): number {
  let n = 0;
  for (const ch of x.toString(2)) if (ch === "1") n++;
  return n;
}
function trailingZeros(x: bigint): number {
  if (x === 0n) return 64;
  let n = 0;
  while ((x & 1n) === 0n) {
    x >>= 1n;
    n++;
  }
  return n;
}

function checkSize(name: string, v: number): bigint {
  if (!Number.isSafeInteger(v) || v < 0) throw new MerkleError("BAD_SIZES", `${name} must be a non-negative integer`);
  return BigInt(v);
}

function checkHashes(list: readonly Uint8Array[], what: string): void {
  for (const h of list)
    if (!(h instanceof Uint8Array) || h.length !== HASH_SIZE)
      throw new MerkleError("BAD_HASH_SIZE", `${what} has an element that is not ${HASH_SIZE} bytes`);
}

function decomp(index: bigint, size: bigint): [number, number] {
  const inner = bitLen(index ^ (size - 1n));
  const border = onesCount(index >> BigInt(inner));
  return [inner, border];
}

function chainInner(c: Crypto, seed: Uint8Array, proof: readonly Uint8Array[], index: bigint): Uint8Array {
  proof.forEach((h, i) => {
    seed = ((index >> BigInt(i)) & 1n) === 0n ? nodeHash(c, seed, h) : nodeHash(c, h, seed);
  });
  return seed;
}
function chainInnerRight(c: Crypto, seed: Uint8Array, proof: readonly Uint8Array[], index: bigint): Uint8Array {
  proof.forEach((h, i) => {
    if (((index >> BigInt(i)) & 1n) === 1n) seed = nodeHash(c, h, seed);
  });
  return seed;
}
function chainBorderRight(c: Crypto, seed: Uint8Array, proof: readonly Uint8Array[]): Uint8Array {
  for (const h of proof) seed = nodeHash(c, h, seed);
  return seed;
}

/** The root implied by an inclusion proof; throws MerkleError on malformed input. */
export function rootFromInclusionProof(
  c: Crypto,
  index: number,
  size: number,
  leaf: Uint8Array,
  proof: readonly Uint8Array[],
): Uint8Array {
  const i = checkSize("leaf index", index);
  const n = checkSize("tree size", size);
  if (i >= n) throw new MerkleError("INDEX_OUT_OF_RANGE", `leaf index ${index} is not below tree size ${size}`);
  checkHashes([leaf], "leaf hash");
  checkHashes(proof, "inclusion proof");
  const [inner, border] = decomp(i, n);
  if (proof.length !== inner + border)
    throw new MerkleError("WRONG_PROOF_SIZE", `inclusion proof has ${proof.length} hashes, expected ${inner + border}`);
  return chainBorderRight(c, chainInner(c, leaf, proof.slice(0, inner), i), proof.slice(inner));
}

export function verifyInclusion(
  c: Crypto,
  index: number,
  size: number,
  leaf: Uint8Array,
  proof: readonly Uint8Array[],
  root: Uint8Array,
): void {
  const got = rootFromInclusionProof(c, index, size, leaf, proof);
  if (!bytesEqual(got, root)) throw new MerkleError("ROOT_MISMATCH", "inclusion proof does not lead to the root");
}

export function verifyConsistency(
  c: Crypto,
  size1: number,
  size2: number,
  proof: readonly Uint8Array[],
  root1: Uint8Array,
  root2: Uint8Array,
): void {
  const n1 = checkSize("size1", size1);
  const n2 = checkSize("size2", size2);
  checkHashes(proof, "consistency proof");
  if (n2 < n1) throw new MerkleError("BAD_SIZES", `size2 (${size2}) is smaller than size1 (${size1})`);
  if (n1 === 0n) throw new MerkleError("BAD_SIZES", "a consistency proof from the empty tree proves nothing");
  if (n1 === n2) {
    if (proof.length > 0) throw new MerkleError("WRONG_PROOF_SIZE", "sizes are equal but the proof is not empty");
    if (!bytesEqual(root1, root2)) throw new MerkleError("ROOT_MISMATCH", "equal sizes with different roots");
    return;
  }
  if (proof.length === 0) throw new MerkleError("WRONG_PROOF_SIZE", "empty consistency proof");
  checkHashes([root1, root2], "root");
  let [inner, border] = decomp(n1 - 1n, n2);
  const shift = trailingZeros(n1);
  inner -= shift;
  let seed = proof[0];
  let start = 1;
  if (n1 === 1n << BigInt(shift)) {
    seed = root1;
    start = 0;
  }
  if (proof.length !== start + inner + border)
    throw new MerkleError(
      "WRONG_PROOF_SIZE",
      `consistency proof has ${proof.length} hashes, expected ${start + inner + border}`,
    );
  const rest = proof.slice(start);
  const mask = (n1 - 1n) >> BigInt(shift);
  const h1 = chainBorderRight(c, chainInnerRight(c, seed, rest.slice(0, inner), mask), rest.slice(inner));
  if (!bytesEqual(h1, root1))
    throw new MerkleError("ROOT_MISMATCH", "consistency proof does not lead to the first root");
  const h2 = chainBorderRight(c, chainInner(c, seed, rest.slice(0, inner), mask), rest.slice(inner));
  if (!bytesEqual(h2, root2))
    throw new MerkleError("ROOT_MISMATCH", "consistency proof does not lead to the second root");
}
