/**
 * The portal's control socket: a local HTTP endpoint on a Unix socket (mode 0600) in the data directory.
 * While the portal holds the embedded PGlite database, the CLI sends its commands here.
 */
import { createServer, request, type Server } from "node:http";
import { chmodSync, unlinkSync } from "node:fs";
import type { AppContext } from "./context.server.ts";
import { runCommand, type CommandOutput } from "./commands.server.ts";

/** A command's input: `forms import` sends a file of forms of up to 1 MiB (FORM_FILE_MAX_BYTES), JSON-escaped. */
const MAX_BODY = 4 * 1024 * 1024;

export async function startControlServer(ctx: AppContext, socketPath: string): Promise<Server> {
  try {
    unlinkSync(socketPath); // a stale socket of a process that is gone (the lock file guarantees that)
  } catch {
    // none
  }
  const server = createServer((req, res) => {
    if (req.method !== "POST" || req.url !== "/command") {
      res.writeHead(404).end();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) req.destroy();
      else chunks.push(c);
    });
    req.on("end", async () => {
      let out: CommandOutput;
      try {
        const { command, input } = JSON.parse(Buffer.concat(chunks).toString("utf8")) as {
          command: string;
          input: unknown;
        };
        out = await runCommand(ctx, command, input);
      } catch (err) {
        out = {
          stdout: "",
          stderr: `trialseal: the portal could not run the command: ${(err as Error).message}\n`,
          exitCode: 1,
        };
      }
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(out));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(socketPath, () => resolve());
  });
  chmodSync(socketPath, 0o600);
  return server;
}

/** Send a command to a running portal. */
export function sendCommand(socketPath: string, command: string, input: unknown): Promise<CommandOutput> {
  return new Promise((resolve, reject) => {
    const body = JSON.stringify({ command, input });
    const req = request(
      {
        socketPath,
        path: "/command",
        method: "POST",
        headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          try {
            resolve(JSON.parse(Buffer.concat(chunks).toString("utf8")) as CommandOutput);
          } catch (err) {
            reject(err);
          }
        });
      },
    );
    req.on("error", reject);
    req.setTimeout(120_000, () => req.destroy(new Error("the portal did not answer within 120 s")));
    req.end(body);
  });
}
