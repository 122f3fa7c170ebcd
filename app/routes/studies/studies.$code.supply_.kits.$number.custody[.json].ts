import type { LoaderFunctionArgs } from "@remix-run/node";
import { exportDownload } from "../../exports/download-response.server.ts";
import { kitCustodyDownload } from "../../drug-supply/custody.server.ts";
import { ServiceError } from "../../platform/errors.server.ts";
import { requireStudy } from "../../platform/require-study.server.ts";

/**
 * A kit's chain-of-custody file (`trialseal-kit-custody/1`, ADR 0061): supply.custody at the kit's site; the lot's
 * entries and the disclosure of the blinded commitments only for roles who may see kit types (or after unblinding).
 */
export async function loader({ request, context, params }: LoaderFunctionArgs) {
  const { study, user } = await requireStudy(request, context, params, "supply.custody");
  try {
    const f = await kitCustodyDownload(context.ctx, user, study.code, params.number ?? "");
    return exportDownload(f.data, f);
  } catch (err) {
    if (err instanceof ServiceError)
      throw new Response(err.message, { status: err.status, headers: { "content-type": "text/plain; charset=utf-8" } });
    throw err;
  }
}
