/** An import job's progress as JSON (polled by the import page; ADR 0037). */
import { json, type LoaderFunctionArgs } from "@remix-run/node";
import { requireStudy } from "../../platform/require-study.server.ts";
import { serviceErrorResponse } from "../../platform/error-response.server.ts";
import { importJobOf } from "../../data-import/import-jobs.server.ts";

export async function loader({ request, context, params }: LoaderFunctionArgs) {
  const { study, user } = await requireStudy(request, context, params, "records.import");
  try {
    const job = await importJobOf(context.ctx, user, study.code, params.id ?? "");
    return json({ job }, { headers: { "cache-control": "no-store" } });
  } catch (err) {
    return serviceErrorResponse(err);
  }
}
