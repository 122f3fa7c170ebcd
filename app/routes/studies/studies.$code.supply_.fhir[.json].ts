import type { LoaderFunctionArgs } from "@remix-run/node";
import { downloadResponse, exportErrorResponse } from "../../drug-supply/export-response.server.ts";
import { supplyFhirExport } from "../../drug-supply/fhir-supply.server.ts";
import { requireStudy } from "../../platform/require-study.server.ts";

/** The supply as a FHIR R4 Bundle of Medication and MedicationDispense (the user's sites; an audited export). */
export async function loader({ request, context, params }: LoaderFunctionArgs) {
  const { study, user } = await requireStudy(request, context, params, "supply.export");
  try {
    const f = await supplyFhirExport(context.ctx, user, study.code);
    return downloadResponse(f.text, "application/fhir+json; charset=utf-8", f.name);
  } catch (err) {
    return exportErrorResponse(err);
  }
}
