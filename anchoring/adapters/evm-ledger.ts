/**
 * The EVM ledger: anchors a checkpoint with one transaction to the anchoring contract on any EVM JSON-RPC
 * endpoint (Ethereum, an L2, a permissioned chain such as Hyperledger Besu). Network code (viem).
 *
 * Never loses or duplicates an anchor: the signed transaction and its hash are saved (AnchorContext.saveWork)
 * before it is broadcast; a later attempt first looks for that transaction's receipt, re-broadcasts the very
 * same bytes if the node forgot it (e.g. after a reorg), and signs a new one only when its nonce was used by
 * something else. The contract itself refuses a tree size that does not grow.
 */
import {
  BaseError,
  HttpRequestError,
  ContractFunctionRevertedError,
  createPublicClient,
  createWalletClient,
  decodeErrorResult,
  defineChain,
  http,
  keccak256,
  type Address,
  type Hex,
  type PublicClient,
  type Transport,
} from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { toHex } from "../log/bytes.ts";
import type { EvmLedgerPolicy, EvmReceipt, AnchorReceipt } from "../ledgers/receipt.ts";
import {
  LedgerError,
  type AnchorContext,
  type AnchorOutcome,
  type AnchorRequest,
  type Ledger,
} from "../ledgers/ledger.ts";
import { ANCHOR_ABI, ANCHOR_BYTECODE } from "./evm-contract.ts";
import { ANCHORED_TOPIC, checkEvmReceipt, EvmCheckError } from "../ledgers/evm-event.ts";
import { viemReader } from "./evm-reader.ts";

export interface EvmLedgerOptions {
  name: string;
  /** JSON-RPC URL, or a ready transport (tests: an in-process Hardhat provider). */
  rpcUrl?: string;
  transport?: Transport;
  /** Expected chain id; the endpoint is checked against it. */
  chainId: number;
  contract: Address;
  privateKey: Hex;
  confirmations: number;
  logId: Hex;
  /** How long one attempt waits for the transaction to be mined. */
  receiptTimeoutMs?: number;
  rpcTimeoutMs?: number;
}

interface Work {
  txHash: Hex;
  raw: Hex;
}

function errText(err: unknown): string {
  if (err instanceof HttpRequestError) {
    // Say what went wrong on the wire: the HTTP status, or the transport's own reason (reset, not JSON, ...).
    const why = err.status
      ? `HTTP ${err.status}`
      : (err.details || (err.cause as Error | undefined)?.message || "").split("\n")[0];
    return `the RPC endpoint failed${why ? `: ${why.slice(0, 160)}` : ""}`;
  }
  if (err instanceof BaseError) return err.shortMessage || err.message.split("\n")[0];
  return (err as Error)?.message?.split("\n")[0] ?? String(err);
}

export function transportFor(o: { rpcUrl?: string; transport?: Transport; rpcTimeoutMs?: number }): Transport {
  if (o.transport) return o.transport;
  if (!o.rpcUrl) throw new Error("an EVM ledger needs an RPC URL");
  return http(o.rpcUrl, { timeout: o.rpcTimeoutMs ?? 10_000, retryCount: 0 });
}

export function chainFor(id: number, rpcUrl = "http://localhost") {
  return defineChain({
    id,
    name: `chain-${id}`,
    nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
    rpcUrls: { default: { http: [rpcUrl] } },
  });
}

export class EvmLedger implements Ledger {
  readonly type = "evm" as const;
  readonly name: string;
  private readonly pub: PublicClient;
  private readonly account;

  constructor(private readonly o: EvmLedgerOptions) {
    this.name = o.name;
    const transport = transportFor(o);
    const chain = chainFor(o.chainId, o.rpcUrl);
    this.pub = createPublicClient({ chain, transport }) as PublicClient;
    this.account = privateKeyToAccount(o.privateKey);
  }

  get sender(): Address {
    return this.account.address;
  }

  private fail(message: string, retryable = true): never {
    throw new LedgerError(this.name, message, retryable);
  }

  private async rpc<T>(what: string, f: () => Promise<T>): Promise<T> {
    try {
      return await f();
    } catch (err) {
      if (err instanceof LedgerError) throw err;
      this.fail(`${what}: ${errText(err)}`);
    }
  }

  async anchor(req: AnchorRequest, ctx: AnchorContext): Promise<AnchorOutcome> {
    const chainId = await this.rpc("reading the chain id", () => this.pub.getChainId());
    if (chainId !== this.o.chainId)
      this.fail(`the RPC endpoint serves chain ${chainId}, not the configured ${this.o.chainId}`, false);
    const hashHex = `0x${toHex(req.checkpointHash)}` as Hex;

    const work = ctx.work as Work | null;
    if (work?.txHash) {
      const r = await this.rpc("reading the transaction receipt", () => viemReader(this.pub).receipt(work.txHash));
      if (r) return this.outcome(req, work.txHash);
      const known = await this.rpc("looking up the transaction", () =>
        this.pub
          .getTransaction({ hash: work.txHash })
          .then(() => true)
          .catch(() => false),
      );
      if (known) return this.waitAndOutcome(req, work.txHash);
      // The node forgot the transaction (dropped, or re-orged away): send the very same bytes again.
      try {
        await this.pub.sendRawTransaction({ serializedTransaction: work.raw });
        return this.waitAndOutcome(req, work.txHash);
      } catch (err) {
        const text = errText(err);
        if (!/nonce/i.test(text)) this.fail(`re-sending transaction ${work.txHash}: ${text}`);
        // Its nonce went to another transaction: sign a new one below.
      }
    }

    // The contract refuses sizes that do not grow: check first, to report it clearly.
    const last = await this.rpc("reading the contract", () =>
      this.pub.readContract({ address: this.o.contract, abi: ANCHOR_ABI, functionName: "lastTreeSize" }),
    );
    if (BigInt(last as bigint) >= BigInt(req.treeSize))
      this.fail(`the contract already anchors tree size ${last}, not below ${req.treeSize}`, false);
    try {
      await this.pub.simulateContract({
        account: this.account,
        address: this.o.contract,
        abi: ANCHOR_ABI,
        functionName: "anchor",
        args: [hashHex, BigInt(req.treeSize)],
      });
    } catch (err) {
      const reason = revertReason(err);
      if (reason) this.fail(`the contract refuses the anchor: ${reason}`, false);
      this.fail(`simulating the anchor: ${errText(err)}`);
    }
    const wallet = createWalletClient({
      account: this.account,
      chain: chainFor(this.o.chainId, this.o.rpcUrl),
      transport: transportFor(this.o),
    });
    const raw = await this.rpc("preparing the transaction", async () => {
      const request = await wallet.prepareTransactionRequest({
        to: this.o.contract,
        data: encodeAnchor(hashHex, req.treeSize),
        chain: wallet.chain,
        account: this.account,
      });
      return wallet.signTransaction(request as never);
    });
    const txHash = keccak256(raw);
    await ctx.saveWork({ txHash, raw } satisfies Work);
    await this.rpc("sending the transaction", () => this.pub.sendRawTransaction({ serializedTransaction: raw }));
    return this.waitAndOutcome(req, txHash);
  }

  private async waitAndOutcome(req: AnchorRequest, txHash: Hex): Promise<AnchorOutcome> {
    await this.rpc(`waiting for transaction ${txHash}`, () =>
      this.pub.waitForTransactionReceipt({
        hash: txHash,
        timeout: this.o.receiptTimeoutMs ?? 60_000,
        pollingInterval: 250,
      }),
    );
    return this.outcome(req, txHash);
  }

  private async outcome(req: AnchorRequest, txHash: Hex): Promise<AnchorOutcome> {
    const reader = viemReader(this.pub);
    const r = await this.rpc("reading the transaction receipt", () => reader.receipt(txHash));
    if (!r) this.fail(`transaction ${txHash} has no receipt yet`);
    if (r.status !== "success") this.fail(`transaction ${txHash} reverted`, false);
    const log = r.logs.find(
      (l) => l.address.toLowerCase() === this.o.contract.toLowerCase() && l.topics[0]?.toLowerCase() === ANCHORED_TOPIC,
    );
    if (!log) this.fail(`transaction ${txHash} emitted no Anchored event`, false);
    const receipt: EvmReceipt = {
      type: "evm",
      chainId: this.o.chainId,
      contract: this.o.contract,
      txHash,
      blockNumber: r.blockNumber,
      blockHash: r.blockHash,
      logIndex: log.logIndex,
    };
    return this.refresh(receipt, req);
  }

  /** Re-check a receipt: final after enough confirmations; pending when re-orged away. */
  async refresh(receipt: AnchorReceipt, req?: AnchorRequest): Promise<AnchorOutcome> {
    if (receipt.type !== "evm") this.fail("not an EVM receipt", false);
    const reader = viemReader(this.pub);
    const r = await this.rpc("reading the transaction receipt", () => reader.receipt(receipt.txHash));
    const log = r?.logs.find((l) => l.logIndex === receipt.logIndex);
    try {
      const res = await checkEvmReceipt(reader, receipt, {
        policy: this.policy(),
        logId: this.o.logId,
        checkpointHash: req ? `0x${toHex(req.checkpointHash)}` : (log?.topics[2] ?? ""),
        treeSize: req ? req.treeSize : Number(BigInt(log?.data ?? "0x0")),
        requireFinal: false,
      });
      return { status: res.final ? "final" : "included", receipt, anchoredAt: res.time };
    } catch (err) {
      if (err instanceof EvmCheckError && (err.code === "EVM_TX_NOT_FOUND" || err.code === "EVM_BLOCK_MISMATCH"))
        return { status: "pending", receipt };
      if (err instanceof EvmCheckError) this.fail(err.message, false);
      this.fail(`checking the receipt: ${errText(err)}`);
    }
  }

  policy(): EvmLedgerPolicy {
    return {
      type: "evm",
      chainId: this.o.chainId,
      contract: this.o.contract,
      sender: this.account.address,
      confirmations: this.o.confirmations,
      rpcHint: this.o.rpcUrl ?? null,
    };
  }
}

/** The contract's custom error behind a failed call, whichever way the node reported it. */
export function revertReason(err: unknown): string | null {
  const revert = err instanceof BaseError ? err.walk((e) => e instanceof ContractFunctionRevertedError) : null;
  if (revert instanceof ContractFunctionRevertedError && (revert.data?.errorName || revert.reason))
    return revert.data?.errorName ?? revert.reason ?? null;
  // Some nodes (Hardhat in-process) only put the revert data in the message of a nested error.
  for (
    let e = err as { cause?: unknown; message?: string; data?: unknown } | undefined, i = 0;
    e && i < 10;
    e = e.cause as typeof e, i++
  ) {
    const data = typeof e.data === "string" ? e.data : /return data: (0x[0-9a-fA-F]+)/.exec(e.message ?? "")?.[1];
    if (data && data.length >= 10) {
      try {
        return decodeErrorResult({ abi: ANCHOR_ABI, data: data as Hex }).errorName;
      } catch {
        // not one of ours
      }
    }
  }
  return null;
}

function encodeAnchor(hash: Hex, treeSize: number): Hex {
  // anchor(bytes32,uint64): selector + two words (kept local to avoid an ABI-encoding round trip per call).
  const selector = keccak256(new TextEncoder().encode("anchor(bytes32,uint64)")).slice(0, 10);
  return `${selector}${hash.slice(2)}${treeSize.toString(16).padStart(64, "0")}` as Hex;
}

/** Deploy the anchoring contract for a log; the deploying account becomes its owner (the only sender). */
export async function deployAnchorContract(o: {
  rpcUrl?: string;
  transport?: Transport;
  privateKey: Hex;
  logId: Hex;
  chainId?: number;
  timeoutMs?: number;
}) {
  const transport = transportFor(o);
  const probe = createPublicClient({ transport });
  const chainId = o.chainId ?? (await probe.getChainId());
  const chain = chainFor(chainId, o.rpcUrl);
  const account = privateKeyToAccount(o.privateKey);
  const wallet = createWalletClient({ account, chain, transport });
  const pub = createPublicClient({ chain, transport });
  const txHash = await wallet.deployContract({ abi: ANCHOR_ABI, bytecode: ANCHOR_BYTECODE, args: [o.logId] });
  const r = await pub.waitForTransactionReceipt({ hash: txHash, timeout: o.timeoutMs ?? 120_000 });
  if (r.status !== "success" || !r.contractAddress) throw new Error(`deployment transaction ${txHash} failed`);
  return {
    chainId,
    contract: r.contractAddress,
    owner: account.address,
    txHash,
    blockNumber: Number(r.blockNumber),
    gasUsed: Number(r.gasUsed),
  };
}
