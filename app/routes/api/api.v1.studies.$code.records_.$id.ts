import type { ActionFunctionArgs, LoaderFunctionArgs } from "@remix-run/node";
import { apiError, apiPrincipal, rateLimited, readJsonBody } from "../../platform/api.server.ts";
import { apiServiceErrorResponse } from "../../platform/error-response.server.ts";
import { correctRecord, recordHistory } from "../../records/records.server.ts";

const MAX_BODY = 64 * 1024;

function visible(principal: { platformAdmin: boolean; memberships: { studyCode: string }[] }, code: string) {
  return principal.platformAdmin || principal.memberships.some((m) => m.studyCode === code.toUpperCase());
}

/** GET /api/v1/studies/:code/records/:id: current version, every version with its changes and seal status. */
export async function loader({ request, context, params }: LoaderFunctionArgs) {
  const principal = await apiPrincipal(request, context.ctx);
  if (!principal) return apiError(401, "unauthenticated", "send Authorization: Bearer TOKEN (or sign in)");
  const limited = await rateLimited(context.ctx, principal, context.ctx.env.apiRatePerSecond);
  if (limited) return limited;
  if (!visible(principal, params.code ?? "")) return apiError(404, "not_found", `no study ${params.code}`);
  try {
    return Response.json(
      await recordHistory(context.ctx, principal, (params.code ?? "").toUpperCase(), params.id ?? ""),
    );
  } catch (err) {
    return apiServiceErrorResponse(err);
  }
}

/** PUT /api/v1/studies/:code/records/:id (body {"data","reason"}): a correction; the reason is required. */
export async function action({ request, context, params }: ActionFunctionArgs) {
  if (request.method !== "PUT") return apiError(405, "method_not_allowed", "use PUT to correct a record");
  const principal = await apiPrincipal(request, context.ctx);
  if (!principal) return apiError(401, "unauthenticated", "send Authorization: Bearer TOKEN (or sign in)");
  const limited = await rateLimited(context.ctx, principal, context.ctx.env.apiRatePerSecond);
  if (limited) return limited;
  if (!visible(principal, params.code ?? "")) return apiError(404, "not_found", `no study ${params.code}`);
  const body = await readJsonBody(request, MAX_BODY);
  if (!body.ok) return body.response;
  try {
    return Response.json(
      await correctRecord(context.ctx, principal, (params.code ?? "").toUpperCase(), params.id ?? "", body.value),
    );
  } catch (err) {
    return apiServiceErrorResponse(err);
  }
}
