import type { LoaderFunctionArgs } from "@remix-run/node";
import { publicConsent } from "../../consent/receipt.server.ts";
import { findEntryByRef, proofBundle } from "../../log/proofs.server.ts";

/**
 * The proof bundle of the first signature of the consent behind a public verification token: a `consent.signed`
 * entry, which carries the subject code, the document's version and SHA-256, the signer's role, the optional
 * answers in clear and an HMAC of the name (exactly what, in words: app/consent/public-consent-words.ts).
 */
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
