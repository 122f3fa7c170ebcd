/**
 * A local HTTP JSON-RPC endpoint answering with `send` (e.g. the in-process chain), as a node's RPC URL would;
 * batches too.
 */
import { createServer } from "node:http";

export async function jsonRpcServer(send: (method: string, params?: unknown[]) => Promise<unknown>) {
  const server = createServer(async (req, res) => {
    let body = "";
    for await (const c of req) body += c;
    const one = async ({ id, method, params }: { id: unknown; method: string; params?: unknown[] }) => {
      try {
        return { jsonrpc: "2.0", id, result: await send(method, params) };
      } catch (err) {
        return { jsonrpc: "2.0", id, error: { code: -32000, message: (err as Error).message } };
      }
    };
    const parsed = JSON.parse(body);
    const out = Array.isArray(parsed) ? await Promise.all(parsed.map(one)) : await one(parsed);
    res.setHeader("content-type", "application/json").end(JSON.stringify(out));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  return { url: `http://127.0.0.1:${port}`, close: () => new Promise<void>((r) => server.close(() => r())) };
}
