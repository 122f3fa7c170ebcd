import type { LoaderFunctionArgs } from "@remix-run/node";
import { openInvitation } from "../../consent/invitation-state.server.ts";
import { consentReceiptPdf } from "../../consent/receipt-pdf.server.ts";
import { verifiedInvitation } from "../../consent/consent-session.server.ts";

/** The participant's consent receipt as PDF: only for the browser that passed this invitation's identity check. */
export async function loader({ request, context, params }: LoaderFunctionArgs) {
  const o = await openInvitation(context.ctx, params.token ?? "");
  if (!o) throw new Response("This link is not valid.", { status: 404 });
  if (o.state !== "used") throw new Response("There is no signed consent for this link yet.", { status: 409 });
  if ((await verifiedInvitation(request, context.ctx)) !== o.invitation.id)
    throw new Response("Confirm your identity with the one-time code first.", { status: 401 });
  const pdf = await consentReceiptPdf(context.ctx, o, context.ctx.env.publicUrl);
  return new Response(new Uint8Array(pdf), {
    headers: {
      "content-type": "application/pdf",
      "content-disposition":
        `attachment; filename="consent-receipt-${o.study.code}-` + `${o.document.code}-${o.document.version}.pdf"`,
      "cache-control": "no-store",
    },
  });
}
