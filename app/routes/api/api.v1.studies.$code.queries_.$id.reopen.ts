import type { ActionFunctionArgs } from "@remix-run/node";
import { reopenQuery } from "../../clinical-monitoring/clinical-monitoring.server.ts";
import { apiError, apiPrincipal, rateLimited, readJsonBody } from "../../platform/api.server.ts";
import { apiServiceErrorResponse } from "../../platform/error-response.server.ts";

const MAX_BODY = 16 * 1024;

/** POST /api/v1/studies/:code/queries/:id/reopen (body {"reason"}): an answered or closed query opened again. */
export async function action({ request, context, params }: ActionFunctionArgs) {
  if (request.method !== "POST") return apiError(405, "method_not_allowed", "use POST to re-open a query");
  const principal = await apiPrincipal(request, context.ctx);
  if (!principal) return apiError(401, "unauthenticated", "send Authorization: Bearer TOKEN (or sign in)");
  const limited = await rateLimited(context.ctx, principal, context.ctx.env.apiRatePerSecond);
  if (limited) return limited;
  const code = (params.code ?? "").toUpperCase();
  if (!principal.platformAdmin && !principal.memberships.some((m) => m.studyCode === code))
    return apiError(404, "not_found", `no study ${params.code}`);
  const body = await readJsonBody(request, MAX_BODY);
  if (!body.ok) return body.response;
  const reason = (body.value as { reason?: unknown } | null)?.reason;
  if (typeof reason !== "string")
    return apiError(400, "invalid", "reason: say why the query is re-opened (a string)", "reason");
  try {
    await reopenQuery(context.ctx, principal, code, params.id ?? "", { reason });
    return Response.json({ query: params.id, status: "open" });
  } catch (err) {
    return apiServiceErrorResponse(err);
  }
}
