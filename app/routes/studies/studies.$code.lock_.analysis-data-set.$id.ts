import type { LoaderFunctionArgs } from "@remix-run/node";
import { exportDownload } from "../../exports/download-response.server.ts";
import { analysisDataSet } from "../../database-lock/database-lock.server.ts";
import { ServiceError } from "../../platform/errors.server.ts";
import { requireStudy } from "../../platform/require-study.server.ts";

/**
 * A database lock's analysis data set (ZIP), served only when its bytes still hash to the SHA-256 sealed at lock;
 * otherwise the mismatch is shown (409), never the altered bytes (ADR 0054).
 */
export async function loader({ request, context, params }: LoaderFunctionArgs) {
  const { study, user } = await requireStudy(request, context, params, "study.view");
  try {
    const f = await analysisDataSet(context.ctx, user, study.code, params.id ?? "");
    return exportDownload(f.data, { contentType: "application/zip", name: f.name, headers: { "x-sha256": f.sha256 } });
  } catch (err) {
    if (err instanceof ServiceError)
      throw new Response(err.message, { status: err.status, headers: { "content-type": "text/plain; charset=utf-8" } });
    throw err;
  }
}
