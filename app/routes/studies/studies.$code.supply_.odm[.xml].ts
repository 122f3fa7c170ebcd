import type { LoaderFunctionArgs } from "@remix-run/node";
import { downloadResponse, exportErrorResponse } from "../../drug-supply/export-response.server.ts";
import { supplyOdmExport } from "../../drug-supply/odm-supply.server.ts";
import { requireStudy } from "../../platform/require-study.server.ts";

/** Drug accountability (SDTM DA) as CDISC ODM 1.3.2 (the user's sites; an audited export). */
export async function loader({ request, context, params }: LoaderFunctionArgs) {
  const { study, user } = await requireStudy(request, context, params, "supply.export");
  try {
    const f = await supplyOdmExport(context.ctx, user, study.code);
    return downloadResponse(f.text, "application/xml; charset=utf-8", f.name);
  } catch (err) {
    return exportErrorResponse(err);
  }
}
