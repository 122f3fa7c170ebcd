/** An EvmReader over plain JSON-RPC with fetch (runs in a browser; used by the verification page). */
import type { EvmReader, EvmTxReceipt } from "./evm-event.ts";

export function fetchReader(url: string, timeoutMs = 15_000): EvmReader {
  let id = 0;
  const call = async (method: string, params: unknown[]): Promise<unknown> => {
    const res = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: ++id, method, params }),
      signal: AbortSignal.timeout(timeoutMs),
    });
    if (!res.ok) throw new Error(`RPC answered HTTP ${res.status}`);
    const j = (await res.json()) as { result?: unknown; error?: { message?: string } };
    if (j.error) throw new Error(`RPC error: ${j.error.message ?? "unknown"}`);
    return j.result;
  };
  const num = (h: unknown) => Number(BigInt(String(h)));
  return {
    chainId: async () => num(await call("eth_chainId", [])),
    blockNumber: async () => num(await call("eth_blockNumber", [])),
    async receipt(txHash): Promise<EvmTxReceipt | null> {
      const r = (await call("eth_getTransactionReceipt", [txHash])) as Record<string, unknown> | null;
      if (!r) return null;
      return {
        transactionHash: String(r.transactionHash),
        blockNumber: num(r.blockNumber),
        blockHash: String(r.blockHash),
        from: String(r.from),
        to: r.to ? String(r.to) : null,
        status: num(r.status) === 1 ? "success" : "reverted",
        logs: ((r.logs as Record<string, unknown>[]) ?? []).map((l) => ({
          address: String(l.address),
          topics: (l.topics as string[]) ?? [],
          data: String(l.data),
          logIndex: num(l.logIndex),
        })),
      };
    },
    async block(n) {
      const b = (await call("eth_getBlockByNumber", [`0x${n.toString(16)}`, false])) as Record<string, unknown> | null;
      return b ? { hash: String(b.hash), timestamp: num(b.timestamp) } : null;
    },
  };
}
