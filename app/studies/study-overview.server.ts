/** The study home page's data: sites, forms, consent documents, ledger entry counts and activity, anchoring. */
import { entryCountsByStatus, studyActivityByDay } from "../../db/queries/log.ts";
import { logActivityByDay } from "../../db/queries/anchors.ts";
import type { AppContext } from "../platform/context.server.ts";
import { systemStatus } from "../anchor-worker/anchor-worker.server.ts";
import { studyConsentDocuments, studyForms } from "../records/forms.server.ts";
import { studySites } from "./studies.server.ts";

/** Everything the study's home page shows; activity covers the last `days` UTC days. */
export async function studyOverview(ctx: AppContext, studyId: string, days: number) {
  const [sites, forms, documents, counts, activity, status] = await Promise.all([
    studySites(ctx, studyId),
    studyForms(ctx, studyId),
    studyConsentDocuments(ctx, studyId),
    entryCountsByStatus(ctx.db, studyId),
    studyActivityByDay(ctx.db, studyId, days),
    systemStatus(ctx),
  ]);
  const logActivity = await logActivityByDay(ctx.db, days);
  return { sites, forms, documents, counts, activity, status, logActivity };
}
