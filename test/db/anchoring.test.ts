/**
 * The anchor worker with all three ledgers enabled (local file, in-process Hardhat chain, a real openssl TSA),
 * on PGlite and on PostgreSQL: bundles carry three receipts that verify; outages delay anchors but lose none.
 */
import { randomBytes } from "node:crypto";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPublicClient, type Hex, type Transport } from "viem";
import { openTestDatabase, engineUnderTest, type TestDb } from "../helpers/db.ts";
import { startTsa, type TestTsa } from "../helpers/tsa.ts";
import { HARDHAT_CHAIN_ID, HARDHAT_KEYS, inProcessHardhat } from "../helpers/hardhat.ts";
import { jsonRpcServer } from "../helpers/json-rpc.ts";
import { waitFor } from "../helpers/wait.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { sealAll } from "../../app/log/sealer.server.ts";
import { findEntryByRef, proofBundle } from "../../app/log/proofs.server.ts";
import {
  anchorOnce,
  deploymentTrustPolicy,
  ledgersStatus,
  startAnchorWorker,
  systemStatus,
  type AnchorEvent,
} from "../../app/anchor-worker/anchor-worker.server.ts";
import { verifyBundle } from "../../anchoring/verifier/verify-bundle.ts";
import { nobleCrypto } from "../../anchoring/log/crypto-noble.ts";
import { nodeSigner } from "../../anchoring/adapters/crypto-node.ts";
import { LocalLedger } from "../../anchoring/adapters/local-ledger-file.ts";
import { EvmLedger, chainFor, deployAnchorContract } from "../../anchoring/adapters/evm-ledger.ts";
import { logIdOf } from "../../anchoring/ledgers/evm-event.ts";
import { viemReader } from "../../anchoring/adapters/evm-reader.ts";
import { fetchReader } from "../../anchoring/ledgers/evm-rpc-fetch.ts";
import { Rfc3161Ledger, certificatesFromPem } from "../../anchoring/adapters/rfc3161-ledger.ts";
import type { Bundle, BundleCheckpoint } from "../../anchoring/verifier/bundle.ts";
import type { BundleAnchor } from "../../anchoring/ledgers/receipt.ts";

const anchorsOf = (c: BundleCheckpoint) => c.anchors as BundleAnchor[];

let t: TestDb;
let tsa: TestTsa;
let transport: Transport;
let send: (m: string, p?: unknown[]) => Promise<unknown>;

beforeAll(async () => {
  [t, tsa] = await Promise.all([openTestDatabase(), startTsa()]);
  ({ transport, send } = await inProcessHardhat());
  const logId = logIdOf(t.ctx.crypto, t.ctx.env.logOrigin) as Hex;
  const d = await deployAnchorContract({ transport, privateKey: HARDHAT_KEYS[0], logId });
  const crypto = t.ctx.crypto;
  t.ctx.ledgers = [
    {
      ledger: new LocalLedger({
        name: "local",
        ledgerId: "test/local",
        dir: path.join(t.ctx.env.dataDir, "ledger"),
        signer: nodeSigner(new Uint8Array(randomBytes(32))),
        crypto,
      }),
      intervalMs: 200,
    },
    {
      ledger: new EvmLedger({
        name: "evm",
        transport,
        chainId: HARDHAT_CHAIN_ID,
        contract: d.contract,
        privateKey: HARDHAT_KEYS[0],
        confirmations: 2,
        logId,
        receiptTimeoutMs: 5000,
      }),
      intervalMs: 200,
    },
    // A generous TSA timeout: openssl answers slowly while the suite runs files in parallel (outages here are resets).
    {
      ledger: new Rfc3161Ledger({
        name: "rfc3161",
        url: tsa.url,
        trusted: certificatesFromPem(tsa.caPem),
        timeoutMs: 15_000,
        randomBytes: (n) => new Uint8Array(randomBytes(n)),
      }),
      intervalMs: 200,
    },
  ];
});
afterAll(async () => {
  await Promise.all([t?.close(), tsa?.close()]);
});

const reader = () => viemReader(createPublicClient({ chain: chainFor(HARDHAT_CHAIN_ID), transport }) as never);

async function bundleOf(ref: string): Promise<Bundle> {
  const r = await proofBundle(t.ctx, (await findEntryByRef(t.ctx, ref))!);
  if (r.status !== "sealed") throw new Error("not sealed");
  return r.bundle;
}

async function anchorRows() {
  return (
    await t.database.execute(
      `SELECT ledger, tree_size, status, attempts, last_error FROM anchors ORDER BY ledger, tree_size`,
    )
  ).map((r) => ({
    ledger: String(r.ledger),
    treeSize: Number(r.tree_size),
    status: String(r.status),
    attempts: Number(r.attempts),
    lastError: r.last_error as string | null,
  }));
}

describe(`anchoring with local + EVM + RFC 3161 ledgers on ${engineUnderTest()}`, () => {
  it("an entry's bundle carries three receipts that all verify, each proving a time", async () => {
    await createStudy(t.ctx, { code: "ANC-1", title: "Anchored", sites: [{ code: "A", name: "A" }] }, null);
    await sealAll(t.ctx);
    const first = await anchorOnce(t.ctx);
    expect(first.filter((e) => e.type === "anchored").map((e) => [e.ledger, (e as { status: string }).status])).toEqual(
      [
        ["local", "final"],
        ["evm", "included"],
        ["rfc3161", "final"],
      ],
    );
    // Before the EVM anchor is final, the bundle carries only the final receipts.
    expect(
      anchorsOf((await bundleOf("0")).checkpoints[0])
        .map((a) => a.ledger)
        .sort(),
    ).toEqual(["local", "rfc3161"]);
    await send("hardhat_mine", ["0x1"]);
    const second = await anchorOnce(t.ctx);
    expect(second).toContainEqual({ type: "anchored", ledger: "evm", treeSize: 1, status: "final" });
    const b = await bundleOf("0");
    expect(b.checkpoints).toHaveLength(1);
    expect(
      anchorsOf(b.checkpoints[0])
        .map((a) => a.ledger)
        .sort(),
    ).toEqual(["evm", "local", "rfc3161"]);
    const policy = deploymentTrustPolicy(t.ctx);
    expect(Object.keys(policy.ledgers).sort()).toEqual(["evm", "local", "rfc3161"]);
    const report = await verifyBundle(t.ctx.crypto, b, policy, {
      evm: () => reader(),
      require: ["local", "evm", "rfc3161"],
    });
    expect(report.verdict, JSON.stringify(report.steps.filter((s) => s.status !== "ok"))).toBe("valid");
    expect(report.anchors.map((a) => [a.ledger, a.status])).toEqual([
      ["evm", "ok"],
      ["local", "ok"],
      ["rfc3161", "ok"],
    ]);
    expect(report.existedBy).toBeDefined();
    // The verification page's reader (plain JSON-RPC over fetch, as a browser sends it) reaches the same verdict
    // against the chain served over HTTP; pointed at a node that does not know the transaction, EVM fails.
    const rpc = await jsonRpcServer(send);
    try {
      const viaFetch = await verifyBundle(nobleCrypto, b, policy, {
        evm: () => fetchReader(rpc.url),
        require: ["evm"],
      });
      expect(viaFetch.verdict, JSON.stringify(viaFetch.steps.filter((s) => s.status !== "ok"))).toBe("valid");
      expect(viaFetch.anchors.find((a) => a.ledger === "evm")).toMatchObject({ status: "ok" });
      const empty = await jsonRpcServer(async (m) =>
        m === "eth_chainId" ? "0x7a69" : m === "eth_blockNumber" ? "0x100" : null,
      );
      try {
        const lost = await verifyBundle(nobleCrypto, b, policy, {
          evm: () => fetchReader(empty.url),
          require: ["evm"],
        });
        expect(lost.verdict).toBe("invalid");
        expect(lost.steps.find((s) => s.step.includes("anchor[evm]"))?.status).toBe("failed");
      } finally {
        await empty.close();
      }
    } finally {
      await rpc.close();
    }
    // In the browser's crypto too, and without an RPC endpoint EVM is "not checked", so requiring it fails.
    const offline = await verifyBundle(nobleCrypto, b, policy);
    expect(offline.verdict).toBe("valid");
    expect(offline.steps.find((s) => s.step.includes("anchor[evm]"))?.status).toBe("not_checked");
    const required = await verifyBundle(t.ctx.crypto, b, policy, { require: ["evm"] });
    expect(required.steps.find((s) => s.status === "failed")?.code).toBe("ANCHOR_REQUIRED");
    // With no deployment clock skew allowed at all, honest anchors still pass: each ledger's time keeps its own
    // resolution and drift (EVM block time: 1 s, 15 s; anchoring/ledgers/ledger-time.ts).
    const strict = await verifyBundle(t.ctx.crypto, b, { ...policy, maxSkewMs: 0 }, { evm: () => reader() });
    expect(strict.verdict, JSON.stringify(strict.steps.filter((s) => s.status === "failed"))).toBe("valid");
    // A ledger whose record says the checkpoint existed an hour before the entry claims to have been written:
    // the entry's time cannot be trusted (back-dated anchor, or a forward-dated entry).
    const slow = new LocalLedger({
      name: "slow",
      ledgerId: "test/slow",
      dir: path.join(t.ctx.env.dataDir, "slow"),
      signer: nodeSigner(new Uint8Array(32).fill(5)),
      crypto: t.ctx.crypto,
      now: () => new Date(Date.now() - 3600_000),
    });
    const note = b.checkpoints[0].note;
    const { checkpointHash } = await import("../../anchoring/log/checkpoint.ts");
    const early = await slow.anchor({
      origin: t.ctx.env.logOrigin,
      treeSize: 1,
      checkpointHash: checkpointHash(t.ctx.crypto, note),
      note,
    });
    const withSlow = structuredClone(b);
    withSlow.checkpoints[0].anchors.push({ ledger: "slow", receipt: early.receipt });
    const slowPolicy = { ...policy, ledgers: { ...policy.ledgers, slow: slow.policy() } };
    const afterAnchor = await verifyBundle(t.ctx.crypto, withSlow, slowPolicy);
    expect(afterAnchor.steps.find((s) => s.status === "failed")).toMatchObject({
      step: "anchors.time",
      code: "ENTRY_AFTER_ANCHOR",
    });
    const tampered = structuredClone(b);
    tampered.checkpoints[0].anchors = anchorsOf(tampered.checkpoints[0]).map((a) =>
      a.receipt.type === "local"
        ? { ...a, receipt: { ...a.receipt, record: { ...a.receipt.record, time: "2001-01-01T00:00:00.000Z" } } }
        : a,
    );
    expect((await verifyBundle(t.ctx.crypto, tampered, policy)).steps.find((s) => s.status === "failed")?.code).toBe(
      "LOCAL_SIGNATURE_INVALID",
    );
  });

  it(
    "later entries are covered by the first anchored checkpoint after them, " + "with its own log inclusion proof",
    async () => {
      await createStudy(t.ctx, { code: "ANC-2", title: "Later", sites: [{ code: "A", name: "A" }] }, null);
      await sealAll(t.ctx); // checkpoint 2
      await createStudy(t.ctx, { code: "ANC-3", title: "Later still", sites: [{ code: "A", name: "A" }] }, null);
      await sealAll(t.ctx); // checkpoint 3
      await anchorOnce(t.ctx); // anchors 3 (not 2)
      await send("hardhat_mine", ["0x1"]);
      await anchorOnce(t.ctx);
      const firstOfBatch1 = Number(
        (await t.database.execute(`SELECT first_seq FROM batches WHERE batch_no = 1`))[0].first_seq,
      );
      const b = await bundleOf(String(firstOfBatch1));
      expect(b.checkpoints.map((c) => c.log.treeSize)).toEqual([2, 3]);
      expect(b.checkpoints[0].anchors).toEqual([]);
      expect(
        anchorsOf(b.checkpoints[1])
          .map((a) => a.ledger)
          .sort(),
      ).toEqual(["evm", "local", "rfc3161"]);
      const r = await verifyBundle(t.ctx.crypto, b, deploymentTrustPolicy(t.ctx), {
        evm: () => reader(),
        require: ["evm", "rfc3161", "local"],
      });
      expect(r.verdict, JSON.stringify(r.steps.filter((s) => s.status === "failed"))).toBe("valid");
      // Moving a receipt onto a checkpoint it does not anchor is caught.
      const moved = structuredClone(b);
      moved.checkpoints[0].anchors = anchorsOf(moved.checkpoints[1]).filter((a) => a.ledger !== "evm");
      const codes = (await verifyBundle(t.ctx.crypto, moved, deploymentTrustPolicy(t.ctx))).steps
        .filter((s) => s.status === "failed")
        .map((s) => s.code);
      expect(codes).toEqual(["ANCHOR_CHECKPOINT_MISMATCH", "ANCHOR_CHECKPOINT_MISMATCH"]);
    },
  );

  it(
    "a TSA outage delays its anchors (retried with back-off, shown in the status) but loses none; " +
      "they complete when it returns",
    async () => {
      tsa.mode = "reset";
      const events: AnchorEvent[] = [];
      const stop = startAnchorWorker(t.ctx, { onEvent: (e) => events.push(e), pollMs: 100 });
      try {
        await createStudy(t.ctx, { code: "ANC-4", title: "Outage", sites: [{ code: "A", name: "A" }] }, null);
        await sealAll(t.ctx); // checkpoint 4
        await waitFor(() => events.some((e) => e.type === "retry" && e.ledger === "rfc3161"), {
          intervalMs: 50,
          what: "a retry of the TSA anchor",
        });
        const status = await ledgersStatus(t.ctx);
        const tsaStatus = status.find((s) => s.ledger === "rfc3161")!;
        expect(tsaStatus.pending).toBe(1);
        expect(tsaStatus.lastError).toMatch(/unreachable/);
        expect(tsaStatus.lastFinalSize).toBe(3);
        expect(status.find((s) => s.ledger === "local")!.lastFinalSize).toBe(4);
        const shown = await systemStatus(t.ctx); // what the status page and /api/v1/status show
        expect(shown.ledgers.find((l) => l.ledger === "rfc3161")).toMatchObject({ state: "retrying", behind: 1 });
        expect(shown.ledgers.find((l) => l.ledger === "local")).toMatchObject({ state: "up to date", behind: 0 });
        // More checkpoints during the outage: the TSA's queue does not pile up (one pending row).
        await createStudy(t.ctx, { code: "ANC-5", title: "Outage 2", sites: [{ code: "A", name: "A" }] }, null);
        await sealAll(t.ctx); // checkpoint 5
        await waitFor(
          async () =>
            (await anchorRows()).some((r) => r.ledger === "local" && r.treeSize === 5 && r.status === "final"),
          { intervalMs: 50, what: "checkpoint 5 anchored on the local ledger" },
        );
        expect(
          (await anchorRows()).filter((r) => r.ledger === "rfc3161" && r.status === "pending").map((r) => r.treeSize),
        ).toEqual([4]);
        tsa.mode = "ok";
        await waitFor(
          async () =>
            (await anchorRows()).some((r) => r.ledger === "rfc3161" && r.treeSize === 5 && r.status === "final"),
          { timeoutMs: 120_000, intervalMs: 50, what: "checkpoint 5 anchored by the TSA once it is back" },
        );
      } finally {
        tsa.mode = "ok";
        await stop();
      }
      const rows = await anchorRows();
      const tsaRows = rows.filter((r) => r.ledger === "rfc3161");
      expect(tsaRows.map((r) => [r.treeSize, r.status])).toEqual([
        [1, "final"],
        [3, "final"],
        [4, "final"],
        [5, "final"],
      ]);
      expect(tsaRows.find((r) => r.treeSize === 4)!.attempts).toBeGreaterThan(0);
      expect(rows.filter((r) => r.status === "failed")).toEqual([]);
      // The entry sealed during the outage is covered by the TSA anchor made once it returned.
      const seq = Number((await t.database.execute(`SELECT first_seq FROM batches WHERE batch_no = 3`))[0].first_seq);
      const b = await bundleOf(String(seq));
      const tsaCp = b.checkpoints.find((c) => anchorsOf(c).some((a) => a.ledger === "rfc3161"));
      expect(tsaCp?.log.treeSize).toBe(4);
      const r = await verifyBundle(t.ctx.crypto, b, deploymentTrustPolicy(t.ctx), { require: ["rfc3161", "local"] });
      expect(r.verdict, JSON.stringify(r.steps.filter((s) => s.status === "failed"))).toBe("valid");
    },
  );

  it(
    "a reorg that drops an included EVM anchor puts it back to pending; " +
      "the worker re-sends the same transaction and it becomes final",
    async () => {
      await createStudy(t.ctx, { code: "ANC-R", title: "Reorg", sites: [{ code: "A", name: "A" }] }, null);
      await sealAll(t.ctx);
      const snap = await send("evm_snapshot");
      const sent = await anchorOnce(t.ctx, { ledgers: ["evm"] });
      const size = (sent.find((e) => e.type === "anchored") as { treeSize: number }).treeSize;
      const [row] = await t.database.execute(
        `SELECT work_text, receipt_text FROM anchors WHERE ledger = 'evm' AND tree_size = ${size}`,
      );
      const txHash = JSON.parse(String(row.work_text)).txHash;
      await send("evm_revert", [snap]);
      await send("hardhat_mine", ["0x3"]);
      const after = await anchorOnce(t.ctx, { ledgers: ["evm"] });
      expect(after.filter((e) => e.treeSize === size).map((e) => e.type)).toEqual(["reorged", "anchored"]);
      await send("hardhat_mine", ["0x1"]);
      expect(await anchorOnce(t.ctx, { ledgers: ["evm"] })).toContainEqual({
        type: "anchored",
        ledger: "evm",
        treeSize: size,
        status: "final",
      });
      const [final] = await t.database.execute(
        `SELECT status, receipt_text FROM anchors WHERE ledger = 'evm' AND tree_size = ${size}`,
      );
      expect(final.status).toBe("final");
      expect(JSON.parse(String(final.receipt_text)).txHash).toBe(txHash);
      const seq = Number(
        (await t.database.execute(`SELECT first_seq FROM batches ORDER BY batch_no DESC LIMIT 1`))[0].first_seq,
      );
      const r = await verifyBundle(t.ctx.crypto, await bundleOf(String(seq)), deploymentTrustPolicy(t.ctx), {
        evm: () => reader(),
        require: ["evm"],
      });
      expect(r.verdict, JSON.stringify(r.steps.filter((s) => s.status === "failed"))).toBe("valid");
    },
  );
});
