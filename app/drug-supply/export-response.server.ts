/**
 * The supply exports' downloads (issue 21, ADR 0062): a file as an attachment that is never cached, and a refusal
 * as one plain-text line naming the problem (a missing ?site= is a 400 naming the parameter, an unknown site a 404
 * naming the site, another site's export a 403), never a stack trace.
 */
import { exportDownload } from "../exports/download-response.server.ts";
import { ServiceError } from "../platform/errors.server.ts";

export function downloadResponse(body: string | Uint8Array, contentType: string, fileName: string): Response {
  return exportDownload(body, { contentType, name: fileName });
}

/** A ServiceError as a plain-text response (invalid: 400); anything else is rethrown. */
export function exportErrorResponse(err: unknown): Response {
  if (!(err instanceof ServiceError)) throw err;
  return new Response(`${err.message}\n`, {
    status: err.code === "invalid" ? 400 : err.status,
    headers: { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" },
  });
}
