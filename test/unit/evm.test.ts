import { readFileSync } from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { createPublicClient, createWalletClient, toEventSelector, type Hex, type Transport } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { nodeCrypto } from "../../anchoring/adapters/crypto-node.ts";
import { LedgerError } from "../../anchoring/ledgers/ledger.ts";
import { ANCHOR_ABI } from "../../anchoring/adapters/evm-contract.ts";
import { ANCHORED_TOPIC, logIdOf } from "../../anchoring/ledgers/evm-event.ts";
import { EvmLedger, chainFor, deployAnchorContract, revertReason } from "../../anchoring/adapters/evm-ledger.ts";
import { viemReader } from "../../anchoring/adapters/evm-reader.ts";
import { verifyAnchor } from "../../anchoring/verifier/verify-anchor.ts";
import type { WorkState } from "../../anchoring/ledgers/ledger.ts";
import { HARDHAT_CHAIN_ID, HARDHAT_KEYS, inProcessHardhat } from "../helpers/hardhat.ts";
import { ROOT } from "../helpers/portal.ts";
import { compile, outputs } from "../../contracts/build.mjs";
import { ORIGIN, cp, req } from "../helpers/checkpoints.ts";

const logId = logIdOf(nodeCrypto, ORIGIN) as Hex;
const memo = () => {
  let work: WorkState | null = null;
  return {
    get work() {
      return work;
    },
    saveWork: async (w: WorkState) => {
      work = w;
    },
  };
};

let transport: Transport;
let send: (m: string, p?: unknown[]) => Promise<unknown>;
let contract: Hex;
let ledger: EvmLedger;
const reader = () => viemReader(createPublicClient({ chain: chainFor(HARDHAT_CHAIN_ID), transport }) as never);

beforeAll(async () => {
  ({ transport, send } = await inProcessHardhat());
  const d = await deployAnchorContract({ transport, privateKey: HARDHAT_KEYS[0], logId });
  contract = d.contract;
  ledger = new EvmLedger({
    name: "evm",
    transport,
    chainId: HARDHAT_CHAIN_ID,
    contract,
    privateKey: HARDHAT_KEYS[0],
    confirmations: 2,
    logId,
    receiptTimeoutMs: 5000,
  });
});

describe("the anchoring contract and the EVM ledger (in-process Hardhat)", () => {
  it(
    "the committed ABI/bytecode is what solc compiles from contracts/TrialSealAnchor.sol, " +
      "and the event topic is right",
    () => {
      const committed = JSON.parse(readFileSync(path.join(ROOT, "contracts", "TrialSealAnchor.json"), "utf8"));
      const fresh = compile();
      expect(fresh).toEqual(committed);
      for (const [file, text] of Object.entries(outputs(fresh))) expect(readFileSync(file, "utf8"), file).toBe(text);
      expect(ANCHORED_TOPIC).toBe(
        toEventSelector("event Anchored(bytes32 indexed logId, bytes32 indexed checkpointHash, uint64 treeSize)"),
      );
    },
  );

  it(
    "anchors with one transaction (gas measured), " +
      "becomes final after the configured confirmations, and the receipt verifies",
    async () => {
      const out = await ledger.anchor(req(3), memo());
      expect(out.status).toBe("included");
      if (out.receipt.type !== "evm") throw new Error();
      const r = await reader().receipt(out.receipt.txHash);
      const pub = createPublicClient({ chain: chainFor(HARDHAT_CHAIN_ID), transport });
      const gas = Number((await pub.getTransactionReceipt({ hash: out.receipt.txHash as Hex })).gasUsed);
      console.log(`gas per anchor (first anchor, cold storage slot): ${gas}`);
      expect(r?.logs).toHaveLength(1);
      const ledgers = { evm: ledger.policy() };
      const notFinal = await verifyAnchor(nodeCrypto, { ledger: "evm", receipt: out.receipt }, cp(3), ledgers, {
        evm: () => reader(),
      });
      expect(notFinal.code).toBe("EVM_NOT_FINAL");
      await send("hardhat_mine", ["0x1"]);
      expect((await ledger.refresh(out.receipt)).status).toBe("final");
      const ok = await verifyAnchor(nodeCrypto, { ledger: "evm", receipt: out.receipt }, cp(3), ledgers, {
        evm: () => reader(),
      });
      expect(ok, ok.message).toMatchObject({ status: "ok" });
      expect(Date.parse(ok.time!)).toBeGreaterThan(Date.now() - 3600_000);
      // Without a reader (no --rpc) the receipt is reported, not passed.
      expect((await verifyAnchor(nodeCrypto, { ledger: "evm", receipt: out.receipt }, cp(3), ledgers)).status).toBe(
        "not_checked",
      );
      // The second anchor writes a warm slot: the steady-state cost.
      const next = await ledger.anchor(req(4), memo());
      if (next.receipt.type !== "evm") throw new Error();
      const gas2 = Number((await pub.getTransactionReceipt({ hash: next.receipt.txHash as Hex })).gasUsed);
      console.log(`gas per anchor (steady state): ${gas2}`);
      expect(gas2).toBeLessThanOrEqual(30_000);
    },
  );

  it("the contract refuses another sender and a tree size that does not grow", async () => {
    const stranger = new EvmLedger({
      name: "evm",
      transport,
      chainId: HARDHAT_CHAIN_ID,
      contract,
      privateKey: HARDHAT_KEYS[1],
      confirmations: 2,
      logId,
    });
    await expect(stranger.anchor(req(50), memo())).rejects.toThrow(/refuses the anchor: NotOwner/);
    // Straight to the contract, bypassing the adapter's own check.
    const wallet = createWalletClient({
      account: privateKeyToAccount(HARDHAT_KEYS[0]),
      chain: chainFor(HARDHAT_CHAIN_ID),
      transport,
    });
    const pub = createPublicClient({ chain: chainFor(HARDHAT_CHAIN_ID), transport });
    const last = Number(await pub.readContract({ address: contract, abi: ANCHOR_ABI, functionName: "lastTreeSize" }));
    for (const size of [last, last - 1]) {
      const e = await pub
        .simulateContract({
          account: wallet.account,
          address: contract,
          abi: ANCHOR_ABI,
          functionName: "anchor",
          args: [`0x${"ab".repeat(32)}`, BigInt(size)],
        })
        .catch((x) => x);
      expect(revertReason(e)).toBe("TreeSizeNotGrowing");
    }
    const err = await ledger.anchor(req(last), memo()).catch((e) => e);
    expect(err).toBeInstanceOf(LedgerError);
    expect(err.retryable).toBe(false);
  });

  it(
    "rejects a receipt from another contract, for another checkpoint, from another chain, " + "or with a forged block",
    async () => {
      const out = await ledger.anchor(req(10), memo());
      await send("hardhat_mine", ["0x2"]);
      if (out.receipt.type !== "evm") throw new Error();
      const ledgers = { evm: ledger.policy() };
      const check = (receipt: unknown, n = 10, pol: Record<string, unknown> = ledgers) =>
        verifyAnchor(nodeCrypto, { ledger: "evm", receipt }, cp(n), pol, { evm: () => reader() });
      expect((await check(out.receipt)).status).toBe("ok");
      // Same log, same owner, a second contract: its receipts are not the trusted contract's.
      const d2 = await deployAnchorContract({ transport, privateKey: HARDHAT_KEYS[0], logId });
      const other = new EvmLedger({
        name: "evm",
        transport,
        chainId: HARDHAT_CHAIN_ID,
        contract: d2.contract,
        privateKey: HARDHAT_KEYS[0],
        confirmations: 2,
        logId,
      });
      const o2 = await other.anchor(req(10), memo());
      await send("hardhat_mine", ["0x2"]);
      expect((await check(o2.receipt)).code).toBe("EVM_WRONG_CONTRACT");
      expect((await check({ ...o2.receipt, contract })).code).toBe("EVM_WRONG_CONTRACT");
      // The event anchors another checkpoint.
      expect((await check(out.receipt, 11)).code).toBe("EVM_EVENT_MISMATCH");
      expect((await check({ ...out.receipt, chainId: 1 })).code).toBe("EVM_WRONG_CHAIN");
      expect((await check({ ...out.receipt, blockHash: `0x${"12".repeat(32)}` })).code).toBe("EVM_BLOCK_MISMATCH");
      expect((await check({ ...out.receipt, txHash: `0x${"34".repeat(32)}` })).code).toBe("EVM_TX_NOT_FOUND");
      expect((await check({ ...out.receipt, logIndex: 5 })).code).toBe("EVM_EVENT_MISMATCH");
      // The policy names another sender.
      const wrongSender = { evm: { ...ledger.policy(), sender: privateKeyToAccount(HARDHAT_KEYS[1]).address } };
      expect((await check(out.receipt, 10, wrongSender)).code).toBe("EVM_WRONG_SENDER");
    },
  );

  it(
    "a reorg that drops the anchor sends it back to pending, " + "and anchoring again re-sends the same transaction",
    async () => {
      const snap = await send("evm_snapshot");
      const work = memo();
      const out = await ledger.anchor(req(20), work);
      if (out.receipt.type !== "evm") throw new Error();
      const sentHash = (work.work as { txHash: string }).txHash;
      expect(out.receipt.txHash).toBe(sentHash);
      await send("evm_revert", [snap]);
      await send("hardhat_mine", ["0x3"]); // the canonical chain moves on without it
      expect((await ledger.refresh(out.receipt)).status).toBe("pending");
      const again = await ledger.anchor(req(20), work);
      if (again.receipt.type !== "evm") throw new Error();
      expect(again.receipt.txHash).toBe(sentHash); // the very same signed bytes, not a second transaction
      expect(again.receipt.blockHash).not.toBe(out.receipt.blockHash);
      await send("hardhat_mine", ["0x2"]);
      expect((await ledger.refresh(again.receipt)).status).toBe("final");
    },
  );
});
