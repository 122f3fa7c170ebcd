import type { LoaderFunctionArgs } from "@remix-run/node";
import { apiError, apiPrincipal, rateLimited } from "../../platform/api.server.ts";
import { apiServiceErrorResponse } from "../../platform/error-response.server.ts";
import { requestMeta } from "../../platform/session.server.ts";
import { parseQueryFilters, queryListExport } from "../../queries/query-list.server.ts";

/**
 * GET /api/v1/studies/:code/queries?status=&site=&form=&field=&raiser=&mine=1: the study's queries the caller may
 * read, each with its field label, raiser, answerer, age in days, whom it waits for and its full history (ADR 0034);
 * an export event naming the participants of the queries listed (ADR 0071).
 */
export async function loader({ request, context, params }: LoaderFunctionArgs) {
  const principal = await apiPrincipal(request, context.ctx);
  if (!principal) return apiError(401, "unauthenticated", "send Authorization: Bearer TOKEN (or sign in)");
  const limited = await rateLimited(context.ctx, principal, context.ctx.env.apiRatePerSecond);
  if (limited) return limited;
  const code = (params.code ?? "").toUpperCase();
  if (!principal.platformAdmin && !principal.memberships.some((m) => m.studyCode === code))
    return apiError(404, "not_found", `no study ${params.code}`);
  try {
    const filters = parseQueryFilters(new URL(request.url).searchParams);
    const list = await queryListExport(context.ctx, principal, code, filters, { ip: requestMeta(request).ip });
    return Response.json({
      study: list.study.code,
      filters,
      queries: list.rows.map(({ siteId: _s, raiserKey: _r, ...r }) => r),
    });
  } catch (err) {
    return apiServiceErrorResponse(err);
  }
}
