/**
 * A lot's certificate of analysis (ADR 0056), as an attachment, only while its bytes hash to the SHA-256 its sealed
 * entry holds: altered bytes are refused with a plain message (409), never served.
 */
import type { LoaderFunctionArgs } from "@remix-run/node";
import { lotCoa } from "../../drug-supply/lots.server.ts";
import { ServiceError } from "../../platform/errors.server.ts";
import { requireStudy } from "../../platform/require-study.server.ts";

/** A file name safe inside a quoted content-disposition parameter (the original is kept in filename*). */
const asciiName = (name: string) => name.replace(/[^A-Za-z0-9._ -]/g, "_") || "certificate.pdf";
const utf8Name = (name: string) => `filename*=UTF-8''${encodeURIComponent(name)}`;

export async function loader({ request, context, params }: LoaderFunctionArgs) {
  const { study, user } = await requireStudy(request, context, params, "supply.view");
  try {
    const c = await lotCoa(context.ctx, user, study.code, params.lot ?? "");
    return new Response(c.bytes, {
      headers: {
        "content-type": "application/pdf",
        "content-disposition": `attachment; filename="${asciiName(c.fileName)}"; ${utf8Name(c.fileName)}`,
        "cache-control": "no-store",
        "x-content-sha256": c.sha256,
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
