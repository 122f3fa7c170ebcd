import type { ActionFunctionArgs } from "@remix-run/node";
import { apiError, apiPrincipal, rateLimited, readJsonBody } from "../../platform/api.server.ts";
import { apiServiceErrorResponse } from "../../platform/error-response.server.ts";
import { saveRecord } from "../../records/records.server.ts";
import { idempotencyKeyOf, replayIdempotent } from "../../records/idempotency.server.ts";

const MAX_BODY = 64 * 1024;

/**
 * POST /api/v1/studies/:code/records: a new record (version 1) for a subject, form and visit, validated against
 * the form definition. `Idempotency-Key` makes retries safe: a replay returns the same record (and writes
 * nothing); the same key with another body is a 409.
 */
export async function action({ request, context, params }: ActionFunctionArgs) {
  const ctx = context.ctx;
  if (request.method !== "POST") return apiError(405, "method_not_allowed", "use POST");
  const principal = await apiPrincipal(request, ctx);
  if (!principal) return apiError(401, "unauthenticated", "send Authorization: Bearer TOKEN (or sign in)");
  const limited = await rateLimited(ctx, principal, ctx.env.apiRatePerSecond);
  if (limited) return limited;
  const { key, error: keyError } = idempotencyKeyOf(request);
  if (keyError) return apiError(400, "invalid", keyError, "Idempotency-Key");
  const body = await readJsonBody(request, MAX_BODY);
  if (!body.ok) return body.response;
  const idem = key
    ? {
        scope: `${principal.label}:${(params.code ?? "").toUpperCase()}`,
        key,
        requestHash: ctx.crypto.sha256(new TextEncoder().encode(body.text)),
      }
    : undefined;
  try {
    if (idem) {
      const replay = await replayIdempotent(ctx, idem);
      if (replay)
        return Response.json(replay.body, { status: replay.status, headers: { "idempotent-replay": "true" } });
    }
    const studyVisible =
      principal.platformAdmin || principal.memberships.some((m) => m.studyCode === (params.code ?? "").toUpperCase());
    if (!studyVisible) return apiError(404, "not_found", `no study ${params.code}`);
    const saved = await saveRecord(ctx, principal, (params.code ?? "").toUpperCase(), body.value, idem);
    return Response.json(saved, {
      status: 201,
      headers: { location: `/api/v1/studies/${(params.code ?? "").toUpperCase()}/records/${saved.id}` },
    });
  } catch (err) {
    return apiServiceErrorResponse(err);
  }
}
