/**
 * Server rendering with a per-request CSP nonce (generated in bin/serve.ts, see app/platform/http.server.ts): the
 * only inline scripts, Remix's hydration data and scroll restoration, carry it; nothing else inline runs.
 */
import { PassThrough } from "node:stream";
import type { AppLoadContext, EntryContext } from "@remix-run/node";
import { createReadableStreamFromReadable } from "@remix-run/node";
import { RemixServer } from "@remix-run/react";
import { isbot } from "isbot";
import { renderToPipeableStream } from "react-dom/server";
import { NonceContext } from "./platform/nonce.tsx";
import { databaseUnavailableCode } from "../db/availability.ts";

const ABORT_DELAY = 5_000;

export default function handleRequest(
  request: Request,
  responseStatusCode: number,
  responseHeaders: Headers,
  remixContext: EntryContext,
  loadContext: AppLoadContext,
) {
  const nonce = loadContext.cspNonce;
  const waitForAll = isbot(request.headers.get("user-agent") ?? "") || remixContext.isSpaMode;
  return new Promise((resolve, reject) => {
    let shellRendered = false;
    const { pipe, abort } = renderToPipeableStream(
      <NonceContext.Provider value={nonce}>
        <RemixServer context={remixContext} url={request.url} abortDelay={ABORT_DELAY} nonce={nonce} />
      </NonceContext.Provider>,
      {
        nonce,
        [waitForAll ? "onAllReady" : "onShellReady"]() {
          shellRendered = true;
          const body = new PassThrough();
          responseHeaders.set("Content-Type", "text/html");
          resolve(
            new Response(createReadableStreamFromReadable(body), {
              headers: responseHeaders,
              status: responseStatusCode,
            }),
          );
          pipe(body);
        },
        onShellError(error: unknown) {
          reject(error);
        },
        onError(error: unknown) {
          responseStatusCode = 500;
          // Log only after the shell: errors before it are reported by onShellError. Never log request data.
          if (shellRendered) console.error(error instanceof Error ? error.message : String(error));
        },
      },
    );
    setTimeout(abort, ABORT_DELAY);
  });
}

/**
 * Server errors are logged as one line (never request data, never a stack trace in production logs);
 * a request for a URL that matches no route is not an error worth logging, and aborted requests neither.
 */
export function handleError(error: unknown, { request, context }: { request: Request; context?: AppLoadContext }) {
  if (request.signal.aborted) return;
  const message = error instanceof Error ? error.message : String(error);
  const unavailable = databaseUnavailableCode(error);
  if (unavailable) {
    // Not a bug but an outage (PostgreSQL restarting): the response becomes a 503 with Retry-After. Only the
    // code is logged: a wrapped query error's message carries its parameters.
    if (context?.requestState) context.requestState.databaseUnavailable = true;
    console.error(`portal: database unavailable (${unavailable}); answering 503`);
    return;
  }
  if (/^No route matches URL/.test(message)) return;
  // A failed query's message ends with its parameters (a design, a seed, free text): never logged (issue 20).
  const paramsAt = message.indexOf("\nparams:");
  console.error(`portal error: ${paramsAt === -1 ? message : `${message.slice(0, paramsAt)} (parameters left out)`}`);
}
