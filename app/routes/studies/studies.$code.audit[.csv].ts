import type { LoaderFunctionArgs } from "@remix-run/node";
import { findStudyByCode } from "../../../db/queries/studies.ts";
import { auditTrailCsv, parseAuditFilters } from "../../audit-trail/audit-trail.server.ts";
import { ServiceError } from "../../platform/errors.server.ts";
import { requestMeta, requireStudyPermission } from "../../platform/session.server.ts";

/** The audit trail as CSV, with the page's filters; the export is itself an audit event. */
export async function loader({ request, context, params }: LoaderFunctionArgs) {
  const study = await findStudyByCode(context.ctx.db, params.code ?? "");
  if (!study) throw new Response("No such study", { status: 404 });
  const user = await requireStudyPermission(request, context, "audit.view", { studyId: study.id });
  let filters;
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
  const csv = await auditTrailCsv(context.ctx, study, filters, { userId: user.userId, ip: requestMeta(request).ip });
  return new Response(csv, {
    headers: {
      "content-type": "text/csv; charset=utf-8",
      "content-disposition": `attachment; filename="${study.code}-audit-trail.csv"`,
      "cache-control": "no-store",
    },
  });
}
