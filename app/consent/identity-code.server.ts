/**
 * eConsent step 2, the identity check: whoever opens an invitation link must enter a one-time code sent to the
 * signer's own contact (limited sends, attempts and lifetime), so site staff holding the link alone cannot sign.
 */
import { randomInt } from "node:crypto";
import { and, eq, lt, sql } from "drizzle-orm";
import { toHex } from "../../anchoring/log/bytes.ts";
import { consentInvitations, outbox } from "../../db/schema/index.ts";
import type { AppContext } from "../platform/context.server.ts";
import { ServiceError } from "../platform/errors.server.ts";
import { audit } from "../audit-trail/record-event.server.ts";
import type { RequestMeta } from "../accounts/auth.server.ts";
import { MAX_CODE_FAILURES, openOrThrow } from "./invitation-state.server.ts";

export const CODE_TTL_MS = 10 * 60_000;
export const MAX_CODE_SENDS = 5;

const codeHash = (ctx: AppContext, invitationId: string, code: string) =>
  ctx.crypto.sha256(new TextEncoder().encode(`${invitationId}:${code}`));

/**
 * Send a fresh 6-digit code to the signer's contact (email or SMS through the outbox). Also used to come back
 * after signing.
 */
export async function sendIdentityCode(ctx: AppContext, token: string) {
  const o = await openOrThrow(ctx, token, true);
  const inv = o.invitation;
  if (inv.otpSends >= MAX_CODE_SENDS)
    throw new ServiceError(
      "rate_limited",
      `At most ${MAX_CODE_SENDS} codes can be sent for one invitation. Please ask the study team for a new one.`,
      "code",
    );
  const code = String(randomInt(0, 1_000_000)).padStart(6, "0");
  await ctx.db.transaction(async (tx) => {
    await tx
      .update(consentInvitations)
      .set({
        otpHash: codeHash(ctx, inv.id, code),
        otpExpiresAt: new Date(Date.now() + CODE_TTL_MS),
        otpSends: inv.otpSends + 1,
      })
      .where(eq(consentInvitations.id, inv.id));
    await tx.insert(outbox).values({
      channel: inv.channel,
      toAddress: o.contact,
      kind: "consent_code",
      subject: `Your TrialSeal code: ${code}`,
      body:
        `Your one-time code to open your consent document for ${o.study.code} is ${code}. ` +
        "It is valid for 10 minutes. If you did not ask for it, tell the study team.\n",
    });
    await audit(tx, {
      action: "consent.code_sent",
      studyId: o.study.id,
      siteId: o.participant.siteId,
      participantId: o.participant.id,
      detail: { invitation: inv.id, channel: inv.channel },
    });
  });
  return { sentTo: o.sentTo, channel: inv.channel };
}

/** Check the code; too many wrong codes lock the invitation. Returns the invitation id on success. */
export async function verifyIdentityCode(ctx: AppContext, token: string, code: string, meta: RequestMeta) {
  const o = await openOrThrow(ctx, token, true);
  const inv = o.invitation;
  const clean = code.replace(/\s+/g, "");
  if (!inv.otpHash || !inv.otpExpiresAt) throw new ServiceError("invalid", "Ask for a code first.", "code");
  if (inv.otpExpiresAt.getTime() < Date.now())
    throw new ServiceError("invalid", "This code has expired. Ask for a new one.", "code");
  // Count the attempt in one statement before checking it (ADR 0022): parallel guesses cannot pass the limit.
  const [counted] = await ctx.db
    .update(consentInvitations)
    .set({ otpFailures: sql`${consentInvitations.otpFailures} + 1` })
    .where(and(eq(consentInvitations.id, inv.id), lt(consentInvitations.otpFailures, MAX_CODE_FAILURES)))
    .returning({ failures: consentInvitations.otpFailures });
  if (!counted)
    throw new ServiceError(
      "locked",
      "Too many wrong codes. For your protection this invitation can no longer be used; " +
        "please ask the study team for a new one.",
      "code",
    );
  const ok = /^\d{6}$/.test(clean) && toHex(codeHash(ctx, inv.id, clean)) === toHex(inv.otpHash);
  if (!ok) {
    const failures = counted.failures;
    await audit(ctx.db, {
      action: "consent.code_check",
      outcome: "failure",
      studyId: o.study.id,
      participantId: o.participant.id,
      ip: meta.ip,
      detail: { invitation: inv.id, failures },
    });
    const left = MAX_CODE_FAILURES - failures;
    if (left <= 0)
      throw new ServiceError(
        "locked",
        "Too many wrong codes. For your protection this invitation can no longer be used; " +
          "please ask the study team for a new one.",
        "code",
      );
    throw new ServiceError(
      "invalid",
      `That code is not correct. ${left} attempt${left === 1 ? "" : "s"} left.`,
      "code",
    );
  }
  await ctx.db
    .update(consentInvitations)
    .set({ otpHash: null, verifiedAt: new Date(), otpFailures: sql`${consentInvitations.otpFailures} - 1` })
    .where(eq(consentInvitations.id, inv.id));
  await audit(ctx.db, {
    action: "consent.code_check",
    studyId: o.study.id,
    participantId: o.participant.id,
    ip: meta.ip,
    detail: { invitation: inv.id },
  });
  return inv.id;
}
