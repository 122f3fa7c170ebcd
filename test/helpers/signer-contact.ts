/**
 * Tests that invite participants remotely need a second member of staff to confirm the signer's contact first
 * (ADR 0018). This helper plays that colleague: an investigator of the participant's site, created once per study
 * and site, who confirms the participant's own contact or, for a representative or parent, confirms the contact
 * that `enteredBy` registers.
 */
import { and, eq } from "drizzle-orm";
import { participants, sites } from "../../db/schema/index.ts";
import type { AppContext } from "../../app/platform/context.server.ts";
import type { Principal } from "../../app/platform/permissions.server.ts";
import { createUser } from "../../app/accounts/users.server.ts";
import { principalForUser } from "../../app/accounts/auth.server.ts";
import { findUserByEmail } from "../../db/queries/users.ts";
import { ServiceError } from "../../app/platform/errors.server.ts";
import { getStudyOrThrow } from "../../app/studies/studies.server.ts";
import { confirmContact, registerRepresentative } from "../../app/consent/contact-confirmation.server.ts";

const PASSWORD = "colleague confirms the contact 42";

/** The confirming colleague of a study's site (an investigator there), created on first use. */
export async function colleagueAt(ctx: AppContext, studyCode: string, siteCode: string): Promise<Principal> {
  const email = `colleague.${studyCode}.${siteCode}@confirm.test`.toLowerCase();
  const existing = await findUserByEmail(ctx.db, email);
  const id =
    existing?.id ??
    (
      await createUser(
        ctx,
        {
          email,
          fullName: `Colleague ${siteCode}`,
          password: PASSWORD,
          role: "investigator",
          study: studyCode,
          site: siteCode,
        },
        null,
      )
    ).id;
  return (await principalForUser(ctx, id))!;
}

/**
 * Confirm a participant's own contact (no `representative`), or register the representative's name and contact as
 * `representative.enteredBy` and confirm it, as a colleague at the participant's site.
 */
export async function confirmSignerContact(
  ctx: AppContext,
  studyCode: string,
  subject: string,
  representative?: { role: "lar" | "parent"; name: string; contact: string; enteredBy: Principal },
) {
  const study = await getStudyOrThrow(ctx, studyCode);
  const [row] = await ctx.db
    .select({ site: sites.code })
    .from(participants)
    .innerJoin(sites, eq(sites.id, participants.siteId))
    .where(and(eq(participants.studyId, study.id), eq(participants.subjectCode, subject.toUpperCase())));
  const colleague = await colleagueAt(ctx, study.code, row.site);
  if (!representative)
    // Confirmed once per contact: a second call (another invitation to the same participant) changes nothing.
    return confirmContact(ctx, colleague, study.code, subject, { method: "staff" }).catch((err) => {
      if (err instanceof ServiceError && /already confirmed/.test(err.message)) return null;
      throw err;
    });
  const { enteredBy, ...rep } = representative;
  const reg = await registerRepresentative(ctx, enteredBy, study.code, subject, rep);
  return confirmContact(ctx, colleague, study.code, subject, { contact: reg.id, method: "staff" });
}
