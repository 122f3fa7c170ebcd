import type { LoaderFunctionArgs } from "@remix-run/node";
import { z } from "zod";
import { consistencyBetween } from "../../log/proofs.server.ts";
import { ServiceError } from "../../platform/errors.server.ts";
import { apiError } from "../../platform/api.server.ts";

const Query = z.object({
  from: z
    .string()
    .regex(/^\d{1,15}$/, "must be a whole number")
    .transform(Number),
  to: z
    .string()
    .regex(/^\d{1,15}$/, "must be a whole number")
    .transform(Number),
});

/** Public: RFC 9162 consistency proof between two batch-log sizes. */
export async function loader({ request, context }: LoaderFunctionArgs) {
  const q = Query.safeParse(Object.fromEntries(new URL(request.url).searchParams));
  if (!q.success) {
    const i = q.error.issues[0];
    return apiError(400, "invalid", `${String(i.path[0])}: ${i.message}`, String(i.path[0]));
  }
  try {
    return Response.json(await consistencyBetween(context.ctx, q.data.from, q.data.to));
  } catch (err) {
    if (err instanceof ServiceError) return apiError(400, err.code, err.message, err.field);
    throw err;
  }
}
