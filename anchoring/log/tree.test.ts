import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { nodeCrypto as c } from "../adapters/crypto-node.ts";
import { toHex } from "./bytes.ts";
import { consistencyProof, inclusionProof, leafHash, rootOf, verifyConsistency, verifyInclusion } from "./merkle.ts";
import { MerkleLevels } from "./tree.ts";

const leavesOf = (n: number) => Array.from({ length: n }, (_, i) => leafHash(c, new TextEncoder().encode(`leaf ${i}`)));

describe("MerkleLevels (flat levels of complete subtrees)", () => {
  it("gives the same roots and proofs as the direct RFC 6962 definitions, for every prefix size", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 200 }), fc.nat(), (n, a) => {
        const leaves = leavesOf(n);
        const t = MerkleLevels.fromLeaves(c, leaves);
        const size = (a % n) + 1;
        expect(toHex(t.root(size))).toBe(toHex(rootOf(c, leaves, 0, size)));
        const i = a % size;
        expect(t.inclusionProof(i, size).map(toHex)).toEqual(inclusionProof(c, leaves, i, size).map(toHex));
        expect(t.consistencyProof(size, n).map(toHex)).toEqual(consistencyProof(c, leaves, size, n).map(toHex));
        verifyInclusion(c, i, size, leaves[i], t.inclusionProof(i, size), t.root(size));
        if (size < n) verifyConsistency(c, size, n, t.consistencyProof(size, n), t.root(size), t.root(n));
      }),
      { numRuns: 300 },
    );
  });

  it("serializes and restores exactly, and refuses a stored tree of the wrong length", () => {
    for (const n of [1, 2, 3, 7, 8, 9, 100]) {
      const t = MerkleLevels.fromLeaves(c, leavesOf(n));
      const bytes = t.serialize();
      expect(bytes.length).toBeLessThanOrEqual(64 * n);
      const back = MerkleLevels.deserialize(c, bytes, n);
      expect(toHex(back.root())).toBe(toHex(t.root()));
      expect(back.inclusionProof(n - 1).map(toHex)).toEqual(t.inclusionProof(n - 1).map(toHex));
      expect(() => MerkleLevels.deserialize(c, bytes.slice(32), n)).toThrow(/expected/);
      back.append(leafHash(c, new Uint8Array([1])));
      expect(toHex(back.root())).toBe(toHex(rootOf(c, [...leavesOf(n), leafHash(c, new Uint8Array([1]))])));
    }
  });

  it("rejects ranges and indexes outside the tree", () => {
    const t = MerkleLevels.fromLeaves(c, leavesOf(5));
    expect(() => t.inclusionProof(5)).toThrow();
    expect(() => t.inclusionProof(0, 6)).toThrow();
    expect(() => t.rangeRoot(2, 9)).toThrow();
  });
});

describe("inclusion proofs read from a stored tree", () => {
  it("equal the in-memory proofs while reading only O(log n) nodes", async () => {
    const { inclusionProofFromStored } = await import("./tree.ts");
    for (const n of [1, 2, 5, 8, 13, 100, 1000]) {
      const t = MerkleLevels.fromLeaves(c, leavesOf(n));
      const bytes = t.serialize();
      let reads = 0;
      for (const i of [0, n >> 1, n - 1]) {
        const p = await inclusionProofFromStored(c, n, i, async (offs) => {
          reads = offs.length;
          return offs.map((o) => bytes.slice(o, o + 32));
        });
        expect(p.map(toHex)).toEqual(t.inclusionProof(i).map(toHex));
        expect(reads).toBeLessThanOrEqual(2 * Math.ceil(Math.log2(n + 1)) + 1);
      }
    }
  });
});
