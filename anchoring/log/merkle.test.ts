import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { MerkleTree } from "merkletreejs";
import fc from "fast-check";
import { createHash } from "node:crypto";
import { nodeCrypto as c } from "../adapters/crypto-node.ts";
import { fromBase64, fromHex, toHex } from "./bytes.ts";
import { consistencyProof, inclusionProof, leafHash, rootOf, verifyConsistency, verifyInclusion } from "./merkle.ts";

const VECTORS = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "test", "vectors", "rfc6962");

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = path.join(dir, n);
    return statSync(p).isDirectory() ? walk(p) : p.endsWith(".json") ? [p] : [];
  });
}

const b64 = (s: string | null) => (s === null ? new Uint8Array(0) : fromBase64(s));

describe("RFC 6962/9162 vectors (test/vectors/rfc6962, from transparency-dev/merkle)", () => {
  const inclusion = walk(path.join(VECTORS, "inclusion"));
  const consistency = walk(path.join(VECTORS, "consistency"));

  it("has the vectors", () => {
    expect(inclusion.length).toBeGreaterThan(50);
    expect(consistency.length).toBeGreaterThan(50);
  });

  it("accepts every valid inclusion vector and rejects every wantErr one", () => {
    for (const f of inclusion) {
      const v = JSON.parse(readFileSync(f, "utf8"));
      const run = () =>
        verifyInclusion(c, v.leafIdx, v.treeSize, b64(v.leafHash), (v.proof ?? []).map(b64), b64(v.root));
      if (v.wantErr) expect(run, path.relative(VECTORS, f)).toThrow();
      else expect(run, path.relative(VECTORS, f)).not.toThrow();
    }
  });

  it("accepts every valid consistency vector and rejects every wantErr one", () => {
    for (const f of consistency) {
      const v = JSON.parse(readFileSync(f, "utf8"));
      const run = () => verifyConsistency(c, v.size1, v.size2, (v.proof ?? []).map(b64), b64(v.root1), b64(v.root2));
      if (v.wantErr) expect(run, path.relative(VECTORS, f)).toThrow();
      else expect(run, path.relative(VECTORS, f)).not.toThrow();
    }
  });

  it("reproduces the RFC 6962 reference roots", () => {
    const r = JSON.parse(readFileSync(path.join(VECTORS, "roots.json"), "utf8"));
    const leaves = (r.leaves_hex as string[]).map((h) => leafHash(c, fromHex(h)));
    for (const [n, root] of Object.entries(r.roots_hex as Record<string, string>)) {
      expect(toHex(rootOf(c, leaves.slice(0, Number(n))))).toBe(root);
    }
  });
});

const leavesOf = (n: number) => Array.from({ length: n }, (_, i) => leafHash(c, new TextEncoder().encode(`leaf ${i}`)));

describe("our trees and proofs", () => {
  it("match merkletreejs (configured for RFC 6962) on random sizes 1..2000", () => {
    const sha = (d: Buffer) => createHash("sha256").update(d).digest();
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 2000 }), (n) => {
        const leaves = leavesOf(n);
        const mt = new MerkleTree(
          leaves.map((l) => Buffer.from(l)),
          sha,
          { concatenator: ([l, r]: Buffer[]) => Buffer.concat([Buffer.from([1]), l, r]) },
        );
        expect(toHex(rootOf(c, leaves))).toBe(mt.getRoot().toString("hex"));
      }),
      { numRuns: 60 },
    );
  });

  it("generate inclusion and consistency proofs that verify, and that fail when altered", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 300 }), fc.nat(), fc.nat(), (n, a, b) => {
        const leaves = leavesOf(n);
        const root = rootOf(c, leaves);
        const i = a % n;
        const proof = inclusionProof(c, leaves, i);
        verifyInclusion(c, i, n, leaves[i], proof, root);
        if (n > 1) expect(() => verifyInclusion(c, (i + 1) % n, n, leaves[i], proof, root)).toThrow();
        if (proof.length > 0) expect(() => verifyInclusion(c, i, n, leaves[i], proof.slice(0, -1), root)).toThrow();
        const m = (b % n) + 1;
        const cp = consistencyProof(c, leaves, m, n);
        verifyConsistency(c, m, n, cp, rootOf(c, leaves, 0, m), root);
        if (cp.length > 0) {
          const bad = cp.map((h) => h.slice());
          bad[0][0] ^= 1;
          expect(() => verifyConsistency(c, m, n, bad, rootOf(c, leaves, 0, m), root)).toThrow();
        }
      }),
      { numRuns: 200 },
    );
  });

  it("rejects indexes and sizes that are not safe non-negative integers", () => {
    const leaves = leavesOf(4);
    const root = rootOf(c, leaves);
    const proof = inclusionProof(c, leaves, 1);
    for (const [i, n] of [
      [-1, 4],
      [1.5, 4],
      [1, 2 ** 60],
      [Number.NaN, 4],
      [4, 4],
    ]) {
      expect(() => verifyInclusion(c, i, n, leaves[1], proof, root)).toThrow();
    }
  });
});
