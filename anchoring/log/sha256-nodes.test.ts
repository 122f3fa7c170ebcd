/**
 * The level hasher (ADR 0046) against node:crypto node by node, and MerkleLevels built with it against the
 * per-call implementation (rootOf / inclusionProof on node:crypto) and the RFC 6962 reference roots.
 */
import { createHash, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { nodeCrypto as c } from "../adapters/crypto-node.ts";
import { nobleCrypto } from "./crypto-noble.ts";
import { fromHex, toHex } from "./bytes.ts";
import { consistencyProof, inclusionProof, leafHash, nodeHash, rootOf, verifyInclusion } from "./merkle.ts";
import { hashNodesInto } from "./sha256-nodes.ts";
import { MerkleLevels } from "./tree.ts";

// The default suite checks a bounded sample; `npm run test:long` every size 1..2000 and all the large trees.
const LONG = process.env.TRIALSEAL_LONG === "1";
const VECTORS = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "test", "vectors", "rfc6962");
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const randomLeaves = (n: number) => {
  const all = randomBytes(32 * n);
  return Array.from({ length: n }, (_, i) => new Uint8Array(all.subarray(32 * i, 32 * i + 32)));
};

describe("hashNodesInto: SHA-256(0x01 || left || right) for a whole level", () => {
  it("equals node:crypto on every node, including every value of the last child byte", () => {
    const n = 4096;
    const src = new Uint8Array(randomBytes(64 * n));
    for (let k = 0; k < 256; k++) src[64 * k + 63] = k; // the byte the precomputed second block depends on
    const dst = new Uint8Array(32 * n);
    hashNodesInto(src, 0, n, dst, 0);
    for (let k = 0; k < n; k++) {
      const msg = new Uint8Array(65);
      msg[0] = 1;
      msg.set(src.subarray(64 * k, 64 * k + 64), 1);
      expect(toHex(dst.subarray(32 * k, 32 * k + 32)), `node ${k}`).toBe(sha(msg));
    }
  });

  it("honours the offsets and writes nothing outside its nodes", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 9 }),
        fc.integer({ min: 0, max: 7 }),
        fc.integer({ min: 0, max: 9 }),
        (so, count, dout) => {
          const src = new Uint8Array(randomBytes(so * 32 + 64 * count));
          const dst = new Uint8Array(dout * 32 + 32 * count + 32).fill(0xee);
          hashNodesInto(src, so * 32, count, dst, dout * 32);
          for (let k = 0; k < count; k++) {
            const p = so * 32 + 64 * k;
            const want = toHex(nodeHash(c, src.subarray(p, p + 32), src.subarray(p + 32, p + 64)));
            expect(toHex(dst.subarray(dout * 32 + 32 * k, dout * 32 + 32 * k + 32))).toBe(want);
          }
          expect(dst.subarray(0, dout * 32).every((b) => b === 0xee)).toBe(true);
          expect(dst.subarray(dout * 32 + 32 * count).every((b) => b === 0xee)).toBe(true);
        },
      ),
      { numRuns: 100 },
    );
  });

  it("refuses ranges outside its buffers", () => {
    expect(() => hashNodesInto(new Uint8Array(64), 0, 2, new Uint8Array(64), 0)).toThrow(RangeError);
    expect(() => hashNodesInto(new Uint8Array(128), 0, 2, new Uint8Array(32), 0)).toThrow(RangeError);
    expect(() => hashNodesInto(new Uint8Array(64), 1, 1, new Uint8Array(32), 0)).toThrow(RangeError);
    expect(() => hashNodesInto(new Uint8Array(64), 0, -1, new Uint8Array(32), 0)).toThrow(RangeError);
  });
});

describe("MerkleLevels built level by level", () => {
  it("reproduces the RFC 6962 reference roots", () => {
    const r = JSON.parse(readFileSync(path.join(VECTORS, "roots.json"), "utf8"));
    const leaves = (r.leaves_hex as string[]).map((h) => leafHash(c, fromHex(h)));
    for (const [n, root] of Object.entries(r.roots_hex as Record<string, string>)) {
      expect(toHex(MerkleLevels.fromLeaves(c, leaves.slice(0, Number(n))).root()), `size ${n}`).toBe(root);
    }
  });

  it("equals the per-call implementation for every size 1..300 and sizes up to 2000 (all of them in test:long)", () => {
    const leaves = randomLeaves(2000);
    // Every size up to 300, each size next to a power of two up to 2048, and 100 random sizes up to 2000.
    const sizes = new Set<number>();
    for (let n = 1; n <= (LONG ? 2000 : 300); n++) sizes.add(n);
    for (let p = 512; p <= 2048; p *= 2) for (const n of [p - 1, p, p + 1]) if (n <= 2000) sizes.add(n);
    for (let k = 0; k < 100; k++) sizes.add(301 + Math.floor(Math.random() * 1700));
    for (const n of sizes) {
      const t = MerkleLevels.fromLeaves(c, leaves.slice(0, n));
      expect(toHex(t.root()), `size ${n}`).toBe(toHex(rootOf(c, leaves, 0, n)));
    }
  });

  it("equals the per-call implementation on a large tree (four in test:long), with the same bytes as appending", () => {
    for (const n of LONG ? [65_536, 65_537, 131_071, 300_001] : [65_537]) {
      const leaves = randomLeaves(n);
      const t = MerkleLevels.fromLeaves(c, leaves);
      expect(toHex(t.root()), `size ${n}`).toBe(toHex(rootOf(c, leaves)));
      const one = new MerkleLevels(nobleCrypto);
      for (const l of leaves.slice(0, 5000)) one.append(l);
      expect(toHex(MerkleLevels.fromLeaves(c, leaves.slice(0, 5000)).serialize())).toBe(toHex(one.serialize()));
      const i = n - 3;
      expect(t.inclusionProof(i).map(toHex)).toEqual(inclusionProof(c, leaves, i).map(toHex));
      verifyInclusion(c, i, n, leaves[i], t.inclusionProof(i), rootOf(c, leaves));
    }
  });

  it("gives the same tree extended in chunks of any sizes as built at once, and as appended one by one", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 70 }), { minLength: 1, maxLength: 12 }), (chunks) => {
        const total = chunks.reduce((a, b) => a + b, 0);
        const leaves = randomLeaves(total);
        const ext = new MerkleLevels(c);
        const app = new MerkleLevels(c);
        let at = 0;
        for (const k of chunks) {
          ext.extend(leaves.slice(at, at + k));
          for (const l of leaves.slice(at, at + k)) app.append(l);
          at += k;
          expect(ext.size).toBe(at);
          expect(toHex(ext.serialize())).toBe(toHex(app.serialize()));
          if (at > 0) {
            expect(toHex(ext.root())).toBe(toHex(rootOf(c, leaves, 0, at)));
            const m = Math.max(1, at >> 1);
            expect(ext.consistencyProof(m).map(toHex)).toEqual(consistencyProof(c, leaves, m, at).map(toHex));
          }
        }
      }),
      { numRuns: LONG ? 150 : 40 },
    );
  });

  it("refuses a leaf hash that is not 32 bytes and leaves the tree as it was", () => {
    const t = MerkleLevels.fromLeaves(c, randomLeaves(3));
    const before = toHex(t.serialize());
    expect(() => t.extend([...randomLeaves(2), new Uint8Array(31)])).toThrow(/32 bytes/);
    expect(toHex(t.serialize())).toBe(before);
    expect(t.size).toBe(3);
  });
});
