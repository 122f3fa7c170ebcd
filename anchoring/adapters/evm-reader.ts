/** EvmReader over viem's public client (JSON-RPC, or an in-process provider in tests). Network code. */
import { BlockNotFoundError, TransactionReceiptNotFoundError, type PublicClient } from "viem";
import type { EvmReader, EvmTxReceipt } from "../ledgers/evm-event.ts";

export function viemReader(client: PublicClient): EvmReader {
  return {
    chainId: () => client.getChainId(),
    blockNumber: async () => Number(await client.getBlockNumber({ cacheTime: 0 })),
    async receipt(txHash): Promise<EvmTxReceipt | null> {
      try {
        const r = await client.getTransactionReceipt({ hash: txHash as `0x${string}` });
        return {
          transactionHash: r.transactionHash,
          blockNumber: Number(r.blockNumber),
          blockHash: r.blockHash,
          from: r.from,
          to: r.to,
          status: r.status,
          logs: r.logs.map((l) => ({
            address: l.address,
            topics: [...l.topics],
            data: l.data,
            logIndex: Number(l.logIndex),
          })),
        };
      } catch (err) {
        if (err instanceof TransactionReceiptNotFoundError) return null;
        throw err;
      }
    },
    async block(number) {
      try {
        const b = await client.getBlock({ blockNumber: BigInt(number) });
        return { hash: b.hash!, timestamp: Number(b.timestamp) };
      } catch (err) {
        if (err instanceof BlockNotFoundError) return null;
        throw err;
      }
    },
  };
}
