import type { LoaderFunctionArgs } from "@remix-run/node";
import { accountabilityPdf } from "../../drug-supply/accountability.server.ts";
import { downloadResponse, exportErrorResponse } from "../../drug-supply/export-response.server.ts";
import { requireStudy } from "../../platform/require-study.server.ts";

/** A site's drug accountability log as a PDF table (?site=CODE; supply.export at that site; an audited export). */
export async function loader({ request, context, params }: LoaderFunctionArgs) {
  const { study, user } = await requireStudy(request, context, params, "supply.export");
  try {
    const site = new URL(request.url).searchParams.get("site") ?? "";
    const f = await accountabilityPdf(context.ctx, user, study.code, site);
    return downloadResponse(f.data, "application/pdf", f.name);
  } catch (err) {
    return exportErrorResponse(err);
  }
}
