import type { LoaderFunctionArgs } from "@remix-run/node";
import { exportDownload } from "../../exports/download-response.server.ts";
import { auditTrailCsv, parseAuditFilters, type AuditFilters } from "../../audit-trail/audit-trail.server.ts";
import { accessDetail } from "../../data-sharing/access-detail.server.ts";
import { ServiceError } from "../../platform/errors.server.ts";
import { requestMeta } from "../../platform/session.server.ts";
import { requireStudy } from "../../platform/require-study.server.ts";

/** The audit trail as CSV, with the page's filters; the export is itself an audit event. */
export async function loader({ request, context, params }: LoaderFunctionArgs) {
  const { study, user } = await requireStudy(request, context, params, "audit.view");
  let filters: AuditFilters;
  try {
    filters = parseAuditFilters(new URL(request.url).searchParams);
  } catch (err) {
    if (err instanceof ServiceError)
      return new Response(`${err.message}\n`, {
        status: 400,
        headers: { "content-type": "text/plain; charset=utf-8" },
      });
    throw err;
  }
  const csv = await auditTrailCsv(context.ctx, study, filters, {
    userId: user.userId,
    ip: requestMeta(request).ip,
    access: { ...accessDetail(user, study.id, null) },
  });
  return exportDownload(csv, { contentType: "text/csv; charset=utf-8", name: `${study.code}-audit-trail.csv` });
}
