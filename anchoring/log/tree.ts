/**
 * A Merkle tree kept as flat levels of complete subtrees: level h holds the hashes of the aligned subtrees of
 * 2^h leaves. Appending is amortized O(1) hashes; any RFC 6962 subtree root, inclusion or consistency proof
 * needs only O(log n) hashes; memory is at most 64 bytes per leaf. It serializes to one byte string, so a
 * sealed batch can store its whole tree beside its header.
 */
import type { Crypto } from "./crypto.ts";
import { HASH_SIZE, MerkleError, consistencyProofWith, inclusionProofWith, splitPoint } from "./merkle.ts";
import { hashNodesInto } from "./sha256-nodes.ts";

export class MerkleLevels {
  private levels: Uint8Array[] = [new Uint8Array(64 * HASH_SIZE)];
  private counts: number[] = [0];
  private readonly scratch = new Uint8Array(HASH_SIZE);

  /** `c` hashes the odd subtree roots of ranges; complete nodes are hashed by sha256-nodes.ts (ADR 0046). */
  constructor(private readonly c: Crypto) {}

  get size(): number {
    return this.counts[0];
  }

  /** Hash of the aligned subtree of 2^h leaves number i (a view; do not modify). */
  node(h: number, i: number): Uint8Array {
    return this.levels[h].subarray(i * HASH_SIZE, (i + 1) * HASH_SIZE);
  }

  private push(h: number, hash: Uint8Array): void {
    if (this.levels.length <= h) {
      this.levels.push(new Uint8Array(Math.max(64, (this.levels[h - 1].length >> 1) + HASH_SIZE)));
      this.counts.push(0);
    }
    let buf = this.levels[h];
    const at = this.counts[h] * HASH_SIZE;
    if (at + HASH_SIZE > buf.length) {
      const bigger = new Uint8Array(Math.max(64 * HASH_SIZE, buf.length * 2));
      bigger.set(buf);
      this.levels[h] = buf = bigger;
    }
    buf.set(hash, at);
    this.counts[h]++;
  }

  append(leafHash: Uint8Array): void {
    if (leafHash.length !== HASH_SIZE) throw new MerkleError("BAD_HASH_SIZE", "a leaf hash is 32 bytes");
    this.push(0, leafHash);
    let h = 0;
    let i = this.counts[0] - 1;
    while (i % 2 === 1) {
      // The two children are adjacent in their level: hash them in place into the scratch node (no allocation).
      hashNodesInto(this.levels[h], (i - 1) * HASH_SIZE, 1, this.scratch, 0);
      h++;
      this.push(h, this.scratch);
      i = this.counts[h] - 1;
    }
  }

  /**
   * Append many leaves, then hash each level's new nodes in one call (ADR 0046): no allocation per node, about
   * half the time of one SHA-256 call per node. Same tree as appending the leaves one by one.
   */
  extend(leaves: readonly Uint8Array[]): void {
    for (const l of leaves)
      if (!(l instanceof Uint8Array) || l.length !== HASH_SIZE)
        throw new MerkleError("BAD_HASH_SIZE", "a leaf hash is 32 bytes");
    if (leaves.length === 0) return;
    this.grow(0, this.counts[0] + leaves.length);
    const level0 = this.levels[0];
    let at = this.counts[0] * HASH_SIZE;
    for (const l of leaves) {
      level0.set(l, at);
      at += HASH_SIZE;
    }
    this.counts[0] += leaves.length;
    for (let h = 0; ; h++) {
      const parents = Math.floor(this.counts[h] / 2);
      const have = h + 1 < this.counts.length ? this.counts[h + 1] : 0;
      if (parents === have) break;
      this.grow(h + 1, parents);
      hashNodesInto(this.levels[h], have * 2 * HASH_SIZE, parents - have, this.levels[h + 1], have * HASH_SIZE);
      this.counts[h + 1] = parents;
    }
  }

  /** Make level h hold at least m nodes (doubling, so that repeated extensions copy O(n) bytes in all). */
  private grow(h: number, m: number): void {
    while (this.levels.length <= h) {
      this.levels.push(new Uint8Array(0));
      this.counts.push(0);
    }
    const buf = this.levels[h];
    if (buf.length >= m * HASH_SIZE) return;
    const bigger = new Uint8Array(Math.max(m * HASH_SIZE, buf.length * 2, 64 * HASH_SIZE));
    bigger.set(buf.subarray(0, this.counts[h] * HASH_SIZE));
    this.levels[h] = bigger;
  }

  /** Bytes held by the levels (allocated capacity). */
  get byteLength(): number {
    return this.levels.reduce((a, l) => a + l.length, 0);
  }

  /** Merkle tree hash of leaves [lo, hi), for ranges an RFC 6962 tree of some size is made of. */
  rangeRoot(lo: number, hi: number): Uint8Array {
    if (lo < 0 || hi > this.size || hi < lo)
      throw new MerkleError("BAD_SIZES", `range [${lo}, ${hi}) is outside the tree`);
    return rangeRootFrom(this.c, (h, i) => this.node(h, i), lo, hi);
  }

  root(size = this.size): Uint8Array {
    return this.rangeRoot(0, size);
  }

  inclusionProof(index: number, size = this.size): Uint8Array[] {
    if (size > this.size) throw new MerkleError("INDEX_OUT_OF_RANGE", `tree size ${size} exceeds ${this.size}`);
    return inclusionProofWith((lo, hi) => this.rangeRoot(lo, hi), index, size);
  }

  consistencyProof(size1: number, size2 = this.size): Uint8Array[] {
    if (size2 > this.size) throw new MerkleError("BAD_SIZES", `tree size ${size2} exceeds ${this.size}`);
    return consistencyProofWith((lo, hi) => this.rangeRoot(lo, hi), size1, size2);
  }

  /** All levels, leaves first, each level's used bytes back to back. */
  serialize(): Uint8Array {
    const total = this.counts.reduce((a, n) => a + n, 0) * HASH_SIZE;
    const out = new Uint8Array(total);
    let o = 0;
    this.counts.forEach((n, h) => {
      out.set(this.levels[h].subarray(0, n * HASH_SIZE), o);
      o += n * HASH_SIZE;
    });
    return out;
  }

  /** Rebuild from `serialize()` output of a tree of `size` leaves; checks the length fits. */
  static deserialize(c: Crypto, bytes: Uint8Array, size: number): MerkleLevels {
    const t = new MerkleLevels(c);
    const counts: number[] = [];
    for (let n = size; n > 0; n = Math.floor(n / 2)) counts.push(n);
    if (counts.length === 0) counts.push(0);
    const expected = counts.reduce((a, n) => a + n, 0) * HASH_SIZE;
    if (bytes.length !== expected)
      throw new MerkleError("BAD_SIZES", `stored tree has ${bytes.length} bytes, expected ${expected}`);
    let o = 0;
    t.levels = counts.map((n) => {
      const level = bytes.slice(o, o + n * HASH_SIZE);
      o += n * HASH_SIZE;
      return level.length > 0 ? level : new Uint8Array(64 * HASH_SIZE);
    });
    t.counts = counts;
    return t;
  }

  /** The tree of these leaf hashes, built level by level (`extend`). */
  static fromLeaves(c: Crypto, leaves: Iterable<Uint8Array>): MerkleLevels {
    const t = new MerkleLevels(c);
    const list = Array.isArray(leaves) ? (leaves as readonly Uint8Array[]) : [...leaves];
    t.reserve(list.length);
    t.extend(list);
    return t;
  }

  /** Pre-size every level for `n` leaves, so a tree of known size takes 64 bytes per leaf and no copying. */
  reserve(n: number): void {
    for (let h = 0, m = n; m > 0; h++, m = Math.floor(m / 2)) {
      if (h >= this.levels.length) {
        this.levels.push(new Uint8Array(0));
        this.counts.push(0);
      }
      if (this.levels[h].length < m * HASH_SIZE) {
        const buf = new Uint8Array(m * HASH_SIZE);
        buf.set(this.levels[h].subarray(0, this.counts[h] * HASH_SIZE));
        this.levels[h] = buf;
      }
    }
  }
}

/** A source of complete-subtree hashes: level h (subtrees of 2^h leaves), index i. */
export type NodeSource = (h: number, i: number) => Uint8Array;

/** RFC 6962 subtree root of [lo, hi) from aligned complete subtrees: O(log n) hashes beyond the lookups. */
export function rangeRootFrom(c: Crypto, node: NodeSource, lo: number, hi: number): Uint8Array {
  const n = hi - lo;
  if (n === 0) return c.sha256(new Uint8Array(0));
  if ((n & (n - 1)) === 0 && n <= 2 ** 30 && lo % n === 0) return node(Math.log2(n), lo / n);
  const k = splitPoint(n);
  const l = rangeRootFrom(c, node, lo, lo + k);
  const r = rangeRootFrom(c, node, lo + k, hi);
  const buf = new Uint8Array(1 + 2 * HASH_SIZE);
  buf[0] = 1;
  buf.set(l, 1);
  buf.set(r, 1 + HASH_SIZE);
  return c.sha256(buf);
}

/** Byte offset of node (h, i) in `MerkleLevels.serialize()` output for a tree of `size` leaves. */
export function serializedNodeOffset(size: number, h: number, i: number): number {
  let off = 0;
  for (let j = 0, m = size; j < h; j++, m = Math.floor(m / 2)) off += m;
  return (off + i) * HASH_SIZE;
}

/**
 * The inclusion proof of `index` in a stored tree of `size` leaves, reading only the O(log n) nodes it needs
 * through `fetch` (given their byte offsets in the serialization, it returns their hashes in that order).
 */
export async function inclusionProofFromStored(
  c: Crypto,
  size: number,
  index: number,
  fetch: (offsets: number[]) => Promise<Uint8Array[]>,
): Promise<Uint8Array[]> {
  const wanted: [number, number][] = [];
  const zero = new Uint8Array(HASH_SIZE);
  inclusionProofWith(
    (lo, hi) =>
      rangeRootFrom(
        c,
        (h, i) => {
          wanted.push([h, i]);
          return zero;
        },
        lo,
        hi,
      ),
    index,
    size,
  );
  const got = await fetch(wanted.map(([h, i]) => serializedNodeOffset(size, h, i)));
  if (got.length !== wanted.length)
    throw new MerkleError("WRONG_PROOF_SIZE", "stored tree returned the wrong number of nodes");
  const nodes = new Map(wanted.map(([h, i], k) => [`${h}:${i}`, got[k]]));
  return inclusionProofWith((lo, hi) => rangeRootFrom(c, (h, i) => nodes.get(`${h}:${i}`)!, lo, hi), index, size);
}
