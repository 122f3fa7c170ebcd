import type { ActionFunctionArgs } from "@remix-run/node";
import { z } from "zod";
import { DISPOSITIONS, setDisposition } from "../../participants/disposition.server.ts";
import { apiError, apiPrincipal, invalidBody, rateLimited, readJsonBody } from "../../platform/api.server.ts";
import { apiServiceErrorResponse } from "../../platform/error-response.server.ts";

/**
 * POST /api/v1/studies/:code/participants/:subject/disposition (body {"status", "date": "YYYY-MM-DD", "reason"?}):
 * change the participant's disposition (ADR 0033); the reason is required for a screen failure and a
 * discontinuation and reaches the log only as its salted hash. 201 with the change and its ledger entry.
 */
export async function action({ request, context, params }: ActionFunctionArgs) {
  if (request.method !== "POST") return apiError(405, "method_not_allowed", "use POST");
  const principal = await apiPrincipal(request, context.ctx);
  if (!principal) return apiError(401, "unauthenticated", "send Authorization: Bearer TOKEN (or sign in)");
  const limited = await rateLimited(context.ctx, principal, context.ctx.env.apiRatePerSecond);
  if (limited) return limited;
  const code = (params.code ?? "").toUpperCase();
  if (!principal.platformAdmin && !principal.memberships.some((m) => m.studyCode === code))
    return apiError(404, "not_found", `no study ${params.code}`);
  const body = await readJsonBody(request, 16 * 1024);
  if (!body.ok) return body.response;
  const v = z
    .strictObject({
      status: z.enum(DISPOSITIONS, { message: `choose one of ${DISPOSITIONS.join(", ")}` }),
      date: z.string().max(10, "use YYYY-MM-DD"),
      reason: z.string().max(2000, "keep the reason under 2000 characters").optional(),
    })
    .safeParse(body.value);
  if (!v.success)
    return invalidBody(v.error.issues[0] as Parameters<typeof invalidBody>[0], "send status, date and reason");
  try {
    const out = await setDisposition(context.ctx, principal, code, params.subject ?? "", v.data);
    return Response.json(out, { status: 201 });
  } catch (err) {
    return apiServiceErrorResponse(err);
  }
}
