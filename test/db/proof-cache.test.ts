/**
 * The proof cache (ADR 0047) on PGlite and on PostgreSQL: a cached batch's proofs equal the uncached ones and
 * verify; a damaged or forged cached context is never served (each use checks it against the database's
 * checkpoint roots); anchors and checkpoints added after a batch was cached show up in its next proofs.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openTestDatabase, engineUnderTest, type TestDb } from "../helpers/db.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { sealAll } from "../../app/log/sealer.server.ts";
import {
  cachedBatchForTests,
  clearProofCache,
  findEntryByRef,
  proofBundle,
  proofCacheStats,
} from "../../app/log/proofs.server.ts";
import { anchorOnce, deploymentTrustPolicy } from "../../app/anchor-worker/anchor-worker.server.ts";
import { verifyBundle } from "../../anchoring/verifier/verify-bundle.ts";
import { fromHex, toHex } from "../../anchoring/log/bytes.ts";
import { MerkleLevels } from "../../anchoring/log/tree.ts";
import { leafHash } from "../../anchoring/log/merkle.ts";
import type { Bundle } from "../../anchoring/verifier/bundle.ts";
import { entryLeafHashes } from "../../db/queries/log.ts";

let t: TestDb;
beforeAll(async () => {
  t = await openTestDatabase();
});
afterAll(async () => {
  await t?.close();
});

async function bundleOf(seq: number): Promise<Bundle> {
  const r = await proofBundle(t.ctx, (await findEntryByRef(t.ctx, String(seq)))!);
  if (r.status !== "sealed") throw new Error(`entry ${seq} is not sealed`);
  return r.bundle;
}
const delta = (before: ReturnType<typeof proofCacheStats>) => {
  const now = proofCacheStats();
  return { hits: now.hits - before.hits, misses: now.misses - before.misses, rejected: now.rejected - before.rejected };
};

async function verdict(b: Bundle) {
  return (await verifyBundle(t.ctx.crypto, b, deploymentTrustPolicy(t.ctx))).verdict;
}

describe(`proof cache on ${engineUnderTest()}`, () => {
  let batchNo = 0;
  let seqs: number[] = [];

  it("serves a cached batch's proofs equal to the uncached ones, and they verify", async () => {
    for (let i = 0; i < 5; i++)
      await createStudy(t.ctx, { code: `PC-${i}`, title: `s${i}`, sites: [{ code: "A", name: "A" }] }, null);
    const [made] = await sealAll(t.ctx);
    expect(made.size).toBeGreaterThanOrEqual(10);
    batchNo = made.batchNo;
    seqs = Array.from({ length: made.size }, (_, i) => made.firstSeq + i);
    clearProofCache();
    const uncached: Bundle[] = [];
    for (const seq of seqs) {
      clearProofCache();
      uncached.push(await bundleOf(seq));
    }
    clearProofCache();
    const s0 = proofCacheStats();
    const first = await bundleOf(seqs[0]); // fills the cache
    const cached: Bundle[] = [];
    for (const seq of seqs) cached.push(await bundleOf(seq));
    expect(delta(s0)).toEqual({ hits: seqs.length, misses: 1, rejected: 0 });
    expect(cached).toEqual(uncached);
    expect(first).toEqual(uncached[0]);
    for (const b of cached) expect(await verdict(b)).toBe("valid");
    expect(proofCacheStats().bytes).toBeGreaterThan(0);
  });

  it("does not serve a cached tree with a damaged node: rebuilds from the database instead", async () => {
    const good = await bundleOf(seqs[2]);
    const hit = cachedBatchForTests(t.ctx, batchNo)!;
    expect(hit).toBeDefined();
    hit.tree.node(0, 3).fill(7); // the sibling of leaf 2: on its path
    const s0 = proofCacheStats();
    const b = await bundleOf(seqs[2]);
    expect(delta(s0)).toEqual({ hits: 0, misses: 1, rejected: 1 });
    expect(b).toEqual(good);
    expect(await verdict(b)).toBe("valid");
  });

  it("does not serve a forged cached tree whose root neither header nor checkpoint root commits to", async () => {
    const good = await bundleOf(seqs[1]);
    const leaves = await entryLeafHashes(t.ctx.db, seqs[0], seqs.length);
    // A tree in which entry 1 sits with a different neighbour: its path leads to the forged tree's own root.
    const forgedLeaves = leaves.map((l, i) => (i === 0 ? leafHash(t.ctx.crypto, new Uint8Array([9])) : l));
    const forged = MerkleLevels.fromLeaves(t.ctx.crypto, forgedLeaves);
    const forgedRoot = forged.root();

    // (a) the forged tree and a batch root to match: the header still names the sealed root.
    let hit = cachedBatchForTests(t.ctx, batchNo)!;
    hit.tree = forged;
    hit.batch = { ...hit.batch, root: forgedRoot };
    let s0 = proofCacheStats();
    expect(await bundleOf(seqs[1])).toEqual(good);
    expect(delta(s0)).toMatchObject({ hits: 0, rejected: 1 });

    // (b) and a header naming the forged root: its leaf is not in the log the database's checkpoint root signs.
    hit = cachedBatchForTests(t.ctx, batchNo)!;
    const headerText = hit.batch.headerText.replace(toHex(hit.batch.root), toHex(forgedRoot));
    expect(headerText).not.toBe(hit.batch.headerText);
    hit.tree = forged;
    hit.batch = { ...hit.batch, root: forgedRoot, headerText };
    hit.header = JSON.parse(headerText);
    s0 = proofCacheStats();
    const b = await bundleOf(seqs[1]);
    expect(delta(s0)).toMatchObject({ hits: 0, rejected: 1 });
    expect(b).toEqual(good);
    expect(fromHex(String(b.batch.header.root))).not.toEqual(forgedRoot);
    expect(await verdict(b)).toBe("valid");
  });

  it("shows an anchor and a checkpoint added after the batch was cached", async () => {
    const before = await bundleOf(seqs[0]);
    expect(before.checkpoints.flatMap((c) => c.anchors)).toEqual([]);
    // A later batch and checkpoint, then the local ledger anchors the latest checkpoint, which covers our batch.
    await createStudy(t.ctx, { code: "PC-LATE", title: "late", sites: [{ code: "A", name: "A" }] }, null);
    const [later] = await sealAll(t.ctx);
    expect(later.treeSize).toBeGreaterThan(before.checkpoints[0].log.treeSize);
    const s0 = proofCacheStats();
    expect(await bundleOf(seqs[0])).toEqual(before); // a new checkpoint alone changes nothing in this bundle
    expect(delta(s0)).toMatchObject({ hits: 1 });
    await anchorOnce(t.ctx, { ledgers: ["local"] });
    const s1 = proofCacheStats();
    const after = await bundleOf(seqs[0]);
    expect(delta(s1)).toMatchObject({ hits: 0, misses: 1 });
    const anchoredSizes = after.checkpoints.filter((c) => c.anchors.length > 0).map((c) => c.log.treeSize);
    expect(anchoredSizes.length).toBeGreaterThan(0);
    expect(after.checkpoints.flatMap((c) => c.anchors.map((a) => (a as { ledger: string }).ledger))).toContain("local");
    expect(await verdict(after)).toBe("valid");
    // And cached again: the next proof of the batch is a hit that carries the anchor too.
    const s2 = proofCacheStats();
    expect(await bundleOf(seqs[3])).toMatchObject({ checkpoints: after.checkpoints });
    expect(delta(s2)).toMatchObject({ hits: 1, misses: 0 });
    clearProofCache();
    expect(await bundleOf(seqs[0])).toEqual(after);
  });
});
