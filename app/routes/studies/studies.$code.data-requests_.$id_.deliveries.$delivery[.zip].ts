/**
 * A data-use delivery's package (ADR 0070), for the researcher who asked, until it expires (then 410 with words);
 * each download is an audit event. Anyone else: 403 (the committee, data_use.view) or 404 (another researcher).
 */
import type { LoaderFunctionArgs } from "@remix-run/node";
import { downloadDelivery } from "../../data-sharing/deliveries.server.ts";
import { requireDataUseStudy } from "../../platform/require-data-use-study.server.ts";
import { ServiceError } from "../../platform/errors.server.ts";

export async function loader({ request, context, params }: LoaderFunctionArgs) {
  const { study, user } = await requireDataUseStudy(request, context, params);
  try {
    const d = await downloadDelivery(context.ctx, user, study.code, params.id ?? "", params.delivery ?? "");
    return new Response(Buffer.from(d.bytes), {
      headers: {
        "content-type": "application/zip",
        "content-disposition": `attachment; filename="${d.filename}"`,
        "cache-control": "no-store",
        "x-manifest-sha256": d.manifestSha256,
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
