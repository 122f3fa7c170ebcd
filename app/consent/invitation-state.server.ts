/**
 * What an invitation link leads to: the invitation, its document, participant and study, and its state in words
 * for the participant (open, used, expired, superseded by a newer document version, revoked, locked after too
 * many wrong codes, or void after a full withdrawal). Also the staff page's list of a participant's invitations.
 */
import { desc, eq } from "drizzle-orm";
import { consentDocuments, consentInvitations, participants, studies, users } from "../../db/schema/index.ts";
import type { AppContext } from "../platform/context.server.ts";
import { ServiceError } from "../platform/errors.server.ts";
import { decryptField } from "../participants/personal-data.server.ts";
import { decryptParticipant } from "../participants/decrypt-participant.server.ts";
import { tokenHash } from "../accounts/secret-tokens.server.ts";
import { currentDocuments } from "./approved-documents.server.ts";
import { maskContact } from "./signer-contact.ts";
import { withdrawalsOf } from "./status.server.ts";

/** Wrong one-time codes after which an invitation is locked (identity-code.server.ts counts them). */
export const MAX_CODE_FAILURES = 5;

export type InvitationState = "open" | "expired" | "revoked" | "used" | "superseded" | "locked" | "withdrawn";

/** What a link leads to; `message` explains every state but "open" and "used" in words for the participant. */
export async function openInvitation(ctx: AppContext, token: string) {
  if (!/^ci_[A-Za-z0-9_-]{43}$/.test(token)) return null;
  const [row] = await ctx.db
    .select({ inv: consentInvitations, doc: consentDocuments, p: participants, study: studies })
    .from(consentInvitations)
    .innerJoin(consentDocuments, eq(consentDocuments.id, consentInvitations.documentId))
    .innerJoin(participants, eq(participants.id, consentInvitations.participantId))
    .innerJoin(studies, eq(studies.id, consentInvitations.studyId))
    .where(eq(consentInvitations.tokenHash, tokenHash(ctx.crypto, token)));
  if (!row) return null;
  const { inv, doc, p, study } = row;
  const current = (await currentDocuments(ctx, study.id)).get(doc.code);
  let state: InvitationState = "open";
  let message: string | null = null;
  if (p.erasedAt) {
    state = "revoked";
    message = "This link no longer works: the personal data behind it were erased at the participant's request.";
  } else if (inv.usedAt) state = "used";
  else if (inv.revokedAt) {
    state = "revoked";
    message =
      "This invitation was replaced by a newer one or withdrawn by the study team. " +
      "Please use the most recent link you received, or ask the study team.";
  } else if (inv.expiresAt.getTime() < Date.now()) {
    state = "expired";
    message =
      `This invitation expired on ${inv.expiresAt.toISOString().slice(0, 16).replace("T", " ")} UTC. ` +
      "Please ask the study team for a new one.";
  } else if (current && current.id !== doc.id) {
    state = "superseded";
    message =
      `This invitation is for version ${doc.version} of the document, ` +
      `which has been replaced by version ${current.version}. Please ask the study team for a new invitation.`;
  } else if (inv.otpFailures >= MAX_CODE_FAILURES) {
    state = "locked";
    message =
      "Too many wrong codes were entered for this invitation. " +
      "For your protection it can no longer be used; please ask the study team for a new one.";
  } else if ((await withdrawalsOf(ctx, p.id)).some((w) => w.scope === "full")) {
    state = "withdrawn";
    message = "You have withdrawn from this study; this invitation can no longer be used.";
  }
  const person = decryptParticipant(ctx, p);
  const contact =
    inv.signerRole === "participant"
      ? (person.email ?? person.phone ?? "")
      : inv.representativeContactEnc
        ? decryptField(
            ctx.env.dataKey,
            inv.representativeContactEnc,
            `consent_invitations.representative_contact:${p.id}`,
          )
        : "";
  return {
    invitation: inv,
    document: doc,
    participant: p,
    study,
    state,
    message,
    sentTo: maskContact(contact),
    contact,
  };
}
export type OpenedInvitation = NonNullable<Awaited<ReturnType<typeof openInvitation>>>;

/** The opened invitation, or the error a participant sees; `allowUsed` lets a signer come back after signing. */
export async function openOrThrow(ctx: AppContext, token: string, allowUsed = false) {
  const o = await openInvitation(ctx, token);
  if (!o)
    throw new ServiceError(
      "not_found",
      "This link is not valid. Check that you copied all of it, or ask the study team.",
    );
  if (o.state !== "open" && !(allowUsed && o.state === "used"))
    throw new ServiceError("conflict", o.message ?? "This invitation has already been used to sign.");
  return o;
}

/** Open invitations of a participant (for the staff page: state only, never the token). */
export async function invitationsOf(ctx: AppContext, participantId: string) {
  const rows = await ctx.db
    .select({ inv: consentInvitations, doc: consentDocuments, by: users.fullName })
    .from(consentInvitations)
    .innerJoin(consentDocuments, eq(consentDocuments.id, consentInvitations.documentId))
    .leftJoin(users, eq(users.id, consentInvitations.createdBy))
    .where(eq(consentInvitations.participantId, participantId))
    .orderBy(desc(consentInvitations.createdAt));
  const now = Date.now();
  return rows.map(({ inv, doc, by }) => ({
    id: inv.id,
    document: `${doc.code} ${doc.version}`,
    signerRole: inv.signerRole,
    createdBy: by,
    createdAt: inv.createdAt.toISOString(),
    expiresAt: inv.expiresAt.toISOString(),
    state: inv.usedAt
      ? "used"
      : inv.revokedAt
        ? "superseded"
        : inv.expiresAt.getTime() < now
          ? "expired"
          : inv.otpFailures >= MAX_CODE_FAILURES
            ? "locked"
            : "open",
  }));
}
