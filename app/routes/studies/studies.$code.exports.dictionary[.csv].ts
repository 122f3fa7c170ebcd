import type { LoaderFunctionArgs } from "@remix-run/node";
import { dataDictionaryCsv } from "../../exports/study-operations.server.ts";
import { ServiceError } from "../../platform/errors.server.ts";
import { requireStudy } from "../../platform/require-study.server.ts";

/** The data dictionary (REDCap layout) of the study's latest approved forms, as a download (an audit event). */
export async function loader({ request, context, params }: LoaderFunctionArgs) {
  const { study, user } = await requireStudy(request, context, params, "study.view");
  try {
    const file = await dataDictionaryCsv(context.ctx, user, study.code);
    return new Response(file.text, {
      headers: {
        "content-type": "text/csv; charset=utf-8",
        "content-disposition": `attachment; filename="${file.name}"`,
        "cache-control": "no-store",
      },
    });
  } catch (err) {
    if (err instanceof ServiceError) throw new Response(err.message, { status: err.status });
    throw err;
  }
}
