/**
 * The label sheet of a lot's kits (ADR 0065): a PDF for the depot manager (supply.manage); each label with the kit
 * number, units, expiry and a QR code of the public kit check, never a kit type or the lot.
 */
import type { LoaderFunctionArgs } from "@remix-run/node";
import { labelSheetPdf } from "../../drug-supply/labels.server.ts";
import { ServiceError } from "../../platform/errors.server.ts";
import { requireStudy } from "../../platform/require-study.server.ts";

export async function loader({ request, context, params }: LoaderFunctionArgs) {
  const { study, user } = await requireStudy(request, context, params, "supply.manage");
  try {
    const pdf = await labelSheetPdf(context.ctx, user, study.code, { lotNumber: params.lot ?? "" });
    return new Response(pdf, {
      headers: {
        "content-type": "application/pdf",
        "content-disposition": `inline; filename="${study.code}-kit-labels.pdf"`,
        "cache-control": "no-store",
      },
    });
  } catch (err) {
    if (err instanceof ServiceError)
      return new Response(`${err.message}\n`, {
        status: err.status,
        headers: { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" },
      });
    throw err;
  }
}
