import type { LoaderFunctionArgs } from "@remix-run/node";
import { exportDownload } from "../../exports/download-response.server.ts";
import { EXPORT_FORMATS, exportStudy, type ExportFormat } from "../../exports/study-exports.server.ts";
import { requireStudy } from "../../platform/require-study.server.ts";

/** A study export as a download (the same definition as `trialseal export`): evidence, odm, fhir or csv. */
export async function loader({ request, context, params }: LoaderFunctionArgs) {
  const { study, user } = await requireStudy(request, context, params, "study.review");
  const format = String(params.format ?? "");
  if (!(EXPORT_FORMATS as readonly string[]).includes(format))
    throw new Response(`Unknown export format "${format}": one of ${EXPORT_FORMATS.join(", ")}`, { status: 404 });
  const file = await exportStudy(context.ctx, user, study.code, format as ExportFormat);
  return exportDownload(file.data, file);
}
