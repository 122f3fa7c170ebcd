import type { ActionFunctionArgs } from "@remix-run/node";
import { apiError, apiPrincipal, readJsonBody } from "../../platform/api.server.ts";
import { apiServiceErrorResponse } from "../../platform/error-response.server.ts";
import {
  BatchTooLargeError,
  MAX_BATCH_BYTES,
  batchItems,
  saveRecordBatch,
  takeBatchRate,
} from "../../records/batch.server.ts";

/**
 * POST /api/v1/studies/:code/records/batch (ADR 0040): up to 1,000 new records, each as POST /records takes one
 * plus its own optional `idempotencyKey`. 200 with per-item results in item order (201 with the record, or the
 * item's 4xx, e.g. 413 for an item over 64 KiB); the valid items written in one transaction. 413 for a body over
 * 4 MiB or more than 1,000 items.
 * Each item counts as one request against the API rate.
 */
export async function action({ request, context, params }: ActionFunctionArgs) {
  const ctx = context.ctx;
  if (request.method !== "POST") return apiError(405, "method_not_allowed", "use POST");
  const principal = await apiPrincipal(request, ctx);
  if (!principal) return apiError(401, "unauthenticated", "send Authorization: Bearer TOKEN (or sign in)");
  const code = (params.code ?? "").toUpperCase();
  const body = await readJsonBody(request, MAX_BATCH_BYTES);
  if (!body.ok) return body.response;
  try {
    const items = batchItems(body.value);
    const limited = await takeBatchRate(ctx, principal, ctx.env.apiRatePerSecond, items.length);
    if (limited)
      return Response.json(
        { error: { code: "rate_limited", message: `too many requests; retry after ${limited.retryAfter} s` } },
        { status: 429, headers: { "retry-after": String(limited.retryAfter) } },
      );
    const studyVisible = principal.platformAdmin || principal.memberships.some((m) => m.studyCode === code);
    if (!studyVisible) return apiError(404, "not_found", `no study ${params.code}`);
    return Response.json(await saveRecordBatch(ctx, principal, code, body.value), { status: 200 });
  } catch (err) {
    if (err instanceof BatchTooLargeError) return apiError(413, "too_large", err.message, "records");
    return apiServiceErrorResponse(err);
  }
}
