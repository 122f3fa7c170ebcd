/**
 * eConsent (FDA/OHRP eIC guidance, 21 CFR Part 11, ICH E6(R3)); the choices are in docs/decisions/0007-econsent.md.
 *
 * 1. Invitation: a delegated site member creates a one-time link for an enrolled participant (or their legally
 *    authorized representative / parent); it is sent through the outbox to the signer's own contact. Only the
 *    token's SHA-256 is stored; a newer invitation supersedes older open ones.
 * 2. Identity check: whoever opens the link must enter a one-time code sent to the signer's contact (limited
 *    sends, attempts and lifetime), so site staff holding the link alone cannot sign.
 * 3. Signing: every section acknowledged, comprehension questions answered correctly, each optional item
 *    answered, the typed full name equal to the expected name, the meaning confirmed. One transaction marks the
 *    invitation used (single use) and writes each signature with its ledger entry (`consent.signed`: document
 *    SHA-256, role, meaning, an HMAC of the name under the subject key; no personal data in clear).
 * 4. Countersignature by the person obtaining consent (delegated, re-authenticated), optionally with an
 *    impartial witness. 5. Withdrawal, full or partial, by the participant through their link or recorded by
 *    staff: a ledger entry; data entry then follows what the withdrawal allows; earlier data are retained.
 */
import { createHmac, randomBytes, randomInt } from "node:crypto";
import { and, asc, desc, eq, isNull } from "drizzle-orm";
import { z } from "zod";
import { toHex } from "../../anchoring/log/bytes.ts";
import {
  consentDocuments,
  consentInvitations,
  consentSignatures,
  consentWithdrawals,
  ledgerEntries,
  outbox,
  participants,
  sites,
  studies,
  users,
  type SignerRole,
} from "../../db/schema/index.ts";
import { firstFinalAnchorsCovering } from "../../db/queries/anchors.ts";
import {
  optionalItems,
  parseConsentDocument,
  questionsOf,
  sameName,
  type ParsedConsentDocument,
} from "./consent-document.ts";
import type { DbOrTx } from "../../db/client.ts";
import type { AppContext } from "../platform/context.server.ts";
import { ServiceError } from "../platform/errors.server.ts";
import { appendEntry } from "../log/append-entry.server.ts";
import { audit } from "../audit-trail/record-event.server.ts";
import { reauthenticate, type RequestMeta } from "../accounts/auth.server.ts";
import { requireSiteAction } from "../studies/delegations.server.ts";
import { decryptField, encryptField } from "../participants/personal-data.server.ts";
import { can, type Principal } from "../platform/permissions.server.ts";
import { getStudyOrThrow } from "../studies/studies.server.ts";
import { newToken, tokenHash } from "../accounts/secret-tokens.server.ts";

export const INVITATION_TTL_HOURS = 72;
export const CODE_TTL_MS = 10 * 60_000;
export const MAX_CODE_SENDS = 5;
export const MAX_CODE_FAILURES = 5;

const MEANING: Record<SignerRole, string> = {
  participant: "I agree to take part in this study",
  lar: "As legally authorized representative, I agree to the participant taking part",
  parent: "As parent or guardian, I give permission for my child to take part",
  assent: "I agree to take part in this study (assent)",
  witness: "I witnessed the consent discussion and the participant's signature",
  staff: "I obtained this consent and answered the participant's questions",
};
export const signatureMeaning = (role: SignerRole) => MEANING[role];

function invalid(message: string, field: string): never {
  throw new ServiceError("invalid", message, field);
}

const sha256Hex = (ctx: AppContext, text: string) => toHex(ctx.crypto.sha256(new TextEncoder().encode(text)));

/** The per-subject HMAC key (destroying it is the erasure procedure). */
function subjectKey(ctx: AppContext, p: { id: string; subjectKeyEnc: Uint8Array | null }): Buffer {
  if (!p.subjectKeyEnc)
    throw new ServiceError("conflict", "this participant's personal data were erased; no consent can be taken");
  return Buffer.from(decryptField(ctx.env.dataKey, p.subjectKeyEnc, `participants.subject_key:${p.id}`), "base64");
}

const nameHmac = (key: Buffer, name: string) =>
  createHmac("sha256", key).update(name.normalize("NFC").trim().replace(/\s+/g, " ")).digest("hex");

/**
 * Printed names sit in the append-only consent_signatures table, so they are encrypted under a key derived from
 * the subject's key: destroying that key (the erasure procedure) shreds them without touching the rows.
 */
const printedNameKey = (subjectKey: Buffer) =>
  createHmac("sha256", subjectKey).update("trialseal/consent-printed-name/v1").digest();

function subjectKeyIfAny(ctx: AppContext, p: { id: string; subjectKeyEnc: Uint8Array | null }): Buffer | null {
  return p.subjectKeyEnc ? subjectKey(ctx, p) : null;
}

function decryptParticipant(ctx: AppContext, p: typeof participants.$inferSelect) {
  const dec = (field: string, v: Uint8Array | null) =>
    v ? decryptField(ctx.env.dataKey, v, `participants.${field}:${p.id}`) : null;
  return { name: dec("name", p.nameEnc), email: dec("email", p.emailEnc), phone: dec("phone", p.phoneEnc) };
}

const maskContact = (c: string) =>
  c.includes("@") ? c.replace(/^(.).*(@.).*(\..+)$/, "$1***$2***$3") : c.replace(/.(?=.{2})/g, "*");

/** The latest approved version of each consent document code of a study. */
async function currentDocuments(ctx: AppContext, studyId: string) {
  const docs = await ctx.db
    .select()
    .from(consentDocuments)
    .where(and(eq(consentDocuments.studyId, studyId), eq(consentDocuments.status, "approved")))
    .orderBy(asc(consentDocuments.code), desc(consentDocuments.approvedAt));
  const latest = new Map<string, typeof consentDocuments.$inferSelect>();
  for (const d of docs) if (!latest.has(d.code)) latest.set(d.code, d);
  return latest;
}

function parsedDocument(d: { bodyMarkdown: string; code: string; version: string }): ParsedConsentDocument {
  const r = parseConsentDocument(d.bodyMarkdown);
  if (!r.ok)
    throw new Error(`stored consent document ${d.code} ${d.version} no longer parses: line ${r.line}: ${r.message}`);
  return r.doc;
}

// ---------------------------------------------------------------------------------------------------------
// 1. Invitations

const contactSchema = z.union(
  [
    z.string().trim().toLowerCase().email(),
    z
      .string()
      .trim()
      .regex(/^\+?[0-9 ()-]{5,25}$/),
  ],
  {
    error: "an email address or a phone number such as +44 20 7946 0000",
  },
);

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

async function participantOf(ctx: AppContext, studyId: string, subject: string) {
  const [p] = await ctx.db
    .select()
    .from(participants)
    .where(and(eq(participants.studyId, studyId), eq(participants.subjectCode, subject.toUpperCase())));
  return p ?? null;
}

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
  const p = await participantOf(ctx, study.id, v.subject);
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
    await tx.insert(outbox).values({
      channel,
      toAddress: contact,
      kind: "consent_invitation",
      subject: `Invitation to review and sign: ${doc.title}`,
      body: `Hello,\n\nThe study team of ${study.code} invites you to read and sign "${doc.title}" (version ${doc.version}).\nOpen this link (valid until ${expiresAt.toISOString().slice(0, 16).replace("T", " ")} UTC):\n${url}\n\nYou will be asked for a one-time code that we send to you separately.\n`,
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
      "This invitation was replaced by a newer one or withdrawn by the study team. Please use the most recent link you received, or ask the study team.";
  } else if (inv.expiresAt.getTime() < Date.now()) {
    state = "expired";
    message = `This invitation expired on ${inv.expiresAt.toISOString().slice(0, 16).replace("T", " ")} UTC. Please ask the study team for a new one.`;
  } else if (current && current.id !== doc.id) {
    state = "superseded";
    message = `This invitation is for version ${doc.version} of the document, which has been replaced by version ${current.version}. Please ask the study team for a new invitation.`;
  } else if (inv.otpFailures >= MAX_CODE_FAILURES) {
    state = "locked";
    message =
      "Too many wrong codes were entered for this invitation. For your protection it can no longer be used; please ask the study team for a new one.";
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

async function openOrThrow(ctx: AppContext, token: string, allowUsed = false) {
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

// ---------------------------------------------------------------------------------------------------------
// 2. Identity check: a one-time code to the signer's own contact

const codeHash = (ctx: AppContext, invitationId: string, code: string) =>
  ctx.crypto.sha256(new TextEncoder().encode(`${invitationId}:${code}`));

/** Send a fresh 6-digit code to the signer's contact (email or SMS through the outbox). Also used to come back after signing. */
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
      body: `Your one-time code to open your consent document for ${o.study.code} is ${code}. It is valid for 10 minutes. If you did not ask for it, tell the study team.\n`,
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
  const ok = /^\d{6}$/.test(clean) && toHex(codeHash(ctx, inv.id, clean)) === toHex(inv.otpHash);
  if (!ok) {
    const failures = inv.otpFailures + 1;
    await ctx.db.update(consentInvitations).set({ otpFailures: failures }).where(eq(consentInvitations.id, inv.id));
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
        "Too many wrong codes. For your protection this invitation can no longer be used; please ask the study team for a new one.",
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
    .set({ otpHash: null, verifiedAt: new Date() })
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

// ---------------------------------------------------------------------------------------------------------
// 3. Signing

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
  for (const s of doc.sections)
    if (!input.acknowledged.includes(s.id))
      invalid(`Please confirm that you have read the section "${s.heading}".`, `ack-${s.id}`);
  for (const q of questionsOf(doc)) {
    const a = input.answers[q.id];
    if (a !== "yes" && a !== "no") invalid(`Please answer the question "${q.text}".`, `answer-${q.id}`);
    if (a !== q.answer)
      invalid(
        `Your answer to "${q.text}" does not match the document. Please read that section again, or ask the study team.`,
        `answer-${q.id}`,
      );
  }
  const options: Record<string, boolean> = {};
  for (const item of optionalItems(doc)) {
    const a = input.options[item.key];
    if (a !== "yes" && a !== "no") invalid(`Please choose yes or no for: "${item.text}"`, `option-${item.key}`);
    options[item.key] = a === "yes";
  }
  const names = expectedNames(ctx, o);
  if (!sameName(input.typedName, names.signer))
    invalid(
      "The name you typed does not match the name the study team recorded. Type your full name as it appears on your records, or ask the study team.",
      "typedName",
    );
  if (!input.confirm) invalid("Please confirm that typing your name is your electronic signature.", "confirm");
  if (inv.assent) {
    if (!sameName(input.assentName ?? "", names.participant ?? ""))
      invalid("The child's name does not match the name the study team recorded.", "assentName");
    if (!input.assentConfirm) invalid("The child must confirm their assent.", "assentConfirm");
  }
  const key = subjectKey(ctx, o.participant);
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

/**
 * One signature row and its `consent.signed` ledger entry, in the caller's transaction. The printed name is
 * stored encrypted and reaches the ledger only as an HMAC under the subject's key.
 */
async function writeSignature(
  ctx: AppContext,
  tx: DbOrTx,
  s: {
    study: { id: string; code: string };
    participant: { id: string; subjectCode: string };
    document: { id: string; code: string; version: string; bodySha256: Uint8Array };
    key: Buffer;
    role: SignerRole;
    printedName: string;
    countersigns: string | null;
    fromStaffDevice: boolean;
    actor: string | null;
    userId: string | null;
    invitationId: string | null;
    signedAt: Date;
    options?: Record<string, boolean>;
    publicToken?: string;
  },
) {
  const id = crypto.randomUUID();
  const e = await appendEntry(tx, ctx.crypto, s.study, "consent.signed", {
    signature: id,
    subject: s.participant.subjectCode,
    document: s.document.code,
    version: s.document.version,
    documentSha256: toHex(s.document.bodySha256),
    signerRole: s.role,
    meaning: MEANING[s.role],
    nameHmac: nameHmac(s.key, s.printedName),
    options: s.options ?? {},
    countersigns: s.countersigns,
    fromStaffDevice: s.fromStaffDevice,
    actor: s.actor,
  });
  await tx.insert(consentSignatures).values({
    id,
    studyId: s.study.id,
    participantId: s.participant.id,
    documentId: s.document.id,
    signerRole: s.role,
    meaning: MEANING[s.role],
    printedNameEnc: encryptField(printedNameKey(s.key), s.printedName, `consent_signatures.printed_name:${id}`),
    userId: s.userId,
    fromStaffDevice: s.fromStaffDevice,
    options: s.options ?? {},
    signedAt: s.signedAt,
    entryId: e.id,
    invitationId: s.invitationId,
    countersigns: s.countersigns,
    publicTokenHash: s.publicToken ? tokenHash(ctx.crypto, s.publicToken) : null,
    publicTokenEnc: s.publicToken
      ? encryptField(ctx.env.dataKey, s.publicToken, `consent_signatures.public_token:${id}`)
      : null,
  });
  return { id, entryId: e.id };
}

// ---------------------------------------------------------------------------------------------------------
// 4. Countersignature (and impartial witness) by the person obtaining consent

export const CountersignInput = z.object({
  password: z.string().min(1, "enter your password"),
  code: z.string().trim().optional(),
  witnessName: z.string().trim().max(200).optional(),
});

export async function countersignConsent(
  ctx: AppContext,
  principal: Principal & { fullName?: string },
  studyCode: string,
  subject: string,
  input: unknown,
  meta: RequestMeta,
) {
  const r = CountersignInput.safeParse(input);
  if (!r.success)
    invalid(`${r.error.issues[0].path.join(".")}: ${r.error.issues[0].message}`, String(r.error.issues[0].path[0]));
  const study = await getStudyOrThrow(ctx, studyCode);
  const p = await participantOf(ctx, study.id, subject);
  if (!p) invalid(`subject: no subject ${subject}`, "subject");
  await requireSiteAction(ctx, principal, "consent.obtain", { studyId: study.id, siteId: p.siteId });
  const status = await consentStatus(ctx, p.id);
  const awaiting = [...status.signatures].reverse().find((s) => s.primary && !s.countersignedBy);
  if (!awaiting)
    throw new ServiceError("conflict", "there is no participant signature awaiting countersignature", "subject");
  const user = await reauthenticate(ctx, principal.userId!, r.data.password, r.data.code, meta);
  const key = subjectKey(ctx, p);
  const [doc] = await ctx.db.select().from(consentDocuments).where(eq(consentDocuments.id, awaiting.documentId));
  const signedAt = new Date();
  return ctx.db.transaction(async (tx) => {
    const sign = (role: "staff" | "witness", printedName: string, userId: string | null) =>
      writeSignature(ctx, tx, {
        study,
        participant: p,
        document: doc,
        key,
        role,
        printedName,
        countersigns: awaiting.id,
        fromStaffDevice: true,
        actor: principal.userId,
        userId,
        invitationId: null,
        signedAt,
      });
    const { id } = await sign("staff", user.fullName, principal.userId);
    if (r.data.witnessName) await sign("witness", r.data.witnessName, null);
    await audit(tx, {
      action: "consent.countersign",
      actorUserId: principal.userId,
      actorLabel: principal.label,
      studyId: study.id,
      siteId: p.siteId,
      participantId: p.id,
      detail: { signature: id, countersigns: awaiting.id, witness: !!r.data.witnessName },
    });
    return { signature: id };
  });
}

// ---------------------------------------------------------------------------------------------------------
// 5. Withdrawal

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
    const e = await appendEntry(tx, ctx.crypto, study, "consent.withdrawn", {
      withdrawal: id,
      subject: p.subjectCode,
      scope: v.scope,
      followUp: v.followUp,
      optionalWithdrawn: v.optionalWithdrawn,
      reasonSha256: v.reason ? sha256Hex(ctx, v.reason) : null,
      byParticipant,
      actor,
    });
    await tx
      .insert(consentWithdrawals)
      .values({
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
  const p = await participantOf(ctx, study.id, subject);
  if (!p) invalid(`subject: no subject ${subject}`, "subject");
  await requireSiteAction(ctx, principal, "consent.obtain", { studyId: study.id, siteId: p.siteId });
  return writeWithdrawal(ctx, p, input, { principal });
}

async function withdrawalsOf(ctx: AppContext, participantId: string, db: DbOrTx = ctx.db) {
  return db
    .select()
    .from(consentWithdrawals)
    .where(eq(consentWithdrawals.participantId, participantId))
    .orderBy(asc(consentWithdrawals.withdrawnAt));
}

/** Data entry follows consent: after a full withdrawal no new data may be collected (corrections of earlier data may). */
export async function assertConsentAllowsNewData(ctx: AppContext, participantId: string, db: DbOrTx = ctx.db) {
  const full = (await withdrawalsOf(ctx, participantId, db)).find((w) => w.scope === "full");
  if (full)
    throw new ServiceError(
      "conflict",
      `the participant withdrew consent on ${full.withdrawnAt.toISOString().slice(0, 10)}: no new data may be collected (data collected before the withdrawal are retained and may be corrected)`,
      "subject",
    );
}

// ---------------------------------------------------------------------------------------------------------
// Status, receipts and the public verification page

/** Seal status of a ledger entry: pending, or sealed in batch B (seq) and anchored on the ledgers that cover it. */
export async function entrySeal(ctx: AppContext, entryId: string) {
  const [e] = await ctx.db
    .select({
      status: ledgerEntries.status,
      seq: ledgerEntries.seq,
      batch: ledgerEntries.batchNo,
      at: ledgerEntries.at,
    })
    .from(ledgerEntries)
    .where(eq(ledgerEntries.id, entryId));
  if (!e) return { status: "missing" as const, seq: null, batch: null, anchoredOn: [] as string[], at: null };
  const anchoredOn = e.batch === null ? [] : (await firstFinalAnchorsCovering(ctx.db, e.batch)).map((a) => a.ledger);
  return { status: e.status, seq: e.seq, batch: e.batch, anchoredOn, at: e.at.toISOString() };
}

/** A participant's consent: every signature (names decrypted only when `withNames`), withdrawals, and the summary status. */
export async function consentStatus(ctx: AppContext, participantId: string, opts: { withNames?: boolean } = {}) {
  const [p] = await ctx.db.select().from(participants).where(eq(participants.id, participantId));
  const rows = await ctx.db
    .select({ s: consentSignatures, doc: consentDocuments })
    .from(consentSignatures)
    .innerJoin(consentDocuments, eq(consentDocuments.id, consentSignatures.documentId))
    .where(eq(consentSignatures.participantId, participantId))
    .orderBy(asc(consentSignatures.signedAt));
  const key = opts.withNames && p ? subjectKeyIfAny(ctx, p) : null;
  const signatures = rows.map(({ s, doc }) => ({
    id: s.id,
    role: s.signerRole as SignerRole,
    primary: s.countersigns === null,
    meaning: s.meaning,
    printedName:
      opts.withNames && s.printedNameEnc && key
        ? decryptField(printedNameKey(key), s.printedNameEnc, `consent_signatures.printed_name:${s.id}`)
        : null,
    signedAt: s.signedAt.toISOString(),
    fromStaffDevice: s.fromStaffDevice,
    options: s.options as Record<string, boolean>,
    documentId: doc.id,
    document: { code: doc.code, version: doc.version, title: doc.title, sha256: toHex(doc.bodySha256) },
    countersigns: s.countersigns,
    invitationId: s.invitationId,
    countersignedBy: null as string | null,
    entryId: s.entryId,
  }));
  for (const s of signatures)
    if (s.countersigns) {
      const target = signatures.find((x) => x.id === s.countersigns);
      if (target && s.role === "staff") target.countersignedBy = s.id;
    }
  const withdrawals = (await withdrawalsOf(ctx, participantId)).map((w) => ({
    id: w.id,
    scope: w.scope,
    allows: w.allows as { followUp: boolean; optionalWithdrawn: string[] },
    reason: w.reason,
    byParticipant: w.byParticipant,
    at: w.withdrawnAt.toISOString(),
    entryId: w.entryId,
  }));
  const current = p ? await currentDocuments(ctx, p.studyId) : new Map();
  const latestPrimary = [...signatures].reverse().find((s) => s.primary);
  let summary: string;
  let state: "none" | "awaiting_countersign" | "consented" | "reconsent_needed" | "withdrawn" | "partially_withdrawn";
  const full = withdrawals.find((w) => w.scope === "full");
  if (full) {
    state = "withdrawn";
    summary = `withdrawn ${full.at.slice(0, 10)}`;
  } else if (!latestPrimary) {
    state = "none";
    summary = "not consented";
  } else {
    const cur = current.get(latestPrimary.document.code);
    if (cur && cur.id !== latestPrimary.documentId) {
      state = "reconsent_needed";
      summary = `re-consent needed: signed ${latestPrimary.document.version}, current ${cur.version}`;
    } else if (!latestPrimary.countersignedBy) {
      state = "awaiting_countersign";
      summary = `signed ${latestPrimary.document.code} ${latestPrimary.document.version}, awaiting countersignature`;
    } else {
      state = "consented";
      summary = `consented ${latestPrimary.document.code} ${latestPrimary.document.version}`;
    }
    if (withdrawals.length) {
      state = state === "consented" ? "partially_withdrawn" : state;
      summary += " (partially withdrawn: follow-up only)";
    }
  }
  return { state, summary, signatures, withdrawals };
}

/** Everything the participant's receipt shows (page and PDF): the signed document, each manifestation, seal status. */
export async function consentReceipt(ctx: AppContext, o: OpenedInvitation, baseUrl: string) {
  const status = await consentStatus(ctx, o.participant.id, { withNames: true });
  const roots = new Set(
    status.signatures.filter((s) => s.primary && s.invitationId === o.invitation.id).map((s) => s.id),
  );
  const mine = status.signatures.filter(
    (s) => roots.has(s.id) || (s.countersigns !== null && roots.has(s.countersigns)),
  );
  const primary = mine.find((s) => s.primary);
  if (!primary) throw new ServiceError("conflict", "This invitation has not been signed yet.");
  const [row] = await ctx.db
    .select({ enc: consentSignatures.publicTokenEnc })
    .from(consentSignatures)
    .where(eq(consentSignatures.id, primary.id));
  const publicToken = row?.enc
    ? decryptField(ctx.env.dataKey, row.enc, `consent_signatures.public_token:${primary.id}`)
    : null;
  const seals = await Promise.all(mine.map(async (s) => ({ ...s, seal: await entrySeal(ctx, s.entryId) })));
  return {
    study: { code: o.study.code, title: o.study.title },
    subject: o.participant.subjectCode,
    document: {
      code: o.document.code,
      version: o.document.version,
      title: o.document.title,
      language: o.document.language,
      sha256: toHex(o.document.bodySha256),
      irbName: o.document.irbName,
      irbApprovedOn: o.document.irbApprovedOn,
      body: o.document.bodyMarkdown,
    },
    signatures: seals,
    withdrawals: status.withdrawals,
    state: status.state,
    summary: status.summary,
    verifyUrl: publicToken ? `${baseUrl}/c/${publicToken}` : null,
  };
}

/** The public page behind the QR code: non-personal facts of one consent and its proof status. */
export async function publicConsent(ctx: AppContext, publicToken: string) {
  if (!/^cv_[A-Za-z0-9_-]{43}$/.test(publicToken)) return null;
  const [row] = await ctx.db
    .select({
      s: consentSignatures,
      doc: consentDocuments,
      study: studies,
      site: sites.code,
      subject: participants.subjectCode,
    })
    .from(consentSignatures)
    .innerJoin(consentDocuments, eq(consentDocuments.id, consentSignatures.documentId))
    .innerJoin(studies, eq(studies.id, consentSignatures.studyId))
    .innerJoin(participants, eq(participants.id, consentSignatures.participantId))
    .innerJoin(sites, eq(sites.id, participants.siteId))
    .where(eq(consentSignatures.publicTokenHash, tokenHash(ctx.crypto, publicToken)));
  if (!row) return null;
  const related = await ctx.db
    .select()
    .from(consentSignatures)
    .where(eq(consentSignatures.countersigns, row.s.id))
    .orderBy(asc(consentSignatures.signedAt));
  const all = [row.s, ...related];
  const signatures = await Promise.all(
    all.map(async (s) => ({
      role: s.signerRole,
      meaning: s.meaning,
      signedAt: s.signedAt.toISOString(),
      fromStaffDevice: s.fromStaffDevice,
      entryId: s.entryId,
      seal: await entrySeal(ctx, s.entryId),
    })),
  );
  return {
    study: row.study.code,
    document: {
      code: row.doc.code,
      version: row.doc.version,
      title: row.doc.title,
      sha256: toHex(row.doc.bodySha256),
      irbName: row.doc.irbName,
      irbApprovedOn: row.doc.irbApprovedOn,
    },
    signatures,
    primaryEntryId: row.s.entryId,
  };
}

/** Consent summary per participant of a study (the participants list and the regulator's review). */
export async function studyConsentSummary(ctx: AppContext, principal: Principal, studyId: string) {
  const ps = await ctx.db
    .select({ id: participants.id, siteId: participants.siteId })
    .from(participants)
    .where(eq(participants.studyId, studyId));
  const visible = ps.filter((p) => can(principal, "records.read", { studyId, siteId: p.siteId }));
  const out = new Map<string, Awaited<ReturnType<typeof consentStatus>>>();
  for (const p of visible) out.set(p.id, await consentStatus(ctx, p.id));
  return out;
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
