/**
 * Every export download's response (ADR 0071): the file as an attachment that is never cached, stating the choices
 * it honours in the `TrialSeal-Choices` header. Every download route answers through it, so none can forget the
 * statement.
 */
import { CHOICES_HEADER, choicesHeaderValue } from "../data-sharing/choices-statement.ts";

export function exportDownload(
  body: string | Uint8Array,
  file: { contentType: string; name: string; headers?: Record<string, string> },
): Response {
  return new Response(typeof body === "string" ? body : new Uint8Array(body), {
    headers: {
      "content-type": file.contentType,
      "content-disposition": `attachment; filename="${file.name.replace(/[^A-Za-z0-9._-]/g, "_")}"`,
      "cache-control": "no-store",
      [CHOICES_HEADER]: choicesHeaderValue(),
      ...file.headers,
    },
  });
}
