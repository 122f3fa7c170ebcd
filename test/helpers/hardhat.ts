/** Hardhat 2 as a local EVM node for tests: in-process (a viem transport) or `hardhat node` over HTTP. */
import { spawn, type ChildProcess } from "node:child_process";
import net from "node:net";
import path from "node:path";
import { custom, type Transport } from "viem";
import { ROOT } from "./portal.ts";

/** Hardhat's well-known development accounts (never use them on a real chain). */
export const HARDHAT_KEYS = [
  "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
  "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
] as const;
export const HARDHAT_CHAIN_ID = 31337;

/** The in-process Hardhat network (one chain per test process). */
export async function inProcessHardhat(): Promise<{
  transport: Transport;
  send: (method: string, params?: unknown[]) => Promise<unknown>;
}> {
  const hre = (await import("hardhat")).default;
  const provider = hre.network.provider;
  return {
    transport: custom(provider as never),
    send: (method, params = []) => provider.send(method, params as never),
  };
}

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

export interface HardhatNode {
  url: string;
  port: number;
  rpc(method: string, params?: unknown[]): Promise<unknown>;
  stop(): Promise<void>;
}

/** Start `hardhat node` on a free port; resolves once it answers JSON-RPC. */
export async function startHardhatNode(): Promise<HardhatNode> {
  const port = await freePort();
  const bin = path.join(ROOT, "node_modules", ".bin", "hardhat");
  const child: ChildProcess = spawn(bin, ["node", "--hostname", "127.0.0.1", "--port", String(port)], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, HARDHAT_DISABLE_TELEMETRY_PROMPT: "true" },
  });
  let out = "";
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (out += d));
  const url = `http://127.0.0.1:${port}`;
  const rpc = async (method: string, params: unknown[] = []) => {
    const res = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
    });
    const j = (await res.json()) as { result?: unknown; error?: { message: string } };
    if (j.error) throw new Error(j.error.message);
    return j.result;
  };
  const deadline = Date.now() + 120_000; // a start on a loaded machine
  for (;;) {
    if (child.exitCode !== null) throw new Error(`hardhat node exited: ${out}`);
    try {
      await rpc("eth_chainId");
      break;
    } catch {
      if (Date.now() > deadline) {
        child.kill("SIGKILL");
        throw new Error(`hardhat node did not start: ${out}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  return {
    url,
    port,
    rpc,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      if (child.exitCode === null) child.kill("SIGKILL");
    },
  };
}
