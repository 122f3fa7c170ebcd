/**
 * eConsent step 5: withdrawal, full or partial, by the participant through their link or recorded by staff. It is
 * a ledger entry (`consent.withdrawn`, the reason only as its SHA-256); data entry then follows what the
 * withdrawal allows (assertConsentAllowsNewData in status.server.ts); earlier data are retained.
 */
import { eq } from "drizzle-orm";
import { z } from "zod";
import { consentWithdrawals, participants, studies } from "../../db/schema/index.ts";
import type { AppContext } from "../platform/context.server.ts";
import { ServiceError } from "../platform/errors.server.ts";
import type { Principal } from "../platform/permissions.server.ts";
import { appendEntry } from "../log/append-entry.server.ts";
import { saltedTextHash } from "../../anchoring/log/text-hash.ts";
import { audit } from "../audit-trail/record-event.server.ts";
import { requireSiteAction } from "../studies/delegations.server.ts";
import { getStudyOrThrow } from "../studies/studies.server.ts";
import { participantBySubject } from "../participants/find-participant.server.ts";
import { openInvitation } from "./invitation-state.server.ts";
import { consentStatus, withdrawalsOf } from "./status.server.ts";

function invalid(message: string, field: string): never {
  throw new ServiceError("invalid", message, field);
}

export const WithdrawInput = z
  .object({
    scope: z.enum(["full", "partial"], { error: "choose full or partial withdrawal" }),
    followUp: z.boolean().default(false),
    optionalWithdrawn: z
      .array(z.string().regex(/^[a-z][a-z0-9_]{0,31}$/))
      .max(20)
      .default([]),
    reason: z.string().trim().max(2000).optional(),
  })
  .superRefine((v, c) => {
    if (v.scope === "full" && v.followUp)
      c.addIssue({
        code: "custom",
        path: ["followUp"],
        message: "a full withdrawal allows no follow-up; choose partial",
      });
    if (v.scope === "partial" && !v.followUp && v.optionalWithdrawn.length === 0)
      c.addIssue({
        code: "custom",
        path: ["scope"],
        message: "a partial withdrawal keeps follow-up or withdraws optional items; otherwise choose full",
      });
  });

async function writeWithdrawal(
  ctx: AppContext,
  p: typeof participants.$inferSelect,
  input: unknown,
  by: { participant: true } | { principal: Principal },
) {
  const r = WithdrawInput.safeParse(input);
  if (!r.success)
    invalid(
      `${r.error.issues[0].path.join(".") || "withdrawal"}: ${r.error.issues[0].message}`,
      String(r.error.issues[0].path[0] ?? "scope"),
    );
  const v = r.data;
  const [study] = await ctx.db.select().from(studies).where(eq(studies.id, p.studyId));
  const prior = await withdrawalsOf(ctx, p.id);
  if (prior.some((w) => w.scope === "full"))
    throw new ServiceError("conflict", "consent has already been withdrawn fully", "scope");
  const status = await consentStatus(ctx, p.id);
  if (!status.signatures.some((s) => s.primary))
    throw new ServiceError("conflict", "there is no consent to withdraw", "scope");
  const known = new Set(status.signatures.filter((s) => s.primary).flatMap((s) => Object.keys(s.options)));
  for (const k of v.optionalWithdrawn)
    if (!known.has(k))
      invalid(`optionalWithdrawn: "${k}" is not an optional item of the signed document`, "optionalWithdrawn");
  const byParticipant = "participant" in by;
  const actor = byParticipant ? null : by.principal.userId;
  return ctx.db.transaction(async (tx) => {
    const id = crypto.randomUUID();
    const e = await appendEntry(tx, ctx.crypto, study, "consent.withdrawn", (salt) => ({
      withdrawal: id,
      subject: p.subjectCode,
      scope: v.scope,
      followUp: v.followUp,
      optionalWithdrawn: v.optionalWithdrawn,
      reasonHash: v.reason ? saltedTextHash(ctx.crypto, salt, v.reason) : null,
      byParticipant,
      actor,
    }));
    await tx.insert(consentWithdrawals).values({
      id,
      studyId: p.studyId,
      participantId: p.id,
      scope: v.scope,
      allows: { followUp: v.followUp, optionalWithdrawn: v.optionalWithdrawn },
      reason: v.reason || null,
      recordedBy: actor,
      byParticipant,
      withdrawnAt: new Date(),
      entryId: e.id,
    });
    if (v.scope === "full") await tx.update(participants).set({ status: "withdrawn" }).where(eq(participants.id, p.id));
    await audit(tx, {
      action: "consent.withdraw",
      actorUserId: actor,
      studyId: p.studyId,
      siteId: p.siteId,
      participantId: p.id,
      detail: { withdrawal: id, scope: v.scope, followUp: v.followUp, byParticipant },
    });
    return { id, entryId: e.id };
  });
}

/** The participant withdraws through their verified link. */
export async function withdrawByParticipant(
  ctx: AppContext,
  token: string,
  verifiedInvitationId: string | null,
  input: unknown,
) {
  const o = await openInvitation(ctx, token);
  if (!o) throw new ServiceError("not_found", "This link is not valid.");
  if (o.state !== "used") throw new ServiceError("conflict", o.message ?? "Sign the consent before withdrawing it.");
  if (verifiedInvitationId !== o.invitation.id)
    throw new ServiceError("unauthenticated", "Confirm your identity with the one-time code first.", "code");
  return writeWithdrawal(ctx, o.participant, input, { participant: true });
}

/** Site staff record a withdrawal the participant told them about (delegated consent task). */
export async function recordWithdrawal(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  subject: string,
  input: unknown,
) {
  const study = await getStudyOrThrow(ctx, studyCode);
  const p = await participantBySubject(ctx, study.id, subject);
  if (!p) invalid(`subject: no subject ${subject}`, "subject");
  await requireSiteAction(ctx, principal, "consent.obtain", { studyId: study.id, siteId: p.siteId });
  return writeWithdrawal(ctx, p, input, { principal });
}
