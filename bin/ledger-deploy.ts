/**
 * `trialseal ledger deploy-evm`: deploy the anchoring contract for this log. The key comes from
 * EVM_PRIVATE_KEY (never from the command line, where it would land in shell history and `ps`); the
 * deploying account becomes the contract's owner, the only address allowed to anchor.
 */
import { z } from "zod";
import { nodeCrypto } from "../anchoring/adapters/crypto-node.ts";
import { logIdOf } from "../anchoring/ledgers/evm-event.ts";
import { deployAnchorContract } from "../anchoring/adapters/evm-ledger.ts";
import { ConfigError, parseDeployEnv } from "../app/platform/env.server.ts";

export async function runDeployEvm(o: { rpc?: string; chainId?: string }): Promise<number> {
  const err = (m: string, code: number) => {
    process.stderr.write(`trialseal: ${m}\n`);
    return code;
  };
  let env: ReturnType<typeof parseDeployEnv>;
  try {
    env = parseDeployEnv();
  } catch (e) {
    if (e instanceof ConfigError) return err(e.message, 2);
    throw e;
  }
  const rpc = o.rpc ?? env.rpcUrl;
  if (!rpc) return err("give the chain's JSON-RPC endpoint with --rpc URL or EVM_RPC_URL", 2);
  if (!z.url({ protocol: /^https?$/ }).safeParse(rpc).success)
    return err(`invalid --rpc: ${rpc} is not an http(s) URL`, 2);
  const key = env.privateKey;
  if (!key)
    return err(
      "set EVM_PRIVATE_KEY to the deploying account's key (32 bytes as hex); " +
        "it becomes the only sender allowed to anchor",
      2,
    );
  const chainId = o.chainId === undefined ? undefined : Number(o.chainId);
  if (chainId !== undefined && (!Number.isSafeInteger(chainId) || chainId < 1))
    return err(`invalid --chain-id: ${o.chainId}`, 2);
  const origin = env.logOrigin;
  try {
    const d = await deployAnchorContract({
      rpcUrl: rpc,
      privateKey: key,
      logId: logIdOf(nodeCrypto, origin) as `0x${string}`,
      chainId,
    });
    if (chainId !== undefined && d.chainId !== chainId)
      return err(`the endpoint serves chain ${d.chainId}, not ${chainId}`, 1);
    process.stderr.write(
      `deployed TrialSealAnchor for log ${origin} on chain ${d.chainId} in block ` +
        `${d.blockNumber} (tx ${d.txHash}, ${d.gasUsed} gas); owner ${d.owner}\n`,
    );
    process.stdout.write(`EVM_RPC_URL=${rpc}\nEVM_CHAIN_ID=${d.chainId}\nEVM_CONTRACT=${d.contract}\n`);
    return 0;
  } catch (e) {
    const m = (e as { shortMessage?: string }).shortMessage ?? (e as Error).message.split("\n")[0];
    return err(`deployment failed: ${m}`, 1);
  }
}
