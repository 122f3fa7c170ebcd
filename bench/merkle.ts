/**
 * Merkle tree building side by side (ADR 0046), called by `npm run bench` (bench/run.ts) or alone:
 * `npx tsx bench/merkle.ts [leaves...]`. Every method builds the RFC 6962 tree (or root) of the same leaves; each
 * round runs all methods one after the other and the medians of the rounds are compared, so that a busy machine
 * slows them alike. The baseline is the per-call floor: n - 1 bare `crypto.hash` calls on 65 bytes, doing nothing
 * else (what any one-call-per-node build costs at least).
 */
import { createHash, hash } from "node:crypto";
import { fileURLToPath } from "node:url";
import { MerkleTree } from "merkletreejs";
import { nodeCrypto } from "../anchoring/adapters/crypto-node.ts";
import { HASH_SIZE, inclusionProof, leafHash, rootOf, verifyInclusion } from "../anchoring/log/merkle.ts";
import { MerkleLevels } from "../anchoring/log/tree.ts";
import { toHex } from "../anchoring/log/bytes.ts";

/**
 * The flat levels as built before ADR 0046: one `crypto.hash` call per interior node, from a reused 65-byte scratch
 * buffer into the level (what `MerkleLevels.append` did). Kept here as the measured "before".
 */
function perCallLevelsRoot(leaves: readonly Uint8Array[]): Uint8Array {
  const n = leaves.length;
  const levels: Uint8Array[] = [];
  const counts: number[] = [];
  for (let m = n; m > 0; m = Math.floor(m / 2)) {
    levels.push(new Uint8Array(m * HASH_SIZE));
    counts.push(0);
  }
  const s = new Uint8Array(1 + 2 * HASH_SIZE);
  s[0] = 1;
  for (const leaf of leaves) {
    levels[0].set(leaf, counts[0] * HASH_SIZE);
    counts[0]++;
    let h = 0;
    let i = counts[0] - 1;
    while (i % 2 === 1) {
      const from = (i - 1) * HASH_SIZE;
      for (let k = 0; k < 2 * HASH_SIZE; k++) s[1 + k] = levels[h][from + k];
      const parent = hash("sha256", s, "buffer") as unknown as Uint8Array;
      h++;
      levels[h].set(parent, counts[h] * HASH_SIZE);
      counts[h]++;
      i = counts[h] - 1;
    }
  }
  // The root over the levels' complete subtrees, as MerkleLevels.root() does.
  const t = MerkleLevels.deserialize(
    nodeCrypto,
    (() => {
      const out = new Uint8Array(counts.reduce((a, m) => a + m, 0) * HASH_SIZE);
      let o = 0;
      counts.forEach((m, h) => {
        out.set(levels[h].subarray(0, m * HASH_SIZE), o);
        o += m * HASH_SIZE;
      });
      return out;
    })(),
    n,
  );
  return t.root();
}

function median(xs: number[]) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}
function time(fn: () => unknown): number {
  const t = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t) / 1e6;
}

export interface MerkleFigures {
  leaves: number;
  rounds: number;
  /** Baseline: n - 1 bare crypto.hash calls on 65 bytes. */
  floorMs: number;
  /** MerkleLevels.fromLeaves: whole levels per call (ADR 0046). */
  levelsMs: number;
  /** MerkleLevels built by n appends (one node per call of the level hasher). */
  appendMs: number;
  /** The flat levels before ADR 0046 (one crypto.hash call per node). */
  perCallLevelsMs: number;
  /** rootOf: the O(log n)-memory stack, one crypto.hash call per node. */
  stackMs: number;
  merkletreejsMs: number;
  ratioToFloor: number;
  perCallRatioToFloor: number;
  merkletreejsRatioToFloor: number;
  bytesPerLeaf: number;
  allPathsMs: number;
  verifyPerSec: number;
}

export function benchMerkleSize(n: number, rounds: number): MerkleFigures {
  const leaves = Array.from({ length: n }, (_, i) => leafHash(nodeCrypto, new TextEncoder().encode(`leaf ${i}`)));
  const buf = new Uint8Array(65);
  buf[0] = 1;
  const sha = (d: Buffer) => createHash("sha256").update(d).digest();
  const mtLeaves = leaves.map((l) => Buffer.from(l));
  // The same root from every method (merkletreejs configured for RFC 6962: see ../shared/STACK.md).
  const want = toHex(rootOf(nodeCrypto, leaves));
  const got = {
    levels: toHex(MerkleLevels.fromLeaves(nodeCrypto, leaves).root()),
    perCall: toHex(perCallLevelsRoot(leaves)),
    mt: new MerkleTree(mtLeaves, sha, {
      concatenator: ([l, r]: Buffer[]) => Buffer.concat([Buffer.from([1]), l, r]),
    })
      .getRoot()
      .toString("hex"),
  };
  for (const [k, v] of Object.entries(got)) if (v !== want) throw new Error(`${k} root differs at ${n} leaves`);
  const t: Record<string, number[]> = { floor: [], levels: [], append: [], perCall: [], stack: [], mt: [] };
  for (let r = 0; r < rounds; r++) {
    t.floor.push(
      time(() => {
        for (let i = 1; i < n; i++) hash("sha256", buf, "buffer");
      }),
    );
    t.levels.push(time(() => MerkleLevels.fromLeaves(nodeCrypto, leaves).root()));
    t.append.push(
      time(() => {
        const m = new MerkleLevels(nodeCrypto);
        for (const l of leaves) m.append(l);
        m.root();
      }),
    );
    t.perCall.push(time(() => perCallLevelsRoot(leaves)));
    t.stack.push(time(() => rootOf(nodeCrypto, leaves)));
    if (n <= 1_000_000 && (r < 2 || n < 1_000_000))
      t.mt.push(
        time(() =>
          new MerkleTree(mtLeaves, sha, {
            concatenator: ([l, r]: Buffer[]) => Buffer.concat([Buffer.from([1]), l, r]),
          }).getRoot(),
        ),
      );
  }
  const tree = MerkleLevels.fromLeaves(nodeCrypto, leaves);
  const pathsFor = Math.min(n, 100_000);
  const allPaths =
    (time(() => {
      for (let i = 0; i < pathsFor; i++) tree.inclusionProof(i);
    }) *
      n) /
    pathsFor;
  const root = tree.root();
  const proof = tree.inclusionProof(n >> 1);
  if (
    n <= 2000 &&
    proof.map(toHex).join() !==
      inclusionProof(nodeCrypto, leaves, n >> 1)
        .map(toHex)
        .join()
  )
    throw new Error("inclusion proofs differ");
  const verifyMs = median(
    Array.from({ length: 5 }, () =>
      time(() => {
        for (let k = 0; k < 1000; k++) verifyInclusion(nodeCrypto, n >> 1, n, leaves[n >> 1], proof, root);
      }),
    ),
  );
  const floorMs = median(t.floor);
  const levelsMs = median(t.levels);
  const merkletreejsMs = median(t.mt);
  return {
    leaves: n,
    rounds,
    floorMs,
    levelsMs,
    appendMs: median(t.append),
    perCallLevelsMs: median(t.perCall),
    stackMs: median(t.stack),
    merkletreejsMs,
    ratioToFloor: levelsMs / floorMs,
    perCallRatioToFloor: median(t.perCall) / floorMs,
    merkletreejsRatioToFloor: merkletreejsMs / floorMs,
    bytesPerLeaf: tree.byteLength / n,
    allPathsMs: allPaths,
    verifyPerSec: 1000 / (verifyMs / 1000),
  };
}

const fmt = (ms: number) =>
  ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : ms >= 1 ? `${ms.toFixed(1)} ms` : `${(ms * 1000).toFixed(1)} us`;

export function printMerkle(f: MerkleFigures, log: (s: string) => void = console.log): void {
  const row = (label: string, ms: number, target?: string) =>
    log(
      `${label.padEnd(44)} ${fmt(ms).padStart(10)}   baseline ${fmt(f.floorMs).padStart(10)}   ratio ` +
        `${(ms / f.floorMs).toFixed(2).padStart(6)}${target ? `   target ${target}` : ""}`,
    );
  log(`${`per-call floor: ${f.leaves - 1} x crypto.hash(65 B)`.padEnd(44)} ${fmt(f.floorMs).padStart(10)}`);
  row(`root over ${f.leaves} leaves (level hashing)`, f.levelsMs, "<= 1.2 (stretch 0.5)");
  row(`root over ${f.leaves} leaves (appends, 1 node/call)`, f.appendMs);
  row(`root over ${f.leaves} leaves (levels, crypto.hash/node)`, f.perCallLevelsMs);
  row(`root over ${f.leaves} leaves (stack, O(log n) memory)`, f.stackMs);
  row(`root over ${f.leaves} leaves, merkletreejs`, f.merkletreejsMs);
  log(`${"  memory of the stored tree".padEnd(44)} ${f.bytesPerLeaf.toFixed(1).padStart(10)} B/leaf   target <= 80`);
  log(
    `${"  all inclusion paths".padEnd(44)} ${fmt(f.allPathsMs).padStart(10)}   ` +
      `(${Math.round(f.leaves / (f.allPathsMs / 1000))} proofs/s)`,
  );
  log(`${"  inclusion verifications".padEnd(44)} ${Math.round(f.verifyPerSec).toString().padStart(10)} /s`);
}

export function benchMerkle(sizes: number[], log: (s: string) => void = console.log): MerkleFigures[] {
  return sizes.map((n) => {
    const f = benchMerkleSize(n, n >= 1_000_000 ? 5 : 7);
    printMerkle(f, log);
    return f;
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const sizes = process.argv.slice(2).map(Number);
  const out = benchMerkle(sizes.length ? sizes : [1_000, 10_000, 100_000, 1_000_000]);
  console.log(JSON.stringify(out, null, 2));
}
