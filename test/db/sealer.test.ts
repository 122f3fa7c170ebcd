import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openTestDatabase, engineUnderTest, type TestDb } from "../helpers/db.ts";
import { sleep, waitFor } from "../helpers/wait.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { sealAll, sealNow } from "../../app/log/sealer.server.ts";
import { consistencyBetween, findEntryByRef, latestCheckpoint, proofBundle } from "../../app/log/proofs.server.ts";
import { trustPolicy } from "../../app/keys/log-keys.server.ts";
import { verifyBundle } from "../../anchoring/verifier/verify-bundle.ts";
import { nobleCrypto } from "../../anchoring/log/crypto-noble.ts";
import { fromHex } from "../../anchoring/log/bytes.ts";
import { verifyConsistency, rootOf, leafHash } from "../../anchoring/log/merkle.ts";
import { parseCheckpoint, parseNote } from "../../anchoring/log/checkpoint.ts";
import type { Bundle } from "../../anchoring/verifier/bundle.ts";

let t: TestDb;
beforeAll(async () => {
  t = await openTestDatabase();
});
afterAll(async () => {
  await t?.close();
});

async function bundleOf(ref: string): Promise<Bundle> {
  const e = await findEntryByRef(t.ctx, ref);
  const r = await proofBundle(t.ctx, e!);
  if (r.status !== "sealed") throw new Error("not sealed");
  return r.bundle;
}

describe(`sealer and proofs on ${engineUnderTest()}`, () => {
  it(
    "seals pending entries into consecutive batches with gapless seq and studySeq, " + "and signs checkpoints",
    async () => {
      await createStudy(
        t.ctx,
        {
          code: "SEAL-1",
          title: "One",
          sites: [
            { code: "A", name: "A" },
            { code: "B", name: "B" },
          ],
        },
        null,
      );
      const [pendingId] = (await t.database.execute(`SELECT id FROM ledger_entries LIMIT 1`)).map((r) => String(r.id));
      expect((await proofBundle(t.ctx, (await findEntryByRef(t.ctx, pendingId))!)).status).toBe("pending");
      const b0 = await sealNow(t.ctx);
      // study.registered, two site.added and the study.create audit event (audit.event, ADR 0016)
      expect(b0).toMatchObject({ batchNo: 0, firstSeq: 0, size: 4, treeSize: 1 });
      expect(await sealNow(t.ctx)).toBeNull();
      await createStudy(t.ctx, { code: "SEAL-2", title: "Two", sites: [{ code: "A", name: "A" }] }, null);
      await createStudy(t.ctx, { code: "SEAL-3", title: "Three", sites: [{ code: "A", name: "A" }] }, null);
      const made = await sealAll(t.ctx);
      expect(made.map((m) => [m.batchNo, m.firstSeq, m.size])).toEqual([[1, 4, 6]]);
      const rows = await t.database.execute(`SELECT seq, study_seq, study_code FROM ledger_entries ORDER BY seq`);
      expect(rows.map((r) => Number(r.seq))).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
      const perStudy = new Map<string, number[]>();
      for (const r of rows)
        perStudy.set(String(r.study_code), [...(perStudy.get(String(r.study_code)) ?? []), Number(r.study_seq)]);
      for (const seqs of perStudy.values()) expect(seqs).toEqual(seqs.map((_, i) => i));
      const cp = await latestCheckpoint(t.ctx);
      expect(cp?.treeSize).toBe(2);
      expect(parseCheckpoint(parseNote(cp!.noteText).text)).toMatchObject({ origin: t.ctx.env.logOrigin, treeSize: 2 });
    },
  );

  it(
    "serves bundles that verify (node and noble crypto alike) and that fail, naming the step, " + "when altered",
    async () => {
      const policy = trustPolicy(t.ctx.crypto, t.ctx.env.logOrigin, t.ctx.signer);
      for (const seq of ["0", "2", "3", "6"]) {
        const b = await bundleOf(seq);
        const r = await verifyBundle(t.ctx.crypto, b, policy);
        expect(
          r.verdict,
          `seq ${seq}: ${JSON.stringify(r.steps.filter((s) => s.status === "failed"))} ${b.checkpoints[0].note}`,
        ).toBe("valid");
        expect((await verifyBundle(nobleCrypto, b, policy)).verdict).toBe("valid");
      }
      const b = await bundleOf("4");
      const failOf = async (mut: (x: any) => void) => {
        const x = structuredClone(b) as any;
        mut(x);
        return (await verifyBundle(t.ctx.crypto, x, policy)).steps.find((s) => s.status === "failed")?.code;
      };
      expect(await failOf((x) => (x.payload.v = 99))).toBe("PAYLOAD_SCHEMA");
      expect(await failOf((x) => (x.payload.salt = "A".repeat(22)))).toBe("PAYLOAD_HASH_MISMATCH");
      expect(await failOf((x) => (x.envelope.seq += 1))).toBe("SEQ_MISMATCH");
      expect(await failOf((x) => (x.envelope.at = "2020-01-01T00:00:00.000Z"))).toBe("BATCH_INCLUSION_FAILED");
      expect(await failOf((x) => (x.batch.leafIndex = x.batch.header.size))).toBe("LEAF_INDEX_OUT_OF_RANGE");
      expect(await failOf((x) => x.batch.inclusion.pop())).toBe("BATCH_INCLUSION_FAILED");
      expect(await failOf((x) => (x.batch.header.sealedAt = "2020-01-01T00:00:00.000Z"))).toBe("LOG_INCLUSION_FAILED");
      expect(await failOf((x) => (x.checkpoints[0].note = x.checkpoints[0].note.replace(/\n2\n/, "\n3\n")))).toBe(
        "TREE_SIZE_MISMATCH",
      );
      expect(await failOf((x) => (x.checkpoints[0].log.index = 0))).toBe("LOG_INDEX_MISMATCH");
      expect(await failOf((x) => (x.envelope.log = "evil.example/log"))).toBe("ORIGIN_MISMATCH");
      expect(await failOf((x) => (x.format = "other"))).toBe("BUNDLE_MALFORMED");
      // A signature by another key, or a key not valid for this size, is refused.
      const other = trustPolicy(
        t.ctx.crypto,
        t.ctx.env.logOrigin,
        (await import("../../anchoring/adapters/crypto-node.ts")).nodeSigner(new Uint8Array(32).fill(7)),
      );
      expect((await verifyBundle(t.ctx.crypto, b, other)).steps.find((s) => s.status === "failed")?.code).toBe(
        "SIGNATURE_INVALID",
      );
      const expired = { ...policy, logKeys: [{ ...policy.logKeys[0], untilSize: 1 }] };
      expect((await verifyBundle(t.ctx.crypto, b, expired)).steps.find((s) => s.status === "failed")?.code).toBe(
        "NO_VALID_KEY",
      );
    },
  );

  it("rejects every sampled mutation of real sealed bundles with the specific step code (fast-check)", async () => {
    const fc = (await import("fast-check")).default;
    const { firstFailure, mutationArb } = await import("../helpers/mutations.ts");
    const policy = trustPolicy(t.ctx.crypto, t.ctx.env.logOrigin, t.ctx.signer);
    const real = await Promise.all(["0", "2", "3", "5", "6"].map(bundleOf));
    await fc.assert(
      fc.asyncProperty(fc.nat({ max: real.length - 1 }), mutationArb(real), async (i, m) => {
        const r = await firstFailure(real[i], policy, m);
        expect(r.verdict, m.name).toBe("invalid");
        expect(m.codes, `${m.name}: got ${r.code}`).toContain(r.code);
      }),
      { numRuns: 300 },
    );
  });

  it("proves consistency between checkpoints, and a forked (rewritten) log is detected", async () => {
    const cps = await t.database.execute(`SELECT tree_size, note_text FROM checkpoints ORDER BY tree_size`);
    const roots = cps.map((c) => parseCheckpoint(parseNote(String(c.note_text)).text).root);
    const p = await consistencyBetween(t.ctx, 1, 2);
    verifyConsistency(t.ctx.crypto, 1, 2, p.proof.map(fromHex), roots[0], roots[1]);
    await expect(consistencyBetween(t.ctx, 0, 2)).rejects.toMatchObject({ field: "from" });
    await expect(consistencyBetween(t.ctx, 1, 3)).rejects.toMatchObject({ field: "to" });
    // A fork: batch 0 rewritten, so the log of size 2 has another root; the proof does not connect it.
    const leaves = (
      await t.database.execute(`SELECT encode(leaf_hash, 'hex') AS h FROM batches ORDER BY batch_no`)
    ).map((r) => fromHex(String(r.h)));
    const forged = [leafHash(t.ctx.crypto, new TextEncoder().encode("rewritten batch 0")), leaves[1]];
    expect(() =>
      verifyConsistency(t.ctx.crypto, 1, 2, p.proof.map(fromHex), roots[0], rootOf(t.ctx.crypto, forged)),
    ).toThrow(/root/);
    expect(() => verifyConsistency(t.ctx.crypto, 1, 2, p.proof.map(fromHex), forged[0], roots[1])).toThrow(/root/);
  });

  it("never assigns a seq twice under concurrent sealers and writers", async () => {
    const writes = Array.from({ length: 12 }, (_, i) =>
      createStudy(t.ctx, { code: `CONC-${i}`, title: "c", sites: [{ code: "A", name: "A" }] }, null),
    );
    const seals = Array.from({ length: 6 }, () => sealNow(t.ctx));
    await Promise.all([...writes, ...seals]);
    await sealAll(t.ctx);
    const [agg] = await t.database.execute(
      `SELECT count(*)::int AS n, count(DISTINCT seq)::int AS d, min(seq)::int AS lo, ` +
        `max(seq)::int AS hi, count(*) FILTER (WHERE status = 'pending')::int AS p ` +
        `FROM ledger_entries`,
    );
    expect(agg.p).toBe(0);
    expect(agg.d).toBe(agg.n);
    expect(agg.lo).toBe(0);
    expect(agg.hi).toBe(Number(agg.n) - 1);
    const gaps = await t.database.execute(
      `SELECT b.batch_no FROM batches b JOIN batches n ON n.batch_no = b.batch_no + 1 ` +
        `WHERE n.first_seq <> b.first_seq + b.size`,
    );
    expect(gaps).toEqual([]);
  });
});

describe(`sealer crash safety and proof storage on ${engineUnderTest()}`, () => {
  it("a seal that fails part-way leaves no batch, no checkpoint and every entry still pending", async () => {
    const { sealOnce } = await import("../../anchoring/log/sealer.ts");
    const { ledgerStore } = await import("../../db/log-store.ts");
    await createStudy(t.ctx, { code: "CRASH-1", title: "c", sites: [{ code: "A", name: "A" }] }, null);
    const real = ledgerStore(t.ctx.db);
    const crashing = {
      transaction: <T>(fn: (tx: any) => Promise<T>) =>
        real.transaction((tx) =>
          fn({
            ...tx,
            insertCheckpoint: async () => {
              throw new Error("simulated crash before the checkpoint is written");
            },
          }),
        ),
    };
    const before = await t.database.execute(
      `SELECT (SELECT count(*) FROM batches)::int AS b, (SELECT count(*) ` +
        `FROM checkpoints)::int AS c, (SELECT count(*) FROM ledger_entries ` +
        `WHERE status = 'pending')::int AS p`,
    );
    await expect(
      sealOnce(crashing, { origin: t.ctx.env.logOrigin, maxBatch: 100, crypto: t.ctx.crypto, signer: t.ctx.signer }),
    ).rejects.toThrow(/simulated crash/);
    const after = await t.database.execute(
      `SELECT (SELECT count(*) FROM batches)::int AS b, (SELECT count(*) ` +
        `FROM checkpoints)::int AS c, (SELECT count(*) FROM ledger_entries ` +
        `WHERE status = 'pending')::int AS p`,
    );
    expect(after).toEqual(before);
    expect(before[0].p).toBeGreaterThan(0);
    // The next seal completes the work.
    const r = await sealNow(t.ctx);
    expect(r?.size).toBe(before[0].p);
  });

  it("stores each batch's tree, and proofs from it equal proofs recomputed from the entries' leaves", async () => {
    const { entryLeafHashes, findBatch } = await import("../../db/queries/log.ts");
    const { inclusionProof, rootOf } = await import("../../anchoring/log/merkle.ts");
    const { toHex } = await import("../../anchoring/log/bytes.ts");
    const [last] = await t.database.execute(`SELECT max(batch_no)::int AS b FROM batches`);
    for (let b = 0; b <= Number(last.b); b++) {
      const batch = (await findBatch(t.ctx.db, b))!;
      expect(batch.tree).not.toBeNull();
      const leaves = await entryLeafHashes(t.ctx.db, batch.firstSeq, batch.size);
      expect(toHex(rootOf(t.ctx.crypto, leaves))).toBe(toHex(batch.root));
      const bundle = await bundleOf(String(batch.firstSeq + batch.size - 1));
      expect(bundle.batch.inclusion).toEqual(inclusionProof(t.ctx.crypto, leaves, batch.size - 1).map(toHex));
    }
  });

  it(
    "serves a correct proof even when a stored batch tree is damaged " + "(falls back to the entries' leaves)",
    async () => {
      const policy = trustPolicy(t.ctx.crypto, t.ctx.env.logOrigin, t.ctx.signer);
      // An attacker with superuser rights bypasses the append-only trigger and scrambles a stored tree.
      await t.database.execute(`ALTER TABLE batches DISABLE TRIGGER batches_no_update`);
      try {
        await t.database.execute(
          `UPDATE batches SET tree = decode(repeat('ab', length(tree)), 'hex') WHERE batch_no = 1`,
        );
      } finally {
        await t.database.execute(`ALTER TABLE batches ENABLE TRIGGER batches_no_update`);
      }
      const b = await bundleOf("4");
      expect((await verifyBundle(t.ctx.crypto, b, policy)).verdict).toBe("valid");
    },
  );

  it(
    "the background sealer seals at once when SEAL_MAX_BATCH entries are pending, " +
      "without waiting for the interval",
    async () => {
      const { startSealer } = await import("../../app/log/sealer.server.ts");
      await sealAll(t.ctx);
      const ctx = { ...t.ctx, env: { ...t.ctx.env, sealIntervalMs: 600_000, sealMaxBatch: 7 } };
      const sealed: number[] = [];
      const stop = startSealer(ctx, { onSealed: (r) => sealed.push(r.size) });
      try {
        // 3 entries (study, site, the study.create audit event): below the limit.
        await createStudy(t.ctx, { code: "FULL-1", title: "f", sites: [{ code: "A", name: "A" }] }, null);
        // Nothing is sealed while below the limit: a negative check needs a fixed time (the sealer checks every
        // 100 ms). A slow machine can only make it weaker, never fail it: the interval (600 s) is never reached.
        await sleep(600);
        expect(sealed).toEqual([]);
        await createStudy(
          t.ctx,
          {
            code: "FULL-2",
            title: "f",
            sites: [
              { code: "A", name: "A" },
              { code: "B", name: "B" },
            ],
          },
          null,
        ); // 4 more: 7 pending
        await waitFor(() => sealed.length > 0, { what: "the sealer to seal the 7 pending entries" });
        expect(sealed).toEqual([7]);
      } finally {
        await stop();
      }
    },
  );

  it.runIf(engineUnderTest() === "postgres")(
    "two processes' sealers on one PostgreSQL never collide (advisory lock)",
    async () => {
      const { openDatabase } = await import("../../db/client.ts");
      const { contextFor } = await import("../../app/platform/context.server.ts");
      const second = await openDatabase({ url: t.url!, migrate: false });
      try {
        const ctx2 = contextFor(t.ctx.env, second); // same log key (same data directory), separate connection pool
        for (let i = 0; i < 8; i++)
          await createStudy(t.ctx, { code: `TWO-${i}`, title: "t", sites: [{ code: "A", name: "A" }] }, null);
        await Promise.all([sealAll(t.ctx), sealAll(ctx2), sealAll(t.ctx), sealAll(ctx2)]);
        const [agg] = await t.database.execute(
          `SELECT count(*)::int AS n, count(DISTINCT seq)::int AS d, max(seq)::int AS hi FROM ledger_entries`,
        );
        expect(agg.d).toBe(agg.n);
        expect(agg.hi).toBe(Number(agg.n) - 1);
        const cps = await t.database.execute(`SELECT tree_size FROM checkpoints ORDER BY tree_size`);
        expect(cps.map((c) => Number(c.tree_size))).toEqual(cps.map((_, i) => i + 1));
      } finally {
        await second.close();
      }
    },
  );
});
