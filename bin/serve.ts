/**
 * The portal process: configuration, database (migrated at start), demo seed, the Remix request handler,
 * and, on the embedded database, the control socket the CLI uses; the sealer and the anchor worker.
 */
import path from "node:path";
import { existsSync, readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import express from "express";
import { createRequestHandler } from "@remix-run/express";
import type { ServerBuild } from "@remix-run/node";
import { ConfigError, parseEnv } from "../app/env.server.ts";
import { createAppContext } from "../app/services/context.server.ts";
import { seedDemo } from "../app/services/seed.server.ts";
import { startControlServer } from "../app/control.server.ts";
import { DatabaseError } from "../db/client.ts";
import { PgliteBusyError } from "../db/pglite-lock.ts";
import { securityHeaders, sameOriginPosts } from "../app/http.server.ts";
import { startSealer } from "../app/services/sealer.server.ts";
import { startAnchorWorker } from "../app/services/anchoring.server.ts";
import { describeEvent } from "../app/services/commands.server.ts";

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..");

function die(message: string): never {
  process.stderr.write(`trialseal: ${message}\n`);
  process.exit(1);
}

async function main() {
  let env;
  try {
    env = parseEnv();
  } catch (err) {
    if (err instanceof ConfigError) die(err.message);
    throw err;
  }
  const buildFile = path.join(ROOT, "build", "index.js");
  if (!existsSync(buildFile)) die("the portal is not built: run `npm run build` (npm start builds it for you)");

  const controlSocket = env.databaseUrl ? undefined : path.resolve(env.dataDir, "control.sock");
  let ctx;
  try {
    ctx = await createAppContext(env, { lockInfo: controlSocket ? { controlSocket, role: "portal" } : undefined });
  } catch (err) {
    if (err instanceof DatabaseError || err instanceof PgliteBusyError) die(err.message);
    throw err;
  }

  if (env.seedDemo) {
    const password = await seedDemo(ctx);
    if (password) {
      console.log(`Seeded demo study DEMO-001. Demo password (all demo users): ${password}`);
      console.log(`Demo logins written to ${path.join(env.dataDir, "demo-credentials.txt")}`);
    }
  }

  const control = controlSocket ? await startControlServer(ctx, controlSocket) : null;
  const stopSealer = startSealer(ctx);
  const stopAnchoring = startAnchorWorker(ctx, {
    onEvent: (e) => {
      if (e.type !== "committed") process.stdout.write(`anchor ${describeEvent(e)}`);
    },
  });
  const build = (await import(pathToFileURL(buildFile).href)) as ServerBuild;

  const app = express();
  app.disable("x-powered-by");
  app.set("trust proxy", "loopback");
  app.use(securityHeaders);
  app.use("/build", express.static(path.join(ROOT, "public", "build"), { immutable: true, maxAge: "1y" }));
  app.use(express.static(path.join(ROOT, "public"), { maxAge: "1h" }));
  // The self-contained verification page (built with the portal): its own CSP allows exactly its inline script.
  const verifyHtml = path.join(ROOT, "build", "verify.html");
  app.get(["/verify", "/verify.html"], (_req, res) => {
    if (!existsSync(verifyHtml)) return res.status(503).type("text/plain").send("the verification page is not built: run npm run build");
    const html = readFileSync(verifyHtml, "utf8");
    const csp = /http-equiv="Content-Security-Policy" content="([^"]+)"/.exec(html)?.[1] ?? "default-src 'none'";
    res.setHeader("Content-Security-Policy", csp);
    res.type("html").send(html);
  });
  app.use(sameOriginPosts);
  app.all("*", createRequestHandler({ build, mode: env.production ? "production" : "development", getLoadContext: (_req, res) => ({ ctx, cspNonce: res.locals.cspNonce as string }) }));

  const server = app.listen(env.port, env.host, () => {
    const addr = server.address();
    const port = typeof addr === "object" && addr ? addr.port : env.port;
    console.log(`TrialSeal portal on http://localhost:${port} (database: ${ctx.database.engine} ${ctx.database.where})`);
  });
  // Idle keep-alive connections outlive a load balancer's idle timeout (60 s), so it never reuses a socket
  // that this server has just closed.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  server.on("error", (err: NodeJS.ErrnoException) => {
    die(err.code === "EADDRINUSE" ? `port ${env.port} is already in use (set PORT to another port)` : err.message);
  });

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`Stopping (${signal})...`);
    server.close();
    server.closeAllConnections?.();
    control?.close();
    await stopSealer();
    await stopAnchoring();
    await ctx.database.close().catch(() => {});
    process.exit(0);
  };
  process.on("SIGINT", () => void stop("SIGINT"));
  process.on("SIGTERM", () => void stop("SIGTERM"));
}

main().catch((err) => die(err instanceof Error ? err.message : String(err)));
