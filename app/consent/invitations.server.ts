/**
 * eConsent (FDA/OHRP eIC guidance, 21 CFR Part 11, ICH E6(R3)); the choices are in docs/decisions/0007-econsent.md.
 * The steps, one module each in this folder:
 *
 * 1. Invitation (here): a delegated site member creates a one-time link for an enrolled participant (or their
 *    legally authorized representative / parent); it is sent through the outbox to the signer's own contact. Only
 *    the token's SHA-256 is stored; a newer invitation supersedes older open ones. What a link leads to is in
 *    invitation-state.server.ts. The contact must first be confirmed by a second member of staff, not the inviter
 *    (contact-confirmation.server.ts, ADR 0018).
 * 2. Identity check (identity-code.server.ts): whoever opens the link must enter a one-time code sent to the
 *    signer's contact (limited sends, attempts and lifetime), so site staff holding the link alone cannot sign.
 * 3. Signing (signing.server.ts): every section acknowledged, comprehension questions answered correctly, each
 *    optional item answered, the typed full name equal to the expected name, the meaning confirmed. One transaction
 *    marks the invitation used (single use) and writes each signature with its ledger entry (signatures.server.ts).
 * 4. Countersignature (countersigning.server.ts) by the person obtaining consent (delegated, re-authenticated),
 *    optionally with an impartial witness.
 * 5. Withdrawal (withdrawal.server.ts), full or partial, by the participant through their link or recorded by
 *    staff: a ledger entry; data entry then follows what the withdrawal allows (status.server.ts); earlier data are
 *    retained.
 */
import { and, eq, isNull } from "drizzle-orm";
import { z } from "zod";
import { consentInvitations } from "../../db/schema/index.ts";
import { queueNotification } from "../notifications/notify.server.ts";
import type { AppContext } from "../platform/context.server.ts";
import { ServiceError } from "../platform/errors.server.ts";
import type { Principal } from "../platform/permissions.server.ts";
import { audit } from "../audit-trail/record-event.server.ts";
import { requireSiteAction } from "../studies/delegations.server.ts";
import { getStudyOrThrow } from "../studies/studies.server.ts";
import { encryptField } from "../participants/personal-data.server.ts";
import { decryptParticipant } from "../participants/decrypt-participant.server.ts";
import { participantBySubject } from "../participants/find-participant.server.ts";
import { newToken, tokenHash } from "../accounts/secret-tokens.server.ts";
import { currentDocuments } from "./approved-documents.server.ts";
import { contactSchema, maskContact } from "./signer-contact.ts";
import { requireConfirmedContact } from "./contact-confirmation.server.ts";
import { withdrawalsOf } from "./status.server.ts";

export const INVITATION_TTL_HOURS = 72;

function invalid(message: string, field: string): never {
  throw new ServiceError("invalid", message, field);
}

export const InvitationInput = z
  .object({
    subject: z.string().trim().min(1, "choose a participant").max(64),
    document: z.string().trim().toUpperCase().max(32).optional(),
    signerRole: z.enum(["participant", "lar", "parent"]).default("participant"),
    representativeName: z.string().trim().max(200).optional(),
    representativeContact: z.string().trim().max(200).optional(),
    assent: z.boolean().default(false),
    expiresInHours: z
      .number()
      .int()
      .min(1)
      .max(24 * 14)
      .default(INVITATION_TTL_HOURS),
  })
  .superRefine((v, c) => {
    if (v.signerRole !== "participant") {
      if (!v.representativeName)
        c.addIssue({ code: "custom", path: ["representativeName"], message: "give the representative's full name" });
      if (!v.representativeContact || !contactSchema.safeParse(v.representativeContact).success)
        c.addIssue({
          code: "custom",
          path: ["representativeContact"],
          message: "give the representative's email address or phone number",
        });
    }
    if (v.assent && v.signerRole !== "parent")
      c.addIssue({ code: "custom", path: ["assent"], message: "a minor's assent goes with a parent's permission" });
  });

/**
 * A delegated site member invites a participant (or representative) to sign the current version of a consent
 * document. Returns the link once; the database keeps only its hash. Older open invitations are superseded.
 */
export async function createInvitation(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  input: unknown,
  baseUrl: string,
) {
  const r = InvitationInput.safeParse(input);
  if (!r.success) {
    const i = r.error.issues[0];
    invalid(`${i.path.join(".") || "invitation"}: ${i.message}`, String(i.path[0] ?? "subject"));
  }
  const v = r.data;
  const study = await getStudyOrThrow(ctx, studyCode);
  const p = await participantBySubject(ctx, study.id, v.subject);
  if (!p) invalid(`subject: no subject ${v.subject} in ${study.code}`, "subject");
  await requireSiteAction(ctx, principal, "consent.obtain", { studyId: study.id, siteId: p.siteId });
  const docs = await currentDocuments(ctx, study.id);
  const doc = v.document ? docs.get(v.document) : [...docs.values()][0];
  if (!doc)
    invalid(
      v.document
        ? `document: ${v.document} has no approved version`
        : "document: this study has no approved consent document",
      "document",
    );
  if ((await withdrawalsOf(ctx, p.id)).some((w) => w.scope === "full"))
    throw new ServiceError(
      "conflict",
      `subject ${p.subjectCode} has withdrawn consent fully; no new consent can be taken`,
      "subject",
    );
  const person = decryptParticipant(ctx, p);
  let contact: string;
  let repName: string | null = null;
  if (v.signerRole === "participant") {
    if (!person.name)
      invalid(`subject: ${p.subjectCode} was enrolled without a full name; the signature must match it`, "subject");
    const c = person.email ?? person.phone;
    if (!c) invalid(`subject: ${p.subjectCode} has no email or phone on record for the identity check`, "subject");
    contact = c;
    if (v.assent) invalid("assent: a minor's assent goes with a parent's permission", "assent");
  } else {
    repName = v.representativeName!;
    contact = contactSchema.parse(v.representativeContact);
    if (v.assent && !person.name)
      invalid(
        `subject: ${p.subjectCode} was enrolled without a full name; the minor's assent must match it`,
        "subject",
      );
  }
  // ADR 0018: the code's destination must have been confirmed by a second member of staff, not the inviter.
  await requireConfirmedContact(ctx, principal, p, v.signerRole, contact, repName);
  const channel = contact.includes("@") ? ("email" as const) : ("sms" as const);
  const token = newToken("ci_");
  const url = `${baseUrl}/consent/${token}`;
  const expiresAt = new Date(Date.now() + v.expiresInHours * 3600_000);
  const inv = await ctx.db.transaction(async (tx) => {
    await tx
      .update(consentInvitations)
      .set({ revokedAt: new Date() })
      .where(
        and(
          eq(consentInvitations.participantId, p.id),
          isNull(consentInvitations.usedAt),
          isNull(consentInvitations.revokedAt),
        ),
      );
    const [row] = await tx
      .insert(consentInvitations)
      .values({
        studyId: study.id,
        participantId: p.id,
        documentId: doc.id,
        signerRole: v.signerRole,
        representativeNameEnc: repName
          ? encryptField(ctx.env.dataKey, repName, `consent_invitations.representative_name:${p.id}`)
          : null,
        representativeContactEnc:
          v.signerRole === "participant"
            ? null
            : encryptField(ctx.env.dataKey, contact, `consent_invitations.representative_contact:${p.id}`),
        assent: v.assent,
        channel,
        tokenHash: tokenHash(ctx.crypto, token),
        createdBy: principal.userId,
        expiresAt,
      })
      .returning();
    await queueNotification(tx, {
      studyId: study.id,
      channel,
      to: contact,
      kind: "consent_invitation",
      subject: `Invitation to review and sign: ${doc.title}`,
      body:
        `Hello,\n\nThe study team of ${study.code} invites you to read and sign "${doc.title}" ` +
        `(version ${doc.version}).\n` +
        `Open this link (valid until ${expiresAt.toISOString().slice(0, 16).replace("T", " ")} UTC):\n${url}\n\n` +
        "You will be asked for a one-time code that we send to you separately.\n",
    });
    await audit(tx, {
      action: "consent.invite",
      actorUserId: principal.userId,
      actorLabel: principal.label,
      studyId: study.id,
      siteId: p.siteId,
      participantId: p.id,
      detail: { invitation: row.id, document: doc.code, version: doc.version, signerRole: v.signerRole, channel },
    });
    return row;
  });
  return {
    id: inv.id,
    token,
    url,
    expiresAt: expiresAt.toISOString(),
    channel,
    sentTo: maskContact(contact),
    document: { code: doc.code, version: doc.version },
  };
}
