/**
 * Grants of the roles that unblind or lock a study (issue 20 review, ADR 0053): nobody gives themselves one, and
 * every grant of an unblinded role is told to the study's admins through the outbox, in the grant's transaction.
 */
import { and, eq, isNull } from "drizzle-orm";
import type { DbOrTx } from "../../db/client.ts";
import { memberships, users, type Role } from "../../db/schema/index.ts";
import { notifyStudyRoles } from "../notifications/notify.server.ts";
import { ServiceError } from "../platform/errors.server.ts";

/** Roles that see arms, or kit types (the depot manager, issue 21), before unblinding. */
export const UNBLINDED_ROLES: readonly Role[] = ["unblinded_statistician", "unblinded_pharmacist", "depot_manager"];
/** Roles nobody may give themselves: those that see arms, and the data manager (who locks the database). */
export const NO_SELF_GRANT_ROLES: readonly Role[] = [...UNBLINDED_ROLES, "data_manager"];

export const roleInWords = (role: Role) => role.replaceAll("_", " ");

/**
 * Refuse giving oneself a role of NO_SELF_GRANT_ROLES: `grantorId` is the granting user (null: the command line at
 * the server, whose operator is accountable), `grantee` the account by id and e-mail.
 */
export async function refuseSelfGrant(
  db: DbOrTx,
  grantorId: string | null,
  role: Role,
  grantee: { id?: string | null; email: string },
): Promise<void> {
  if (grantorId === null || !NO_SELF_GRANT_ROLES.includes(role)) return;
  let self = grantee.id === grantorId;
  if (!self) {
    const [g] = await db.select({ email: users.email }).from(users).where(eq(users.id, grantorId));
    self = g !== undefined && g.email.toLowerCase() === grantee.email.trim().toLowerCase();
  }
  if (self)
    throw new ServiceError(
      "forbidden",
      `role: you cannot give yourself the ${roleInWords(role)} role; ask another administrator: ` +
        "one person cannot give themselves a role that unblinds or locks the study",
      "role",
    );
}

/**
 * An external researcher is outside the study team (ADR 0069): refuse giving the external_researcher role to someone
 * who holds any other role in the study, and any role of the study to one of its external researchers (the data
 * access committee may hold sponsor roles, never the researcher's). 409 naming the field `role`.
 */
export async function refuseResearcherRoleMix(
  db: DbOrTx,
  studyId: string,
  role: Role,
  granteeId: string | null | undefined,
): Promise<void> {
  if (!granteeId) return;
  const held = await db
    .select({ role: memberships.role })
    .from(memberships)
    .where(and(eq(memberships.userId, granteeId), eq(memberships.studyId, studyId), isNull(memberships.revokedAt)));
  const roles = new Set(held.map((m) => m.role));
  if (role === "external_researcher") {
    const other = [...roles].find((r) => r !== "external_researcher");
    if (other)
      throw new ServiceError(
        "conflict",
        `role: an external researcher works outside the study team; this person already has the ` +
          `${roleInWords(other)} role in this study`,
        "role",
      );
  } else if (roles.has("external_researcher"))
    throw new ServiceError(
      "conflict",
      `role: this person is an external researcher of this study (outside the study team) and cannot also have ` +
        `the ${roleInWords(role)} role; revoke the researcher role first or invite someone else`,
      "role",
    );
}

/**
 * Tell the study's admins (except the grantor) that an unblinded role was granted: who gave which role (and site) to
 * whom, and when. Nothing for other roles. Inside the grant's transaction.
 */
export async function notifyUnblindedRoleGrant(
  tx: DbOrTx,
  g: {
    study: { id: string; code: string };
    role: Role;
    siteCode: string | null;
    grantorId: string | null;
    grantee: { fullName: string; email: string };
    at?: Date;
  },
): Promise<number> {
  if (!UNBLINDED_ROLES.includes(g.role)) return 0;
  let by = "the command line on the server";
  if (g.grantorId !== null) {
    const [u] = await tx
      .select({ name: users.fullName, email: users.email })
      .from(users)
      .where(eq(users.id, g.grantorId));
    by = u ? `${u.name} (${u.email})` : `user ${g.grantorId}`;
  }
  const what = `the ${roleInWords(g.role)} role${g.siteCode ? ` at site ${g.siteCode}` : ""} in study ${g.study.code}`;
  const at = (g.at ?? new Date()).toISOString().replace("T", " ").slice(0, 16);
  return notifyStudyRoles(tx, {
    studyId: g.study.id,
    siteId: null,
    roles: ["admin"],
    exceptUserId: g.grantorId,
    kind: "unblinded_role_granted",
    subject: `${g.study.code}: ${roleInWords(g.role)} role granted to ${g.grantee.fullName}`,
    body: [
      `${by} gave ${g.grantee.fullName} (${g.grantee.email}) ${what} on ${at} UTC.`,
      "",
      "This role sees the participants' arms before the study is unblinded. If you did not expect this grant, " +
        "revoke it on the study's staff page.",
    ].join("\n"),
  });
}
