/**
 * A study document version's PDF (ADR 0048), as an attachment, only when its bytes still hash to the SHA-256 its
 * sealed entry holds: altered bytes are refused with a plain message (409), never served.
 */
import type { LoaderFunctionArgs } from "@remix-run/node";
import { ServiceError } from "../../platform/errors.server.ts";
import { requireStudy } from "../../platform/require-study.server.ts";
import { documentDownload } from "../../study-documents/study-documents.server.ts";

/** A file name safe inside a quoted content-disposition parameter (the original is kept in filename*). */
const asciiName = (name: string) => name.replace(/[^A-Za-z0-9._ -]/g, "_") || "document.pdf";
const utf8Name = (name: string) => `filename*=UTF-8''${encodeURIComponent(name)}`;

export async function loader({ request, context, params }: LoaderFunctionArgs) {
  const { study, user } = await requireStudy(request, context, params, "documents.read");
  try {
    const d = await documentDownload(context.ctx, user, study.code, params.id ?? "");
    return new Response(d.content, {
      headers: {
        "content-type": "application/pdf",
        "content-disposition": `attachment; filename="${asciiName(d.fileName)}"; ${utf8Name(d.fileName)}`,
        "cache-control": "no-store",
        "x-content-sha256": d.sha256,
      },
    });
  } catch (err) {
    if (err instanceof ServiceError)
      return new Response(`${err.message}\n`, {
        status: err.status,
        headers: { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" },
      });
    throw err;
  }
}
