/**
 * Anchoring cost on the local EVM node (in-process Hardhat): gas per anchor (first, and steady state), against the
 * baseline of a plain value transfer (21,000 gas, the cheapest transaction there is); anchors per hour at the
 * default cadence; and gas per entry at 1k, 100k and 1M entries per anchor (the cost does not grow with entries).
 */
import { createPublicClient, createWalletClient, parseEther, type Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { nodeCrypto } from "../anchoring/adapters/crypto-node.ts";
import type { WorkState } from "../anchoring/ledgers/ledger.ts";
import { logIdOf } from "../anchoring/ledgers/evm-event.ts";
import { EvmLedger, chainFor, deployAnchorContract } from "../anchoring/adapters/evm-ledger.ts";
import { HARDHAT_CHAIN_ID, HARDHAT_KEYS, inProcessHardhat } from "../test/helpers/hardhat.ts";
import { ORIGIN, req } from "../test/helpers/checkpoints.ts";

export interface GasBench {
  firstAnchorGas: number;
  steadyAnchorGas: number;
  transferGas: number;
  ratioToTransfer: number;
  deployGas: number;
  anchorsPerHour: number;
  gasPerDay: number;
  gasPerEntry: Record<string, number>;
}

export async function benchGas(intervalMs: number): Promise<GasBench> {
  const { transport } = await inProcessHardhat();
  const logId = logIdOf(nodeCrypto, ORIGIN) as Hex;
  const d = await deployAnchorContract({ transport, privateKey: HARDHAT_KEYS[0], logId });
  const pub = createPublicClient({ chain: chainFor(HARDHAT_CHAIN_ID), transport });
  const deployGas = Number((await pub.getTransactionReceipt({ hash: d.txHash as Hex })).gasUsed);
  const ledger = new EvmLedger({
    name: "evm",
    transport,
    chainId: HARDHAT_CHAIN_ID,
    contract: d.contract,
    privateKey: HARDHAT_KEYS[0],
    confirmations: 1,
    logId,
    receiptTimeoutMs: 10_000,
  });
  const gasOf = async (n: number) => {
    let work: WorkState | null = null;
    const out = await ledger.anchor(req(n), {
      get work() {
        return work;
      },
      saveWork: async (w: WorkState) => {
        work = w;
      },
    });
    if (out.receipt.type !== "evm") throw new Error("not an EVM receipt");
    return Number((await pub.getTransactionReceipt({ hash: out.receipt.txHash as Hex })).gasUsed);
  };
  const firstAnchorGas = await gasOf(1);
  const steady: number[] = [];
  for (let n = 2; n <= 6; n++) steady.push(await gasOf(n * 1000));
  steady.sort((a, b) => a - b);
  const steadyAnchorGas = steady[Math.floor(steady.length / 2)];
  const wallet = createWalletClient({
    account: privateKeyToAccount(HARDHAT_KEYS[1]),
    chain: chainFor(HARDHAT_CHAIN_ID),
    transport,
  });
  const tx = await wallet.sendTransaction({
    to: "0x000000000000000000000000000000000000dEaD",
    value: parseEther("0.001"),
  });
  const transferGas = Number((await pub.waitForTransactionReceipt({ hash: tx })).gasUsed);
  const anchorsPerHour = 3_600_000 / intervalMs;
  return {
    firstAnchorGas,
    steadyAnchorGas,
    transferGas,
    ratioToTransfer: steadyAnchorGas / transferGas,
    deployGas,
    anchorsPerHour,
    gasPerDay: steadyAnchorGas * anchorsPerHour * 24,
    gasPerEntry: Object.fromEntries([1_000, 100_000, 1_000_000].map((n) => [String(n), steadyAnchorGas / n])),
  };
}
