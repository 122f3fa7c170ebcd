import type { LoaderFunctionArgs } from "@remix-run/node";
import { exportDownload } from "../../exports/download-response.server.ts";
import { missingDataCsv } from "../../exports/study-operations.server.ts";
import { requireStudy } from "../../platform/require-study.server.ts";

/** The missing-data report as CSV (the records the user may read; an audit event). */
export async function loader({ request, context, params }: LoaderFunctionArgs) {
  const { study, user } = await requireStudy(request, context, params, "records.read");
  const file = await missingDataCsv(context.ctx, user, study.code);
  return exportDownload(file.text, { contentType: "text/csv; charset=utf-8", name: file.name });
}
