import type { LoaderFunctionArgs } from "@remix-run/node";
import { exportDownload } from "../../exports/download-response.server.ts";
import { casebookPdf } from "../../exports/certified-copy.server.ts";
import { ServiceError } from "../../platform/errors.server.ts";
import { requireStudy } from "../../platform/require-study.server.ts";

/** The certified copy of a subject's casebook as PDF (an audited export). */
export async function loader({ request, context, params }: LoaderFunctionArgs) {
  const { study, user } = await requireStudy(request, context, params, "records.read");
  try {
    const pdf = await casebookPdf(context.ctx, user, study.code, params.subject ?? "");
    const name = `${study.code}-${(params.subject ?? "").toUpperCase()}-certified-copy.pdf`;
    return exportDownload(pdf, { contentType: "application/pdf", name });
  } catch (err) {
    if (err instanceof ServiceError && err.code === "not_found") throw new Response("No such subject", { status: 404 });
    throw err;
  }
}
