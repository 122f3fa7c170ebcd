import type { ActionFunctionArgs } from "@remix-run/node";
import { z } from "zod";
import { apiError, apiPrincipal, invalidBody, rateLimited, readJsonBody } from "../../platform/api.server.ts";
import { apiServiceErrorResponse } from "../../platform/error-response.server.ts";
import { enrolledResponse, enrollParticipant } from "../../participants/participants.server.ts";
import { idempotencyKeyOf, replayIdempotent } from "../../records/idempotency.server.ts";

/**
 * POST /api/v1/studies/:code/participants (body {"site", "disposition"?: "screening" | "enrolled",
 * "personal"?: {fullName, email, phone, birthDate}}):
 * enrol; personal data is encrypted at rest and never reaches the log (only an HMAC under the subject's key).
 * `Idempotency-Key` makes retries safe (after a lost response or a 503): a replay returns the same subject.
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
  const { key, error: keyError } = idempotencyKeyOf(request);
  if (keyError) return apiError(400, "invalid", keyError, "Idempotency-Key");
  const body = await readJsonBody(request, 16 * 1024);
  if (!body.ok) return body.response;
  const idem = key
    ? {
        scope: `${principal.label}:${code}:participants`,
        key,
        requestHash: context.ctx.crypto.sha256(new TextEncoder().encode(body.text)),
      }
    : undefined;
  const v = z
    .strictObject({
      site: z.string().min(1, "site is required").max(32),
      personal: z.unknown().optional(),
      disposition: z.enum(["screening", "enrolled"], { message: "start as screening or enrolled" }).optional(),
    })
    .safeParse(body.value);
  if (!v.success)
    return invalidBody(
      v.error.issues[0] as Parameters<typeof invalidBody>[0],
      "send site, and optionally disposition and personal: {fullName, email, phone, birthDate}",
    );
  try {
    if (idem) {
      const replay = await replayIdempotent(context.ctx, idem);
      if (replay)
        return Response.json(replay.body, { status: replay.status, headers: { "idempotent-replay": "true" } });
    }
    const p = await enrollParticipant(
      context.ctx,
      principal,
      { study: code, site: v.data.site, personal: v.data.personal, disposition: v.data.disposition },
      idem,
    );
    return Response.json(enrolledResponse(p), { status: 201 });
  } catch (err) {
    return apiServiceErrorResponse(err);
  }
}
