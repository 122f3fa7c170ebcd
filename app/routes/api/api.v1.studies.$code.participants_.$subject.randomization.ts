import type { ActionFunctionArgs } from "@remix-run/node";
import { z } from "zod";
import { apiError, apiPrincipal, invalidBody, rateLimited, readJsonBody } from "../../platform/api.server.ts";
import { apiServiceErrorResponse } from "../../platform/error-response.server.ts";
import { randomizeParticipant } from "../../randomization/randomize.server.ts";

/**
 * POST /api/v1/studies/:code/participants/:subject/randomization (body {"factors": {"name": "level", ...}}):
 * randomize the participant into the next slot of their stratum (ADR 0052). 201 with the allocation's id, the
 * randomization number and the stratum; never the arm or the kit type (blinded, ADR 0053).
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
      factors: z
        .record(
          z.string().max(64, "a factor's name is at most 64 characters"),
          z.string().max(64, "a level is at most 64"),
        )
        .default({}),
    })
    .safeParse(body.value);
  if (!v.success) return invalidBody(v.error.issues[0] as Parameters<typeof invalidBody>[0], "send factors");
  try {
    const out = await randomizeParticipant(context.ctx, principal, code, params.subject ?? "", v.data);
    return Response.json({ allocation: out.allocationId, number: out.number, stratum: out.stratum }, { status: 201 });
  } catch (err) {
    return apiServiceErrorResponse(err);
  }
}
