/**
 * The portal process: configuration, database (migrated at start), demo seed, the Remix request handler,
 * and, on the embedded database, the control socket the CLI uses; the sealer and the anchor worker.
 * On PostgreSQL with WEB_CONCURRENCY > 1 this process becomes the primary of a cluster (bin/cluster.ts, ADR 0043):
 * it migrates and seeds once, then forks the workers, each of which runs this file as one portal. The background
 * duties (sealer, anchor worker, import runner, outbox sender) run in one process per database: the holder of the
 * duties lock (app/platform/leader.server.ts).
 */
import cluster from "node:cluster";
import path from "node:path";
import { existsSync, readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import express from "express";
import * as remixExpress from "@remix-run/express/dist/server.js";
import { createReadableStreamFromReadable, createRequestHandler, type ServerBuild } from "@remix-run/node";
import { bodyLimitFor, limitedBody, tooLargeMessage } from "../app/platform/body-limit.server.ts";
import { ConfigError, developmentPublicUrl, parseEnv, type Env } from "../app/platform/env.server.ts";
import { createAppContext, type AppContext } from "../app/platform/context.server.ts";
import { demoCredentialsFile, seedDemo } from "../app/studies/demo-seed.server.ts";
import { startControlServer } from "../app/platform/control.server.ts";
import { DatabaseError } from "../db/client.ts";
import { PgliteBusyError } from "../db/pglite-lock.ts";
import {
  carriesSessionCookie,
  forwardedHostCheck,
  pageMethods,
  sameOriginPosts,
  securityHeaders,
} from "../app/platform/http.server.ts";
import { startSealer } from "../app/log/sealer.server.ts";
import { startImportRunner } from "../app/data-import/import-jobs.server.ts";
import { startAnchorWorker } from "../app/anchor-worker/anchor-worker.server.ts";
import { startOutboxSender } from "../app/notifications/outbox-sender.server.ts";
import { describeEvent } from "../app/platform/commands.server.ts";
import { DATABASE_RETRY_AFTER_S } from "../db/availability.ts";
import { runWhileLeader, type Stopper } from "../app/platform/leader.server.ts";
import { runPrimary, WORKER_NUMBER_VAR } from "./cluster.ts";
import { packageRoot } from "../app/platform/package-root.server.ts";
import { apiRoutes, callApiRoute, matchApiRoute } from "../app/platform/api-router.server.ts";

// The Express adapter's request/response converters (exported by @remix-run/express's server module, not its index):
// the portal calls Remix itself so it can turn a database outage into a 503 before anything is sent.
const { createRemixRequest, sendRemixResponse } = remixExpress as unknown as {
  createRemixRequest(req: express.Request, res: express.Response): Request;
  sendRemixResponse(res: express.Response, response: Response): Promise<void>;
};

/** A small (JSON) response in one write, without piping a web stream into the socket. */
async function sendBuffered(res: express.Response, response: Response) {
  const body = response.body ? Buffer.from(await response.arrayBuffer()) : null;
  res.statusCode = response.status;
  if (response.statusText) res.statusMessage = response.statusText;
  for (const [k, v] of response.headers) if (k !== "set-cookie") res.setHeader(k, v);
  const cookies = response.headers.getSetCookie();
  if (cookies.length) res.setHeader("set-cookie", cookies);
  res.end(body);
}

/** 413, and the connection closed so the rest of the body is never read. */
function refuseTooLarge(req: express.Request, res: express.Response, limit: number) {
  const message = tooLargeMessage(limit);
  res.status(413).set("Connection", "close");
  if (req.path.startsWith("/api/")) res.json({ error: { code: "too_large", message, field: "body" } });
  else res.type("text/plain").send(message);
}

/** The answer while PostgreSQL is unreachable: 503 + Retry-After, JSON for API clients, a short page for people. */
function databaseUnavailable(request: Request): Response {
  const headers = { "retry-after": String(DATABASE_RETRY_AFTER_S), "cache-control": "no-store" };
  const message =
    `the database is unavailable (restarting or unreachable); ` +
    `nothing was changed by this request; retry after ${DATABASE_RETRY_AFTER_S} s`;
  const url = new URL(request.url);
  if (url.pathname.startsWith("/api/") || /application\/json/.test(request.headers.get("accept") ?? "")) {
    return Response.json({ error: { code: "database_unavailable", message } }, { status: 503, headers });
  }
  const page =
    `<!doctype html><html lang="en"><head><meta charset="utf-8">` +
    `<title>TrialSeal: temporarily unavailable</title></head>` +
    `<body><h1>Temporarily unavailable</h1><p>${message}.</p></body></html>`;
  return new Response(page, { status: 503, headers: { ...headers, "content-type": "text/html; charset=utf-8" } });
}

// Located from the package root, not import.meta.url: this file also runs bundled (build/cli/serve.mjs).
const ROOT = packageRoot();

function die(message: string): never {
  process.stderr.write(`trialseal: ${message}\n`);
  process.exit(1);
}

async function main() {
  let env: Env;
  try {
    env = parseEnv();
  } catch (err) {
    if (err instanceof ConfigError) die(err.message);
    throw err;
  }
  const buildFile = path.join(ROOT, "build", "index.js");
  if (!existsSync(buildFile)) die("the portal is not built: run `npm run build` (npm start builds it for you)");

  const controlSocket = env.databaseUrl ? undefined : path.resolve(env.dataDir, "control.sock");
  const open = async () => {
    try {
      return await createAppContext(env, {
        lockInfo: controlSocket ? { controlSocket, role: "portal" } : undefined,
      });
    } catch (err) {
      if (err instanceof DatabaseError || err instanceof PgliteBusyError) die(err.message);
      throw err;
    }
  };
  const seed = async (ctx: AppContext) => {
    if (!env.seedDemo) return;
    const password = await seedDemo(ctx);
    const credentials = demoCredentialsFile(env);
    if (password) {
      console.log(`Seeded demo study DEMO-001. Demo password (all demo users): ${password}`);
      console.log(`Demo logins written to ${credentials}`);
    } else if (existsSync(credentials)) {
      console.log(`Demo study DEMO-001: the demo logins of this database are in ${credentials}`);
    }
  };

  // The primary of a cluster (PostgreSQL only: env.webConcurrency is 1 on the embedded database) migrates and
  // seeds once, so the workers do not race each other at it, then only supervises.
  if (cluster.isPrimary && env.webConcurrency > 1) {
    const prepared = await open();
    await seed(prepared);
    await prepared.database.close();
    process.exit(await runPrimary(env.webConcurrency));
  }
  const workerNumber = cluster.isWorker ? Number(process.env[WORKER_NUMBER_VAR] ?? cluster.worker?.id) : null;
  const ctx = await open();
  if (workerNumber === null) await seed(ctx);

  const control = controlSocket ? await startControlServer(ctx, controlSocket) : null;
  const startDuties = (): Stopper => {
    const stopSealer = startSealer(ctx);
    const stopImports = startImportRunner(ctx); // issue 18: import jobs in the background (ADR 0037)
    const stopAnchoring = startAnchorWorker(ctx, {
      onEvent: (e) => {
        if (e.type !== "committed") process.stdout.write(`anchor ${describeEvent(e)}`);
      },
    });
    // Notifications (ADR 0035): the outbox is sent by SMTP while SMTP_URL is set; without it nothing is sent.
    const stopOutbox = startOutboxSender(ctx);
    if (!env.smtpUrl) console.log("SMTP_URL is not set: notifications stay in the outbox (see /outbox)");
    return async () => {
      await stopImports();
      await stopSealer();
      await stopAnchoring();
      await stopOutbox();
    };
  };
  // On PostgreSQL only the holder of the duties lock runs them (one per database, however many processes).
  const whoAmI = workerNumber === null ? `pid ${process.pid}` : `worker ${workerNumber}, pid ${process.pid}`;
  const stopDuties = env.databaseUrl
    ? runWhileLeader(env.databaseUrl, startDuties, {
        onChange: (leading, why) =>
          console.log(
            `background duties (sealer, anchoring, imports, outbox) ${leading ? "run" : "stopped"} ` +
              `in ${whoAmI}: ${why}`,
          ),
      })
    : startDuties();
  const build = (await import(pathToFileURL(buildFile).href)) as ServerBuild;

  const app = express();
  app.disable("x-powered-by");
  if (workerNumber !== null)
    // Which worker answered (1..WEB_CONCURRENCY): for operators and the cluster test; no pid, no host name.
    app.use((_req, res, next) => {
      res.setHeader("x-trialseal-worker", String(workerNumber));
      next();
    });
  app.set("trust proxy", "loopback");
  app.use(securityHeaders(env));
  app.use(forwardedHostCheck(ctx.env));
  app.use("/build", express.static(path.join(ROOT, "public", "build"), { immutable: true, maxAge: "1y" }));
  app.use(express.static(path.join(ROOT, "public"), { maxAge: "1h" }));
  // The self-contained verification page (built with the portal): its own CSP allows exactly its inline script.
  const verifyHtml = path.join(ROOT, "build", "verify.html");
  app.get(["/verify", "/verify.html"], (_req, res) => {
    if (!existsSync(verifyHtml))
      return res.status(503).type("text/plain").send("the verification page is not built: run npm run build");
    const html = readFileSync(verifyHtml, "utf8");
    const csp = /http-equiv="Content-Security-Policy" content="([^"]+)"/.exec(html)?.[1] ?? "default-src 'none'";
    res.setHeader("Content-Security-Policy", csp);
    res.type("html").send(html);
  });
  app.use(sameOriginPosts);
  app.use(pageMethods);
  const handle = createRequestHandler(build, env.production ? "production" : "development");
  // The /api/v1 fast path (ADR 0042): the same route modules, called without Remix's per-request routing.
  // TRIALSEAL_API_VIA_REMIX=1 sends /api/v1 through Remix as before: only for measuring the difference (bench).
  const api = process.env.TRIALSEAL_API_VIA_REMIX === "1" ? [] : apiRoutes(build);
  app.all("*", async (req, res, next) => {
    try {
      const requestState = { databaseUnavailable: false };
      let request: Request;
      // The client's address as Express sees it ("trust proxy": loopback): an X-Forwarded-For from anywhere
      // else is replaced, so a client cannot pick its own source and dodge the sign-in back-off (ADR 0022).
      req.headers["x-forwarded-for"] = req.ip ?? req.socket.remoteAddress ?? "unknown";
      let limit = 0;
      let bodyExceeded = () => false;
      try {
        if (req.method === "GET" || req.method === "HEAD") request = createRemixRequest(req, res);
        else {
          // Bodies are limited while they stream in, before anything parses them (413 past the limit).
          limit = bodyLimitFor(req.path);
          if (Number(req.get("content-length") ?? "0") > limit) return refuseTooLarge(req, res, limit);
          // The URL, headers and abort signal as Remix builds them; the body through the limiter.
          const shape = createRemixRequest(Object.assign(Object.create(req), { method: "GET" }), res);
          const body = limitedBody(req, limit);
          bodyExceeded = body.exceeded;
          request = new Request(shape.url, {
            method: req.method,
            headers: shape.headers,
            signal: shape.signal,
            body: createReadableStreamFromReadable(body.stream),
            duplex: "half",
          } as RequestInit);
        }
      } catch {
        res.status(400).type("text/plain").send("bad request: the Host header is not a valid host name");
        return;
      }
      const loadContext = { ctx, cspNonce: res.locals.cspNonce as string, requestState };
      const match =
        req.path.startsWith("/api/v1/") && !req.url.includes("_data=") ? matchApiRoute(api, req.path) : null;
      const direct = match ? await callApiRoute(build, match, request, loadContext, env.production) : null;
      let response = direct ?? (await handle(request, loadContext));
      if (bodyExceeded()) return refuseTooLarge(req, res, limit);
      // ASVS V8.2.1: what a signed-in person sees is not kept in caches.
      if (
        carriesSessionCookie(req.get("cookie")) &&
        /^text\/html/.test(response.headers.get("content-type") ?? "") &&
        !response.headers.has("cache-control")
      ) {
        const headers = new Headers(response.headers);
        headers.set("cache-control", "no-store");
        response = new Response(response.body, { status: response.status, statusText: response.statusText, headers });
      }
      // A write that failed because PostgreSQL went away was rolled back by it: the client may simply retry.
      if (requestState.databaseUnavailable && response.status >= 500) response = databaseUnavailable(request);
      if (direct && response === direct && /^application\/json\b/.test(response.headers.get("content-type") ?? ""))
        await sendBuffered(res, response);
      else await sendRemixResponse(res, response);
    } catch (err) {
      next(err);
    }
  });

  // The last resort: never a stack trace to the client (it is logged here).
  app.use((err: unknown, req: express.Request, res: express.Response, _next: express.NextFunction) => {
    // A path Express cannot decode (malformed %-escapes) is the client's error: 400, not a logged 500.
    if (err instanceof URIError && (err as { status?: number }).status === 400 && !res.headersSent) {
      const message = "malformed URL: the path holds an invalid %-escape";
      res.status(400);
      if (req.path.startsWith("/api/")) return res.json({ error: { code: "bad_request", message, field: "path" } });
      return res.type("text/plain").send(message);
    }
    console.error("portal error:", err);
    if (res.headersSent) return res.end();
    res.status(500).type("text/plain").send("internal error: the request could not be completed (see the server log)");
  });

  const server = app.listen(env.port, env.host, () => {
    const addr = server.address();
    const port = typeof addr === "object" && addr ? addr.port : env.port;
    // Without PUBLIC_URL (development), links point at the port actually listened on (PORT=0 picks one).
    if (!env.publicUrlConfigured) env.publicUrl = developmentPublicUrl(env.host, port);
    console.log(
      `TrialSeal portal on http://localhost:${port} (database: ${ctx.database.engine} ${ctx.database.where}` +
        `${workerNumber === null ? "" : `; worker ${workerNumber}, pid ${process.pid}`})`,
    );
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
    await stopDuties();
    await ctx.database.close().catch(() => {});
    process.exit(0);
  };
  process.on("SIGINT", () => void stop("SIGINT"));
  process.on("SIGTERM", () => void stop("SIGTERM"));
  // A worker whose primary died (not an orderly stop: then this worker is already stopping) exits at once, as the
  // service as a whole has crashed: no orphan keeps the duties lock or half of the service alive. Transactions in
  // flight are rolled back by PostgreSQL; clients retry with their Idempotency-Key.
  if (workerNumber !== null)
    process.on("disconnect", () => {
      if (stopping) return;
      process.stderr.write("trialseal: the cluster primary exited: this worker exits too\n");
      process.exit(1);
    });
}

main().catch((err) => die(err instanceof Error ? err.message : String(err)));
