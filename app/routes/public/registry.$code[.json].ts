import type { LoaderFunctionArgs } from "@remix-run/node";
import { publicRegistry } from "../../registration/public-registry.server.ts";

/** The public registration page's data as JSON (ADR 0050): no sign-in, 404 unless the sponsor has published it. */
export async function loader({ context, params }: LoaderFunctionArgs) {
  const r = await publicRegistry(context.ctx, params.code ?? "");
  if (!r)
    return Response.json(
      { error: { code: "not_found", message: "no published registration for this study" } },
      { status: 404 },
    );
  return Response.json(r, { headers: { "cache-control": "no-store", "access-control-allow-origin": "*" } });
}
