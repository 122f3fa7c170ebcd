/**
 * Study setup by its administrators: sites, staff invitations with role assignment, role revocation.
 * Every site and role change is a ledger entry of the study; invitations go through the outbox with a
 * single-use link to choose a password (7 days).
 */
import { randomBytes } from "node:crypto";
import { and, asc, eq, isNull } from "drizzle-orm";
import { z } from "zod";
import { ROLES, memberships, outbox, passwordResets, sites, users } from "../../db/schema/index.ts";
import { findUserByEmail, insertMembership, insertUser } from "../../db/queries/users.ts";
import { insertSite, updateSiteTimeZone } from "../../db/queries/studies.ts";
import type { AppContext } from "../platform/context.server.ts";
import { ServiceError, isUniqueViolation } from "../platform/errors.server.ts";
import { appendEntry } from "../log/append-entry.server.ts";
import { payloadActor } from "../platform/attribution.ts";
import { audit } from "../audit-trail/record-event.server.ts";
import { hashPassword } from "../accounts/passwords.server.ts";
import { newToken, tokenHash } from "../accounts/secret-tokens.server.ts";
import { requirePermission, type Principal } from "../platform/permissions.server.ts";
import { codeSchema, getStudyOrThrow, timeZoneSchema } from "./studies.server.ts";
import { SITE_SCOPED_ROLES } from "../accounts/users.server.ts";
import { notifyUnblindedRoleGrant, refuseResearcherRoleMix, refuseSelfGrant } from "./role-grants.server.ts";

const INVITE_TTL_MS = 7 * 86_400_000;

function parse<T extends z.ZodType>(schema: T, input: unknown): z.infer<T> {
  const r = schema.safeParse(input);
  if (!r.success) {
    const i = r.error.issues[0];
    throw new ServiceError("invalid", `${i.path.join(".") || "input"}: ${i.message}`, String(i.path[0] ?? ""));
  }
  return r.data;
}

export async function addSite(
  ctx: AppContext,
  principal: Principal,
  input: { study: string; code: string; name: string; timeZone?: string },
) {
  const v = parse(
    z.object({
      study: z.string(),
      code: codeSchema,
      name: z.string().trim().min(1, "name the site").max(200),
      timeZone: timeZoneSchema,
    }),
    input,
  );
  const study = await getStudyOrThrow(ctx, v.study);
  requirePermission(principal, "study.manage", { studyId: study.id });
  try {
    return await ctx.db.transaction(async (tx) => {
      const site = await insertSite(tx, { studyId: study.id, code: v.code, name: v.name, timeZone: v.timeZone });
      await appendEntry(tx, ctx.crypto, study, "site.added", {
        site: site.code,
        timeZone: site.timeZone,
        actor: principal.userId,
      });
      await audit(tx, {
        action: "site.add",
        actorUserId: principal.userId,
        studyId: study.id,
        siteId: site.id,
        detail: { site: site.code, timeZone: site.timeZone },
      });
      return site;
    });
  } catch (err) {
    if (isUniqueViolation(err))
      throw new ServiceError("conflict", `site ${v.code} already exists in ${study.code}`, "code");
    throw err;
  }
}

/**
 * A site's time zone as an IANA name (ADR 0030): CRF datetimes are entered and shown on the site's clock and stored
 * with the offset of that moment, so changing the zone later changes no stored value, only how times are shown.
 */
export async function setSiteTimeZone(
  ctx: AppContext,
  principal: Principal,
  input: { study: string; site: string; timeZone: string },
) {
  const v = parse(
    z.object({ study: z.string(), site: z.string().trim().min(1, "choose a site").max(32), timeZone: timeZoneSchema }),
    input,
  );
  const study = await getStudyOrThrow(ctx, v.study);
  requirePermission(principal, "study.manage", { studyId: study.id });
  return ctx.db.transaction(async (tx) => {
    const [before] = await tx
      .select({ timeZone: sites.timeZone })
      .from(sites)
      .where(and(eq(sites.studyId, study.id), eq(sites.code, v.site.toUpperCase())));
    const site = await updateSiteTimeZone(tx, { studyId: study.id, code: v.site.toUpperCase(), timeZone: v.timeZone });
    if (!site) throw new ServiceError("not_found", `no site ${v.site} in ${study.code}`, "site");
    await appendEntry(tx, ctx.crypto, study, "site.time_zone_set", {
      site: site.code,
      timeZone: site.timeZone,
      previous: before?.timeZone ?? null,
      ...payloadActor(principal),
    });
    await audit(tx, {
      action: "site.time_zone",
      actorUserId: principal.userId,
      studyId: study.id,
      siteId: site.id,
      detail: { site: site.code, from: before?.timeZone ?? null, to: site.timeZone },
    });
    return site;
  });
}

export const InviteInput = z.object({
  study: z.string(),
  email: z.string().trim().toLowerCase().email("not a valid email address"),
  fullName: z.string().trim().min(1, "enter the person's full name").max(200),
  role: z.enum(ROLES.filter((r) => r !== "participant") as [string, ...string[]], { error: "choose a role" }),
  site: z
    .string()
    .trim()
    .max(32)
    .optional()
    .transform((s) => (s ? s.toUpperCase() : undefined)),
  qualifier: z.enum(["principal", "sub"]).optional(),
});

/**
 * Invite a person to a study with a role (and a site for site roles). A new account gets a link to choose its
 * password; an existing account is told about its new role. The grant is a ledger entry.
 */
export async function inviteStaff(
  ctx: AppContext,
  principal: Principal,
  input: z.input<typeof InviteInput>,
  baseUrl: string,
) {
  const v = parse(InviteInput, input);
  const role = v.role as (typeof ROLES)[number];
  const study = await getStudyOrThrow(ctx, v.study);
  requirePermission(principal, "users.manage", { studyId: study.id });
  if (SITE_SCOPED_ROLES.includes(role) && !v.site)
    throw new ServiceError("invalid", `site: a ${role} works at a site; choose one`, "site");
  if (!SITE_SCOPED_ROLES.includes(role) && v.site)
    throw new ServiceError("invalid", `site: the ${role} role is study-wide`, "site");
  let siteId: string | null = null;
  if (v.site) {
    const [s] = await ctx.db
      .select()
      .from(sites)
      .where(and(eq(sites.studyId, study.id), eq(sites.code, v.site)));
    if (!s) throw new ServiceError("not_found", `site: ${study.code} has no site ${v.site}`, "site");
    siteId = s.id;
  }
  const existing = await findUserByEmail(ctx.db, v.email);
  await refuseSelfGrant(ctx.db, principal.userId, role, { id: existing?.id, email: v.email });
  await refuseResearcherRoleMix(ctx.db, study.id, role, existing?.id);
  if (existing) {
    const same = await ctx.db
      .select({ id: memberships.id })
      .from(memberships)
      .where(
        and(
          eq(memberships.userId, existing.id),
          eq(memberships.studyId, study.id),
          eq(memberships.role, role),
          siteId ? eq(memberships.siteId, siteId) : isNull(memberships.siteId),
          isNull(memberships.revokedAt),
        ),
      );
    if (same.length)
      throw new ServiceError(
        "conflict",
        `${v.email} already has the ${role} role${v.site ? ` at ${v.site}` : ""} in ${study.code}`,
        "email",
      );
  }
  const token = newToken();
  return ctx.db.transaction(async (tx) => {
    const user =
      existing ??
      (await insertUser(tx, {
        email: v.email,
        fullName: v.fullName,
        passwordHash: await hashPassword(randomBytes(32).toString("base64")),
      }));
    const m = await insertMembership(tx, {
      userId: user.id,
      studyId: study.id,
      siteId,
      role,
      grantedBy: principal.userId,
      qualifier: role === "investigator" ? (v.qualifier ?? null) : null,
    });
    await appendEntry(tx, ctx.crypto, study, "role.granted", {
      user: user.id,
      role,
      site: v.site ?? null,
      actor: principal.userId,
    });
    const what =
      `${role.replace("_", " ")}${v.site ? ` at site ${v.site}` : ""} ` + `in study ${study.code} (${study.title})`;
    if (!existing) {
      await tx.insert(passwordResets).values({
        userId: user.id,
        tokenHash: tokenHash(ctx.crypto, token),
        expiresAt: new Date(Date.now() + INVITE_TTL_MS),
      });
      await tx.insert(outbox).values({
        toAddress: user.email,
        kind: "invitation",
        subject: `You are invited to TrialSeal: ${study.code}`,
        body:
          `Hello ${v.fullName},\n\nYou have been given the role ${what}.\n\n` +
          `Choose your password within 7 days here:\n${baseUrl}/reset-password/${token}\n`,
      });
    } else {
      await tx.insert(outbox).values({
        toAddress: user.email,
        kind: "role_granted",
        subject: `New role in ${study.code}`,
        body: `Hello ${existing.fullName},\n\nYou now have the role ${what}.\nSign in at ${baseUrl}/login\n`,
      });
    }
    await notifyUnblindedRoleGrant(tx, {
      study,
      role,
      siteCode: v.site ?? null,
      grantorId: principal.userId,
      grantee: { fullName: user.fullName, email: user.email },
    });
    await audit(tx, {
      action: "role.grant",
      actorUserId: principal.userId,
      studyId: study.id,
      siteId,
      detail: { user: user.id, role, membership: m.id, invited: !existing },
    });
    return { user, membership: m, invited: !existing };
  });
}

export async function revokeRole(ctx: AppContext, principal: Principal, input: { study: string; membership: string }) {
  const v = parse(z.object({ study: z.string(), membership: z.string().uuid("no such role assignment") }), input);
  const study = await getStudyOrThrow(ctx, v.study);
  requirePermission(principal, "users.manage", { studyId: study.id });
  const [m] = await ctx.db
    .select({ m: memberships, site: sites.code })
    .from(memberships)
    .leftJoin(sites, eq(sites.id, memberships.siteId))
    .where(and(eq(memberships.id, v.membership), eq(memberships.studyId, study.id)));
  if (!m) throw new ServiceError("not_found", "no such role assignment", "membership");
  if (m.m.revokedAt) throw new ServiceError("conflict", "this role was already revoked", "membership");
  if (m.m.userId === principal.userId)
    throw new ServiceError("invalid", "you cannot revoke your own role", "membership");
  await ctx.db.transaction(async (tx) => {
    await tx.update(memberships).set({ revokedAt: new Date() }).where(eq(memberships.id, m.m.id));
    await appendEntry(tx, ctx.crypto, study, "role.revoked", {
      user: m.m.userId,
      role: m.m.role,
      site: m.site ?? null,
      actor: principal.userId,
    });
    await audit(tx, {
      action: "role.revoke",
      actorUserId: principal.userId,
      studyId: study.id,
      siteId: m.m.siteId,
      detail: { user: m.m.userId, role: m.m.role },
    });
  });
}

/** Everyone with a role in the study (current and revoked), for the staff page. */
export async function studyStaff(ctx: AppContext, studyId: string) {
  const rows = await ctx.db
    .select({
      id: memberships.id,
      role: memberships.role,
      qualifier: memberships.qualifier,
      site: sites.code,
      grantedAt: memberships.grantedAt,
      revokedAt: memberships.revokedAt,
      name: users.fullName,
      email: users.email,
    })
    .from(memberships)
    .innerJoin(users, eq(users.id, memberships.userId))
    .leftJoin(sites, eq(sites.id, memberships.siteId))
    .where(eq(memberships.studyId, studyId))
    .orderBy(asc(users.fullName), asc(memberships.grantedAt));
  return rows;
}
