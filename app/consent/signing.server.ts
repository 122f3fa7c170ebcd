/**
 * eConsent step 3, signing through a verified invitation: every section acknowledged, comprehension questions
 * answered correctly, each optional item answered, the typed full name equal to the expected name, the meaning
 * confirmed. One transaction marks the invitation used (single use) and writes each signature with its ledger
 * entry (`consent.signed`: document SHA-256, role, meaning, an HMAC of the name under the subject key; no personal
 * data in clear).
 */
import { and, eq, isNull } from "drizzle-orm";
import { consentInvitations, type SignerRole } from "../../db/schema/index.ts";
import type { AppContext } from "../platform/context.server.ts";
import { type Problem, ServiceError } from "../platform/errors.server.ts";
import { audit } from "../audit-trail/record-event.server.ts";
import type { RequestMeta } from "../accounts/auth.server.ts";
import { decryptField } from "../participants/personal-data.server.ts";
import { decryptParticipant } from "../participants/decrypt-participant.server.ts";
import { newToken } from "../accounts/secret-tokens.server.ts";
import { optionalItems, questionsOf, sameName } from "./consent-document.ts";
import { parsedDocument } from "./approved-documents.server.ts";
import { openOrThrow, type OpenedInvitation } from "./invitation-state.server.ts";
import { signingKey, writeSignature } from "./signatures.server.ts";

export interface SignInput {
  acknowledged: string[];
  answers: Record<string, string>;
  options: Record<string, string>;
  typedName: string;
  confirm: boolean;
  /** Parent invitations with assent: the minor's typed name and confirmation. */
  assentName?: string;
  assentConfirm?: boolean;
}

/** Which names the signer(s) must type for this invitation. */
function expectedNames(ctx: AppContext, o: OpenedInvitation) {
  const person = decryptParticipant(ctx, o.participant);
  const rep = o.invitation.representativeNameEnc
    ? decryptField(
        ctx.env.dataKey,
        o.invitation.representativeNameEnc,
        `consent_invitations.representative_name:${o.participant.id}`,
      )
    : null;
  return { signer: o.invitation.signerRole === "participant" ? person.name! : rep!, participant: person.name };
}

/**
 * Sign through a verified invitation. Everything is checked before anything is written; then one transaction
 * takes the invitation (single use: a concurrent second signing finds it used) and writes the signatures.
 */
export async function signConsent(
  ctx: AppContext,
  token: string,
  verifiedInvitationId: string | null,
  input: SignInput,
  opts: { fromStaffDevice: boolean; meta: RequestMeta },
) {
  const o = await openOrThrow(ctx, token);
  const inv = o.invitation;
  if (verifiedInvitationId !== inv.id || !inv.verifiedAt)
    throw new ServiceError("unauthenticated", "Confirm your identity with the one-time code first.", "code");
  const doc = parsedDocument(o.document);
  // Every problem at once, in the document's order (issue 17): the page lists them next to the Sign button.
  const problems: Problem[] = [];
  const problem = (message: string, field: string) => problems.push({ field, message });
  for (const s of doc.sections)
    if (!input.acknowledged.includes(s.id))
      problem(`Please confirm that you have read the section "${s.heading}".`, `ack-${s.id}`);
  for (const q of questionsOf(doc)) {
    const a = input.answers[q.id];
    if (a !== "yes" && a !== "no") problem(`Please answer the question "${q.text}".`, `answer-${q.id}`);
    else if (a !== q.answer)
      problem(
        `Your answer to "${q.text}" does not match the document. ` +
          "Please read that section again, or ask the study team.",
        `answer-${q.id}`,
      );
  }
  const options: Record<string, boolean> = {};
  for (const item of optionalItems(doc)) {
    const a = input.options[item.key];
    if (a !== "yes" && a !== "no") problem(`Please choose yes or no for: "${item.text}"`, `option-${item.key}`);
    options[item.key] = a === "yes";
  }
  const names = expectedNames(ctx, o);
  if (!sameName(input.typedName, names.signer))
    problem(
      "The name you typed does not match the name the study team recorded. " +
        "Type your full name as it appears on your records, or ask the study team.",
      "typedName",
    );
  if (!input.confirm) problem("Please confirm that typing your name is your electronic signature.", "confirm");
  if (inv.assent) {
    if (!sameName(input.assentName ?? "", names.participant ?? ""))
      problem("The child's name does not match the name the study team recorded.", "assentName");
    if (!input.assentConfirm) problem("The child must confirm their assent.", "assentConfirm");
  }
  if (problems.length) throw new ServiceError("invalid", problems[0].message, problems[0].field, problems);
  const key = signingKey(ctx, o.participant);
  const publicToken = newToken("cv_");
  const signedAt = new Date();
  const out = await ctx.db.transaction(async (tx) => {
    const taken = await tx
      .update(consentInvitations)
      .set({ usedAt: signedAt })
      .where(
        and(eq(consentInvitations.id, inv.id), isNull(consentInvitations.usedAt), isNull(consentInvitations.revokedAt)),
      )
      .returning({ id: consentInvitations.id });
    if (taken.length === 0) throw new ServiceError("conflict", "This invitation has already been used to sign.");
    const sign = (
      role: SignerRole,
      printedName: string,
      countersigns: string | null,
      extra: { publicToken?: string; options?: Record<string, boolean> },
    ) =>
      writeSignature(ctx, tx, {
        study: o.study,
        participant: o.participant,
        document: o.document,
        key,
        role,
        printedName,
        countersigns,
        fromStaffDevice: opts.fromStaffDevice,
        actor: null,
        userId: null,
        invitationId: inv.id,
        signedAt,
        ...extra,
      });
    const main = await sign(inv.signerRole, input.typedName.trim(), null, { publicToken, options });
    if (inv.assent) await sign("assent", input.assentName!.trim(), main.id, {});
    await audit(tx, {
      action: "consent.sign",
      studyId: o.study.id,
      siteId: o.participant.siteId,
      participantId: o.participant.id,
      ip: opts.meta.ip,
      detail: {
        invitation: inv.id,
        signature: main.id,
        signerRole: inv.signerRole,
        fromStaffDevice: opts.fromStaffDevice,
      },
    });
    return main;
  });
  return { signature: out.id, entryId: out.entryId, publicToken };
}
