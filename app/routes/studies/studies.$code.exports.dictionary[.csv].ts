import type { LoaderFunctionArgs } from "@remix-run/node";
import { exportDownload } from "../../exports/download-response.server.ts";
import { dataDictionaryCsv } from "../../exports/study-operations.server.ts";
import { ServiceError } from "../../platform/errors.server.ts";
import { requireStudy } from "../../platform/require-study.server.ts";

/** The data dictionary (REDCap layout) of the study's latest approved forms, as a download (an audit event). */
export async function loader({ request, context, params }: LoaderFunctionArgs) {
  const { study, user } = await requireStudy(request, context, params, "study.view");
  try {
    const file = await dataDictionaryCsv(context.ctx, user, study.code);
    return exportDownload(file.text, { contentType: "text/csv; charset=utf-8", name: file.name });
  } catch (err) {
    if (err instanceof ServiceError) throw new Response(err.message, { status: err.status });
    throw err;
  }
}
