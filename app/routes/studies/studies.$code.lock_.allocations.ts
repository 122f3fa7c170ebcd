import type { LoaderFunctionArgs } from "@remix-run/node";
import { exportDownload } from "../../exports/download-response.server.ts";
import { ServiceError } from "../../platform/errors.server.ts";
import { requireStudy } from "../../platform/require-study.server.ts";
import { allocationsExport } from "../../randomization/allocations-export.server.ts";

/**
 * The allocations file after unblinding (the same as `trialseal export --format allocations`): study-wide roles with
 * proofs.read; refused (409) before the study is unblinded (ADR 0054).
 */
export async function loader({ request, context, params }: LoaderFunctionArgs) {
  const { study, user } = await requireStudy(request, context, params, "proofs.read");
  try {
    const f = await allocationsExport(context.ctx, user, study.code);
    return exportDownload(f.data, f);
  } catch (err) {
    if (err instanceof ServiceError)
      throw new Response(err.message, { status: err.status, headers: { "content-type": "text/plain; charset=utf-8" } });
    throw err;
  }
}
