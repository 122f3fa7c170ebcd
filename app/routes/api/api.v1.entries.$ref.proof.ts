import type { LoaderFunctionArgs } from "@remix-run/node";
import { auditProofRead, entryVisibleTo, findEntryByRef, proofBundle } from "../../log/proofs.server.ts";
import { apiError, apiPrincipal } from "../../platform/api.server.ts";

/**
 * The proof bundle of an entry, for whoever may read its study (session or study-scoped Bearer token); site
 * staff only for entries about their own site's participants, records, queries, locks and delegations (ADR 0020).
 */
export async function loader({ request, context, params }: LoaderFunctionArgs) {
  const principal = await apiPrincipal(request, context.ctx);
  if (!principal) return apiError(401, "unauthenticated", "sign in or send Authorization: Bearer TOKEN");
  const entry = await findEntryByRef(context.ctx, params.ref ?? "");
  // Unknown and not visible look the same: 404.
  if (!entry || !(await entryVisibleTo(context.ctx, principal, entry)))
    return apiError(404, "not_found", `no entry ${params.ref}`);
  const r = await proofBundle(context.ctx, entry);
  // The bundle carries the entry's payload: a read of the participant it is about, if any (ADR 0067).
  if (r.status !== "pending") await auditProofRead(context.ctx, principal, entry);
  if (r.status === "pending")
    return Response.json(
      { entry: { id: entry.id, status: "pending" } },
      { status: 202, headers: { "retry-after": "1" } },
    );
  return Response.json(r.bundle);
}
