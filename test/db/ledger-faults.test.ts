/**
 * The EVM node and the TSA behind TCP proxies the test controls, misbehaving in turn: connections reset,
 * requests that hang (the client's timeout fires), HTTP 500s, garbage answers and a link slower than the
 * client's timeout. Each fault is retried with back-off and shown on the status page (state "retrying" with
 * the error); no anchor is marked failed or lost; when the endpoints recover, every ledger anchors the latest
 * checkpoint, and the EVM contract holds no duplicate anchor from a transaction the client gave up on.
 */
import { randomBytes } from "node:crypto";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Hex } from "viem";
import { openTestDatabase, engineUnderTest, type TestDb } from "../helpers/db.ts";
import { startTsa, type TestTsa } from "../helpers/tsa.ts";
import { HARDHAT_CHAIN_ID, HARDHAT_KEYS, inProcessHardhat } from "../helpers/hardhat.ts";
import { startTcpProxy, type ProxyFault, type TcpProxy } from "../helpers/tcp-proxy.ts";
import { jsonRpcServer } from "../helpers/json-rpc.ts";
import { waitFor } from "../helpers/wait.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { sealAll } from "../../app/log/sealer.server.ts";
import { startAnchorWorker, systemStatus, type AnchorEvent } from "../../app/anchor-worker/anchor-worker.server.ts";
import { nodeSigner } from "../../anchoring/adapters/crypto-node.ts";
import { LocalLedger } from "../../anchoring/adapters/local-ledger-file.ts";
import { EvmLedger, deployAnchorContract } from "../../anchoring/adapters/evm-ledger.ts";
import { logIdOf } from "../../anchoring/ledgers/evm-event.ts";
import { Rfc3161Ledger, certificatesFromPem } from "../../anchoring/adapters/rfc3161-ledger.ts";

let t: TestDb;
let tsa: TestTsa;
let send: (m: string, p?: unknown[]) => Promise<unknown>;
let rpc: { url: string; close: () => Promise<void> };
let evmProxy: TcpProxy;
let tsaProxy: TcpProxy;

beforeAll(async () => {
  [t, tsa] = await Promise.all([openTestDatabase(), startTsa()]);
  const hardhat = await inProcessHardhat();
  const { transport } = hardhat;
  send = hardhat.send;
  rpc = await jsonRpcServer((m, p) => send(m, p));
  evmProxy = await startTcpProxy(Number(new URL(rpc.url).port));
  tsaProxy = await startTcpProxy(Number(new URL(tsa.url).port));
  const logId = logIdOf(t.ctx.crypto, t.ctx.env.logOrigin) as Hex;
  const d = await deployAnchorContract({ transport, privateKey: HARDHAT_KEYS[0], logId });
  t.ctx.env.anchoring.retryMaxMs = 400; // back-off capped low so the test moves on quickly
  t.ctx.ledgers = [
    {
      ledger: new LocalLedger({
        name: "local",
        ledgerId: "test/local",
        dir: path.join(t.ctx.env.dataDir, "ledger"),
        signer: nodeSigner(new Uint8Array(randomBytes(32))),
        crypto: t.ctx.crypto,
      }),
      intervalMs: 200,
    },
    {
      ledger: new EvmLedger({
        name: "evm",
        rpcUrl: evmProxy.url,
        rpcTimeoutMs: 700,
        chainId: HARDHAT_CHAIN_ID,
        contract: d.contract,
        privateKey: HARDHAT_KEYS[0],
        confirmations: 2,
        logId,
        receiptTimeoutMs: 2000,
      }),
      intervalMs: 200,
    },
    {
      ledger: new Rfc3161Ledger({
        name: "rfc3161",
        url: `${tsaProxy.url}${new URL(tsa.url).pathname}`,
        trusted: certificatesFromPem(tsa.caPem),
        timeoutMs: 700,
        randomBytes: (n) => new Uint8Array(randomBytes(n)),
      }),
      intervalMs: 200,
    },
  ];
});
afterAll(async () => {
  await evmProxy?.close();
  await tsaProxy?.close();
  await rpc?.close();
  await Promise.all([t?.close(), tsa?.close()]);
});

async function anchorRows() {
  return (
    await t.database.execute(`SELECT ledger, tree_size, status, last_error FROM anchors ORDER BY ledger, tree_size`)
  ).map((r) => ({
    ledger: String(r.ledger),
    treeSize: Number(r.tree_size),
    status: String(r.status),
    lastError: r.last_error as string | null,
  }));
}

describe(`ledger endpoints misbehaving on ${engineUnderTest()}`, () => {
  it("resets, hangs, 500s, garbage and a slow link: retried with back-off, shown as retrying, " +
    "nothing lost or duplicated", async () => {
    const events: AnchorEvent[] = [];
    const stop = startAnchorWorker(t.ctx, {
      onEvent: (e) => {
        events.push(e);
        if (process.env.DEBUG_FAULTS) console.log(Date.now() % 100000, JSON.stringify(e));
      },
      pollMs: 100,
    });
    // Blocks keep coming, as on a live chain, so EVM anchors reach their confirmations.
    const miner = setInterval(() => void send("evm_mine").catch(() => {}), 150);
    const seen: Record<string, Record<string, string>> = {};
    try {
      let n = 0;
      const newCheckpoint = async () => {
        await createStudy(t.ctx, { code: `FLT-${++n}`, title: `Faults ${n}`, sites: [{ code: "A", name: "A" }] }, null);
        await sealAll(t.ctx);
        return Number((await t.database.execute(`SELECT max(tree_size) AS s FROM checkpoints`))[0].s);
      };
      const finalAt = async (ledger: string, size: number) =>
        (await anchorRows()).some((r) => r.ledger === ledger && r.treeSize >= size && r.status === "final");
      // A healthy start: both anchor through their proxies.
      let size = await newCheckpoint();
      await waitFor(async () => (await finalAt("evm", size)) && (await finalAt("rfc3161", size)), {
        timeoutMs: 120_000,
        intervalMs: 50,
        what: "anchors through healthy proxies",
      });

      for (const fault of ["reset", "hang", "http500", "garbage", "slow"] as ProxyFault[]) {
        evmProxy.fault(fault, { slowMs: 1500 });
        tsaProxy.fault(fault, { slowMs: 1500 });
        const from = events.length;
        size = await newCheckpoint();
        if (process.env.DEBUG_FAULTS) console.log(`fault ${fault}: checkpoint ${size}`);
        await waitFor(
          () => ["evm", "rfc3161"].every((l) => events.slice(from).some((e) => e.type === "retry" && e.ledger === l)),
          { intervalMs: 50, what: `retries under ${fault}` },
        );
        const shown = await systemStatus(t.ctx); // what the status page and /api/v1/status show
        for (const l of ["evm", "rfc3161"]) {
          const s = shown.ledgers.find((x) => x.ledger === l)!;
          expect(s.state, `${l} under ${fault}`).toBe("retrying");
          seen[fault] ??= {};
          seen[fault][l] = String(
            (events.slice(from).find((e) => e.type === "retry" && e.ledger === l) as { error: string }).error,
          );
        }
        expect(shown.ledgers.find((x) => x.ledger === "local")!.state).not.toBe("retrying");
        expect(events.filter((e) => e.type === "failed")).toEqual([]);
        evmProxy.restore();
        tsaProxy.restore();
        await waitFor(async () => (await finalAt("evm", size)) && (await finalAt("rfc3161", size)), {
          timeoutMs: 120_000,
          intervalMs: 50,
          what: `recovery after ${fault}`,
        });
      }
    } finally {
      clearInterval(miner);
      evmProxy.restore();
      tsaProxy.restore();
      await stop();
    }
    console.log(`ledger fault errors: ${JSON.stringify(seen, null, 1)}`);
    const rows = await anchorRows();
    expect(rows.filter((r) => r.status === "failed")).toEqual([]);
    expect(rows.filter((r) => r.status !== "final")).toEqual([]);
    // Each fault produced a specific error, never an empty or generic one.
    for (const [fault, byLedger] of Object.entries(seen))
      for (const [l, e] of Object.entries(byLedger)) expect(e.length, `${l} ${fault}`).toBeGreaterThan(8);
    // The chain holds each anchored tree size once (a transaction the client timed out on was not sent twice).
    const evmSizes = rows.filter((r) => r.ledger === "evm").map((r) => r.treeSize);
    expect(new Set(evmSizes).size).toBe(evmSizes.length);
    expect(evmProxy.faulted).toBeGreaterThan(0);
    expect(tsaProxy.faulted).toBeGreaterThan(0);
  }, 900_000); // six rounds of faults, retries with back-off and recovery: room for a loaded machine
});
