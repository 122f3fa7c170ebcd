import type { LoaderFunctionArgs } from "@remix-run/node";
import { exportForms } from "../../form-exchange/form-files.server.ts";
import { FORM_FILE_FORMATS, type FormFileFormat } from "../../form-exchange/form-format.ts";
import { ServiceError } from "../../platform/errors.server.ts";
import { requireStudy } from "../../platform/require-study.server.ts";

/**
 * The latest approved version of every form of a study as a download (the same file as `trialseal forms export`):
 * TrialSeal JSON, a REDCap data dictionary or CDISC ODM 1.3.2 metadata. Anyone who may see the study's forms may
 * export them.
 */
export async function loader({ request, context, params }: LoaderFunctionArgs) {
  const { study } = await requireStudy(request, context, params, "study.view");
  const format = String(params.format ?? "");
  if (!(FORM_FILE_FORMATS as readonly string[]).includes(format))
    throw new Response(`Unknown format "${format}": one of ${FORM_FILE_FORMATS.join(", ")}`, { status: 404 });
  try {
    const file = await exportForms(context.ctx, study.code, format as FormFileFormat);
    return new Response(file.text, {
      headers: {
        "content-type": `${file.mediaType}; charset=utf-8`,
        "content-disposition": `attachment; filename="${file.name}"`,
        "cache-control": "no-store",
      },
    });
  } catch (err) {
    if (err instanceof ServiceError) throw new Response(err.message, { status: err.status });
    throw err;
  }
}
