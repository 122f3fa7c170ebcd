import type { LoaderFunctionArgs } from "@remix-run/node";
import { publicConsent } from "../../consent/receipt.server.ts";
import { findEntryByRef, proofBundle } from "../../log/proofs.server.ts";

/** The proof bundle of the consent behind a public verification token (its payload carries no personal data). */
export async function loader({ context, params }: LoaderFunctionArgs) {
  const c = await publicConsent(context.ctx, params.token ?? "");
  if (!c)
    return Response.json({ error: { code: "not_found", message: "no consent under this link" } }, { status: 404 });
  const entry = await findEntryByRef(context.ctx, c.primaryEntryId);
  if (!entry)
    return Response.json({ error: { code: "not_found", message: "no consent under this link" } }, { status: 404 });
  const r = await proofBundle(context.ctx, entry);
  if (r.status === "pending")
    return Response.json(
      { entry: { id: entry.id, status: "pending" } },
      { status: 202, headers: { "retry-after": "1" } },
    );
  return new Response(JSON.stringify(r.bundle), {
    headers: {
      "content-type": "application/json",
      "content-disposition": `attachment; filename="consent-${c.study}-proof.json"`,
    },
  });
}
