/** Creating users and granting study roles (each grant is a ledger entry of the study). */
import { z } from "zod";
import { ROLES, type Role } from "../../db/schema/index.ts";
import { insertMembership, insertUser } from "../../db/queries/users.ts";
import { listSites } from "../../db/queries/studies.ts";
import type { AppContext } from "../platform/context.server.ts";
import { ServiceError, isUniqueViolation } from "../platform/errors.server.ts";
import { checkPasswordRules, hashPassword } from "./passwords.server.ts";
import { getStudyOrThrow } from "../studies/studies.server.ts";
import { appendEntry } from "../log/append-entry.server.ts";
import { audit } from "../audit-trail/record-event.server.ts";
import { notifyUnblindedRoleGrant, refuseSelfGrant } from "../studies/role-grants.server.ts";

export const SITE_SCOPED_ROLES: readonly Role[] = [
  "investigator",
  "coordinator",
  "unblinded_pharmacist",
  "site_pharmacist",
];

export const CreateUserInput = z.object({
  email: z.string().trim().toLowerCase().email("not a valid email address"),
  fullName: z.string().trim().min(1).max(200),
  password: z.string(),
  role: z.enum(ROLES),
  study: z.string().optional(),
  site: z.string().optional(),
});

/**
 * Create a user. `role: "admin"` without a study makes a platform administrator; every other role needs a
 * study, and site-scoped roles (investigator, coordinator) need a site of that study.
 */
export async function createUser(ctx: AppContext, input: z.input<typeof CreateUserInput>, actorId: string | null) {
  const parsed = CreateUserInput.safeParse(input);
  if (!parsed.success) {
    const i = parsed.error.issues[0];
    throw new ServiceError("invalid", `${i.path.join(".")}: ${i.message}`, String(i.path[0] ?? ""));
  }
  const v = parsed.data;
  checkPasswordRules(v.password, v.email);
  const platformAdmin = v.role === "admin" && !v.study;
  if (!platformAdmin && !v.study) throw new ServiceError("invalid", `role ${v.role} needs --study`, "study");
  if (v.site && !v.study) throw new ServiceError("invalid", "--site needs --study", "site");
  if (SITE_SCOPED_ROLES.includes(v.role) && !v.site)
    throw new ServiceError("invalid", `role ${v.role} needs --site`, "site");
  const study = v.study ? await getStudyOrThrow(ctx, v.study) : null;
  let siteId: string | null = null;
  if (study && v.site) {
    const site = (await listSites(ctx.db, study.id)).find((s) => s.code === v.site);
    if (!site) throw new ServiceError("not_found", `study ${study.code} has no site ${v.site}`, "site");
    siteId = site.id;
  }
  // The account is new, so it is never its grantor's (ADR 0053); the check keeps the rule in one place.
  if (study) await refuseSelfGrant(ctx.db, actorId, v.role, { email: v.email });
  const passwordHash = await hashPassword(v.password);
  try {
    return await ctx.db.transaction(async (tx) => {
      const user = await insertUser(tx, { email: v.email, fullName: v.fullName, passwordHash, platformAdmin });
      if (study) {
        await insertMembership(tx, { userId: user.id, studyId: study.id, siteId, role: v.role, grantedBy: actorId });
        await appendEntry(tx, ctx.crypto, study, "role.granted", {
          user: user.id,
          role: v.role,
          site: v.site ?? null,
          actor: actorId,
        });
        await notifyUnblindedRoleGrant(tx, {
          study,
          role: v.role,
          siteCode: v.site ?? null,
          grantorId: actorId,
          grantee: { fullName: user.fullName, email: user.email },
        });
      }
      await audit(tx, {
        action: "user.create",
        actorUserId: actorId,
        studyId: study?.id ?? null,
        siteId,
        detail: { user: user.id, role: v.role },
      });
      return user;
    });
  } catch (err) {
    if (isUniqueViolation(err))
      throw new ServiceError("conflict", `a user with email ${v.email} already exists`, "email");
    throw err;
  }
}
