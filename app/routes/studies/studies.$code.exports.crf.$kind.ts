import type { LoaderFunctionArgs } from "@remix-run/node";
import { exportDownload } from "../../exports/download-response.server.ts";
import { CRF_KINDS, crfPdf, type CrfKind } from "../../exports/study-operations.server.ts";
import { ServiceError } from "../../platform/errors.server.ts";
import { requireStudy } from "../../platform/require-study.server.ts";

/** The blank or annotated CRF of the study's latest approved forms as a PDF (an audit event). */
export async function loader({ request, context, params }: LoaderFunctionArgs) {
  const { study, user } = await requireStudy(request, context, params, "study.view");
  const kind = String(params.kind ?? "");
  if (!(CRF_KINDS as readonly string[]).includes(kind))
    throw new Response(`Unknown CRF "${kind}": one of ${CRF_KINDS.join(", ")}`, { status: 404 });
  try {
    const file = await crfPdf(context.ctx, user, study.code, kind as CrfKind);
    return exportDownload(file.data, { contentType: "application/pdf", name: file.name });
  } catch (err) {
    if (err instanceof ServiceError) throw new Response(err.message, { status: err.status });
    throw err;
  }
}
