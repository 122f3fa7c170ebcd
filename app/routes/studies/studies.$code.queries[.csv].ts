import type { LoaderFunctionArgs } from "@remix-run/node";
import { exportDownload } from "../../exports/download-response.server.ts";
import { serviceErrorResponse } from "../../platform/error-response.server.ts";
import { requestMeta } from "../../platform/session.server.ts";
import { requireStudy } from "../../platform/require-study.server.ts";
import { parseQueryFilters, queryListCsv } from "../../queries/query-list.server.ts";

/** The query list as CSV, with the page's filters; the export is itself an audit event. */
export async function loader({ request, context, params }: LoaderFunctionArgs) {
  const { study, user } = await requireStudy(request, context, params, "records.read");
  try {
    const filters = parseQueryFilters(new URL(request.url).searchParams);
    const { csv } = await queryListCsv(context.ctx, user, study.code, filters, { ip: requestMeta(request).ip });
    return exportDownload(csv, { contentType: "text/csv; charset=utf-8", name: `${study.code}-queries.csv` });
  } catch (err) {
    // The error's own status (403 forbidden, 422 invalid filter, ...), the message in words.
    return serviceErrorResponse(err);
  }
}
