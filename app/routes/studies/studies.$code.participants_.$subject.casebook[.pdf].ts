import type { LoaderFunctionArgs } from "@remix-run/node";
import { findStudyByCode } from "../../../db/queries/studies.ts";
import { casebookPdf } from "../../exports/certified-copy.server.ts";
import { ServiceError } from "../../platform/errors.server.ts";
import { requireStudyPermission } from "../../platform/session.server.ts";

/** The certified copy of a subject's casebook as PDF (an audited export). */
export async function loader({ request, context, params }: LoaderFunctionArgs) {
  const study = await findStudyByCode(context.ctx.db, params.code ?? "");
  if (!study) throw new Response("No such study", { status: 404 });
  const user = await requireStudyPermission(request, context, "records.read", { studyId: study.id });
  try {
    const pdf = await casebookPdf(context.ctx, user, study.code, params.subject ?? "");
    return new Response(new Uint8Array(pdf), {
      headers: {
        "content-type": "application/pdf",
        "content-disposition": `attachment; filename="${study.code}-${(params.subject ?? "").toUpperCase()}-certified-copy.pdf"`,
        "cache-control": "no-store",
      },
    });
  } catch (err) {
    if (err instanceof ServiceError && err.code === "not_found") throw new Response("No such subject", { status: 404 });
    throw err;
  }
}
