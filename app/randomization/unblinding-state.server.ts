/**
 * Who sees an arm (ADR 0053). Before the study is unblinded only the unblinded roles do (`randomization.view_arms`:
 * the unblinded statistician, the unblinded pharmacist at their site; never a platform admin by being one, never an
 * API token). After an emergency unblinding, the investigators of that participant's site see that participant's
 * arm. After the study is unblinded (a row in randomization_unblindings), everyone who may see the study does.
 */
import { and, eq } from "drizzle-orm";
import type { DbOrTx } from "../../db/client.ts";
import { emergencyUnblindings, randomizationUnblindings } from "../../db/schema/index.ts";
import type { AppContext } from "../platform/context.server.ts";
import { can, type Principal } from "../platform/permissions.server.ts";

/** The study is unblinded: its list was revealed (a row in randomization_unblindings). */
export async function isStudyUnblinded(db: DbOrTx, studyId: string): Promise<boolean> {
  const [r] = await db
    .select({ id: randomizationUnblindings.id })
    .from(randomizationUnblindings)
    .where(eq(randomizationUnblindings.studyId, studyId))
    .limit(1);
  return Boolean(r);
}

/**
 * An investigator of the site by membership (`randomization.emergency_unblind`): a platform admin is not one by being
 * an admin, nor is an API token (unblinding reveals an arm, ADR 0053).
 */
export function isSiteInvestigator(principal: Principal, scope: { studyId: string; siteId: string }): boolean {
  return (
    principal.kind === "user" &&
    can(principal, "randomization.emergency_unblind", scope) &&
    principal.memberships.some(
      (m) =>
        m.studyId === scope.studyId && m.role === "investigator" && (m.siteId === null || m.siteId === scope.siteId),
    )
  );
}

/** May this principal see arms at this site (or study-wide when siteId is null)? */
export async function armsVisible(
  ctx: AppContext,
  principal: Principal,
  scope: { studyId: string; siteId: string | null },
): Promise<boolean> {
  if (can(principal, "randomization.view_arms", scope)) return true;
  return isStudyUnblinded(ctx.db, scope.studyId);
}

/**
 * May this principal see this one participant's arm: arms visible, or the participant was unblinded in an emergency
 * and the principal is an investigator of their site (permitted `randomization.emergency_unblind` there).
 */
export async function participantArmVisible(
  ctx: AppContext,
  principal: Principal,
  scope: { studyId: string; siteId: string; allocationId: string },
): Promise<boolean> {
  if (await armsVisible(ctx, principal, scope)) return true;
  if (!isSiteInvestigator(principal, scope)) return false;
  const [u] = await ctx.db
    .select({ id: emergencyUnblindings.id })
    .from(emergencyUnblindings)
    .where(
      and(eq(emergencyUnblindings.studyId, scope.studyId), eq(emergencyUnblindings.allocationId, scope.allocationId)),
    )
    .limit(1);
  return Boolean(u);
}
