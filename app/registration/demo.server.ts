/**
 * The demo's outcome list and public registration page (issue 20, ADRs 0049 and 0050): one primary and two secondary
 * outcomes of the blood pressure study, sealed with the SAP version in force (the demo's documents are seeded
 * first), and the public page published. Safe to run again: an existing list or page is left as it is.
 */
import { sql } from "drizzle-orm";
import { rowsOf } from "../../db/queries/rows.ts";
import type { AppContext } from "../platform/context.server.ts";
import type { Principal } from "../platform/permissions.server.ts";
import { getStudyOrThrow } from "../studies/studies.server.ts";
import { setOutcomes } from "../study-documents/sap-outcomes.server.ts";
import { registrationState, setRegistration } from "./registration.server.ts";

export const DEMO_OUTCOMES = [
  {
    type: "primary",
    name: "Change in seated systolic blood pressure",
    measure: "Seated systolic blood pressure (mmHg), mean of the last two of three readings",
    timePoint: "Week 12, from baseline",
    analysis: "ANCOVA with treatment and site as factors and baseline systolic pressure as covariate (ITT)",
  },
  {
    type: "secondary",
    name: "Change in seated diastolic blood pressure",
    measure: "Seated diastolic blood pressure (mmHg), mean of the last two of three readings",
    timePoint: "Week 12, from baseline",
    analysis: "ANCOVA as for the primary outcome",
  },
  {
    type: "secondary",
    name: "Blood pressure control",
    measure: "Proportion of participants with seated blood pressure below 140/90 mmHg",
    timePoint: "Week 12",
    analysis: "Logistic regression adjusted for site and baseline systolic pressure",
  },
] as const;

/** Needs the study's SAP uploaded first (the outcome list is sealed with it); `admin` manages documents. */
export async function seedDemoOutcomesAndRegistration(ctx: AppContext, admin: Principal, studyCode: string) {
  const study = await getStudyOrThrow(ctx, studyCode);
  const [has] = rowsOf(await ctx.db.execute(sql`SELECT 1 FROM sap_outcome_sets WHERE study_id = ${study.id} LIMIT 1`));
  if (!has)
    await setOutcomes(ctx, admin, studyCode, {
      outcomes: DEMO_OUTCOMES,
      reason: "Outcome list entered from the statistical analysis plan as approved",
    });
  if (!(await registrationState(ctx.db, study.id)).published)
    await setRegistration(ctx, admin, studyCode, { published: true });
}
