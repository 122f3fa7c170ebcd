/**
 * A TCP proxy a test controls, to simulate a ledger endpoint that misbehaves and recovers without restarting
 * it (restarting a Hardhat node would erase its chain). Faults, set with `fault(mode)` (open connections are
 * closed, so clients reconnect into the fault; `cut()` resets them instead):
 * - "reset": every connection is reset on accept;
 * - "hang": connections are accepted and never answered (the client's timeout fires);
 * - "http500": every request gets an HTTP 500;
 * - "garbage": every request gets HTTP 200 with a body that is neither JSON nor DER;
 * - "slow": traffic passes, each chunk delayed by `slowMs`.
 * `restore()` lets traffic through again.
 */
import net from "node:net";

export type ProxyFault = "pass" | "reset" | "hang" | "http500" | "garbage" | "slow";

export interface TcpProxy {
  port: number;
  url: string;
  /** Connections accepted while a fault was set. */
  faulted: number;
  fault(mode: ProxyFault, opts?: { slowMs?: number }): void;
  cut(): void;
  restore(): void;
  close(): Promise<void>;
}

function rawHttp(status: string, type: string, body: string): string {
  return (
    `HTTP/1.1 ${status}\r\ncontent-type: ${type}\r\n` +
    `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`
  );
}

export async function startTcpProxy(targetPort: number, targetHost = "127.0.0.1"): Promise<TcpProxy> {
  let mode: ProxyFault = "pass";
  let slowMs = 0;
  const open = new Set<net.Socket>();
  const proxy: TcpProxy = {
    port: 0,
    url: "",
    faulted: 0,
    fault(m, opts) {
      mode = m;
      slowMs = opts?.slowMs ?? 1500;
      // Kept-alive connections would carry on unaffected: close them, so the fault meets every request.
      for (const s of open) s.destroy();
      open.clear();
    },
    cut() {
      mode = "reset";
      for (const s of open) s.resetAndDestroy?.() ?? s.destroy();
      open.clear();
    },
    restore() {
      mode = "pass";
    },
    async close() {
      mode = "reset";
      for (const s of open) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
  const server = net.createServer((client) => {
    const m = mode;
    if (m !== "pass") proxy.faulted++;
    if (m === "reset") {
      client.resetAndDestroy();
      return;
    }
    open.add(client);
    client.on("error", () => {}).on("close", () => open.delete(client));
    if (m === "hang") return;
    if (m === "http500" || m === "garbage") {
      client.once("data", () => {
        client.end(
          m === "http500"
            ? rawHttp("500 Internal Server Error", "text/plain", "upstream exploded")
            : rawHttp("200 OK", "application/json", "\u0000\u00ff<html>not json, not DER"),
        );
      });
      return;
    }
    const upstream = net.connect(targetPort, targetHost);
    open.add(upstream);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      open.delete(client);
      open.delete(upstream);
    };
    client.on("error", drop).on("close", drop);
    upstream.on("error", drop).on("close", drop);
    if (m === "slow") {
      const delay = slowMs;
      client.on("data", (d) => setTimeout(() => upstream.write(d), delay));
      upstream.on("data", (d) => setTimeout(() => client.write(d), delay));
    } else {
      client.pipe(upstream);
      upstream.pipe(client);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  proxy.port = (server.address() as net.AddressInfo).port;
  proxy.url = `http://127.0.0.1:${proxy.port}`;
  return proxy;
}
