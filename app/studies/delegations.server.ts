/**
 * Delegation of authority log (ICH E6(R3) 2.3): an investigator delegates tasks at their site to site staff,
 * with start/end dates and the training that qualifies them (course, date, SHA-256 of the evidence file).
 * Every grant and revocation is a ledger entry. The portal lets site staff do a delegable task only while a
 * delegation for it is current; investigators of the site hold those tasks themselves.
 */
import { and, asc, eq, isNull } from "drizzle-orm";
import { alias } from "drizzle-orm/pg-core";
import { z } from "zod";
import { delegations, memberships, sites, users } from "../../db/schema/index.ts";
import { findUserByEmail } from "../../db/queries/users.ts";
import type { AppContext } from "../platform/context.server.ts";
import { ServiceError } from "../platform/errors.server.ts";
import { appendEntry } from "../log/append-entry.server.ts";
import { saltedTextHash } from "../../anchoring/log/text-hash.ts";
import { audit } from "../audit-trail/record-event.server.ts";
import { can, type Action, type Principal } from "../platform/permissions.server.ts";
import { getStudyOrThrow } from "./studies.server.ts";

import { TASKS, type Task } from "./delegation-tasks.ts";
export { TASKS, type Task };

/** Which delegable task each portal action needs (actions not listed need no delegation). */
export const ACTION_TASK: Partial<Record<Action, Task>> = {
  "records.enter": "data_entry",
  "participants.enroll": "enrollment",
  "records.sign": "signoff",
  "consent.obtain": "consent",
};

const isoDate = z
  .string()
  .trim()
  .regex(/^\d{4}-\d{2}-\d{2}$/, "use YYYY-MM-DD")
  .refine(
    (d) => !Number.isNaN(Date.parse(`${d}T00:00:00Z`)) && new Date(`${d}T00:00:00Z`).toISOString().startsWith(d),
    "not a calendar date",
  );

export const GrantInput = z
  .object({
    study: z.string().trim().min(1),
    site: z.string().trim().min(1, "choose a site"),
    delegate: z.string().trim().toLowerCase().email("the delegate's email"),
    task: z.enum(TASKS, { error: `task must be one of ${TASKS.join(", ")}` }),
    startsOn: isoDate,
    endsOn: isoDate.nullable().default(null),
    training: z
      .array(
        z.object({
          course: z.string().trim().min(1, "name the training course").max(200),
          completedOn: isoDate,
          evidenceSha256: z.string().regex(/^[0-9a-f]{64}$/, "the SHA-256 of the evidence file (64 hex characters)"),
        }),
      )
      .min(1, "record at least one training (course, date, evidence file)")
      .max(20),
  })
  .refine((v) => v.endsOn === null || v.endsOn >= v.startsOn, {
    path: ["endsOn"],
    message: "the end date is before the start date",
  });

const today = () => new Date().toISOString().slice(0, 10);

function parse<T extends z.ZodType>(schema: T, input: unknown): z.infer<T> {
  const r = schema.safeParse(input);
  if (!r.success) {
    const i = r.error.issues[0];
    throw new ServiceError(
      "invalid",
      `${i.path.join(".") || "input"}: ${i.message}`,
      i.path.map(String).join(".") || undefined,
    );
  }
  return r.data;
}

async function siteOf(ctx: AppContext, studyId: string, code: string) {
  const [s] = await ctx.db
    .select()
    .from(sites)
    .where(and(eq(sites.studyId, studyId), eq(sites.code, code.toUpperCase())));
  if (!s) throw new ServiceError("not_found", `no site ${code} in this study`, "site");
  return s;
}

/** The investigator (or a study admin) delegates a task at their site to a member of that site. */
export async function grantDelegation(ctx: AppContext, principal: Principal, input: z.input<typeof GrantInput>) {
  const v = parse(GrantInput, input);
  if (!principal.userId)
    throw new ServiceError("forbidden", "delegations are granted by a person (an investigator of the site)");
  const study = await getStudyOrThrow(ctx, v.study);
  const site = await siteOf(ctx, study.id, v.site);
  const isInvestigatorHere = principal.memberships.some(
    (m) => m.studyId === study.id && m.role === "investigator" && m.siteId === site.id,
  );
  if (!isInvestigatorHere && !can(principal, "study.manage", { studyId: study.id })) {
    throw new ServiceError("forbidden", "only an investigator of this site (or a study admin) can delegate tasks here");
  }
  const delegate = await findUserByEmail(ctx.db, v.delegate);
  const [member] = delegate
    ? await ctx.db
        .select()
        .from(memberships)
        .where(
          and(
            eq(memberships.userId, delegate.id),
            eq(memberships.studyId, study.id),
            eq(memberships.siteId, site.id),
            isNull(memberships.revokedAt),
          ),
        )
    : [];
  if (!delegate || !member)
    throw new ServiceError("invalid", `${v.delegate} has no current role at site ${site.code}`, "delegate");
  if (delegate.id === principal.userId)
    throw new ServiceError("invalid", "you cannot delegate to yourself", "delegate");
  return ctx.db.transaction(async (tx) => {
    const [row] = await tx
      .insert(delegations)
      .values({
        studyId: study.id,
        siteId: site.id,
        delegatorId: principal.userId!,
        delegateId: delegate.id,
        task: v.task,
        startsOn: v.startsOn,
        endsOn: v.endsOn,
        training: v.training,
      })
      .returning();
    const e = await appendEntry(tx, ctx.crypto, study, "delegation.granted", (salt) => ({
      delegation: row.id,
      site: site.code,
      delegate: delegate.id,
      task: v.task,
      startsOn: v.startsOn,
      endsOn: v.endsOn,
      training: v.training.map((x) => ({
        courseHash: saltedTextHash(ctx.crypto, salt, x.course),
        completedOn: x.completedOn,
        evidenceSha256: x.evidenceSha256,
      })),
      actor: principal.userId,
    }));
    await tx.update(delegations).set({ entryId: e.id }).where(eq(delegations.id, row.id));
    await audit(tx, {
      action: "delegation.grant",
      actorUserId: principal.userId,
      studyId: study.id,
      siteId: site.id,
      detail: { delegation: row.id, delegate: delegate.id, task: v.task },
    });
    return { ...row, entryId: e.id };
  });
}

export async function revokeDelegation(
  ctx: AppContext,
  principal: Principal,
  input: { study: string; id: string; reason: string },
) {
  const v = parse(
    z.object({
      study: z.string(),
      id: z.string().uuid("no such delegation"),
      reason: z.string().trim().min(1, "give a reason").max(2000),
    }),
    input,
  );
  const study = await getStudyOrThrow(ctx, v.study);
  const [d] = await ctx.db
    .select()
    .from(delegations)
    .where(and(eq(delegations.id, v.id), eq(delegations.studyId, study.id)));
  if (!d) throw new ServiceError("not_found", "no such delegation", "id");
  if (d.revokedAt) throw new ServiceError("conflict", "this delegation is already revoked", "id");
  const isInvestigatorHere = principal.memberships.some(
    (m) => m.studyId === study.id && m.role === "investigator" && m.siteId === d.siteId,
  );
  if (!isInvestigatorHere && !can(principal, "study.manage", { studyId: study.id }))
    throw new ServiceError("forbidden", "only an investigator of this site (or a study admin) can revoke it");
  await ctx.db.transaction(async (tx) => {
    await tx.update(delegations).set({ revokedAt: new Date(), revokeReason: v.reason }).where(eq(delegations.id, d.id));
    await appendEntry(tx, ctx.crypto, study, "delegation.revoked", (salt) => ({
      delegation: d.id,
      reasonHash: saltedTextHash(ctx.crypto, salt, v.reason),
      actor: principal.userId,
    }));
    await audit(tx, {
      action: "delegation.revoke",
      actorUserId: principal.userId,
      studyId: study.id,
      siteId: d.siteId,
      detail: { delegation: d.id },
    });
  });
}

/** True when `userId` holds `task` at the site on `date` (an investigator of the site always does). */
export async function isDelegated(
  ctx: AppContext,
  principal: Principal,
  task: Task,
  scope: { studyId: string; siteId: string },
  date = today(),
): Promise<boolean> {
  if (principal.platformAdmin) return false; // administrators manage the study; they do not do site work
  if (
    principal.memberships.some(
      (m) => m.studyId === scope.studyId && m.role === "investigator" && m.siteId === scope.siteId,
    )
  )
    return true;
  if (!principal.userId) return principal.kind === "token"; // integration tokens act for the system (audited as such)
  const rows = await ctx.db
    .select({ startsOn: delegations.startsOn, endsOn: delegations.endsOn })
    .from(delegations)
    .where(
      and(
        eq(delegations.delegateId, principal.userId),
        eq(delegations.studyId, scope.studyId),
        eq(delegations.siteId, scope.siteId),
        eq(delegations.task, task),
        isNull(delegations.revokedAt),
      ),
    );
  return rows.some((r) => r.startsOn <= date && (r.endsOn === null || date <= r.endsOn));
}

/**
 * The check every site-work action starts with: the role permission, then (for delegable tasks) a current
 * delegation. Throws forbidden with a message that says which.
 */
export async function requireSiteAction(
  ctx: AppContext,
  principal: Principal,
  action: Action,
  scope: { studyId: string; siteId: string },
) {
  if (!can(principal, action, scope)) throw new ServiceError("forbidden", `not permitted: ${action}`);
  const task = ACTION_TASK[action];
  if (task && !(await isDelegated(ctx, principal, task, scope))) {
    throw new ServiceError(
      "forbidden",
      `${task.replace("_", " ")} at this site has not been delegated to you ` +
        "(or the delegation is not current); ask the site's investigator",
    );
  }
}

/** The delegation log of a study (optionally one site), newest first, with names. */
export async function delegationLog(ctx: AppContext, studyId: string) {
  const delegator = alias(users, "delegator");
  const rows = await ctx.db
    .select({
      d: delegations,
      site: sites.code,
      delegate: users.fullName,
      delegateEmail: users.email,
      delegatorName: delegator.fullName,
    })
    .from(delegations)
    .innerJoin(sites, eq(sites.id, delegations.siteId))
    .innerJoin(users, eq(users.id, delegations.delegateId))
    .innerJoin(delegator, eq(delegator.id, delegations.delegatorId))
    .where(eq(delegations.studyId, studyId))
    .orderBy(asc(delegations.createdAt));
  const now = today();
  return rows.map(({ d, site, delegate, delegateEmail, delegatorName }) => ({
    id: d.id,
    site,
    task: d.task,
    delegate,
    delegateEmail,
    delegator: delegatorName,
    startsOn: d.startsOn,
    endsOn: d.endsOn,
    training: d.training as { course: string; completedOn: string; evidenceSha256: string }[],
    entryId: d.entryId,
    status: d.revokedAt
      ? "revoked"
      : d.startsOn > now
        ? "not started"
        : d.endsOn !== null && d.endsOn < now
          ? "ended"
          : "current",
    createdAt: d.createdAt,
  }));
}

/**
 * The staff a task can be delegated to, for the delegation form's list: active accounts with a current role at one
 * of the given sites of the study (by name and role), by site then name. The form sends the chosen e-mail, as the
 * API does.
 */
export async function delegableStaff(ctx: AppContext, studyId: string, siteCodes: string[]) {
  const rows = await ctx.db
    .select({ site: sites.code, email: users.email, fullName: users.fullName, role: memberships.role })
    .from(memberships)
    .innerJoin(users, eq(users.id, memberships.userId))
    .innerJoin(sites, eq(sites.id, memberships.siteId))
    .where(and(eq(memberships.studyId, studyId), isNull(memberships.revokedAt), eq(users.status, "active")))
    .orderBy(asc(sites.code), asc(users.fullName));
  return rows.filter((r) => siteCodes.includes(r.site));
}
