/**
 * No member of staff can complete a remote consent alone (21 CFR 11.100(b); FDA/OHRP eIC guidance on verifying a
 * remote signer's identity; ADR 0018). A signer's contact, where the one-time code goes, is usable for an invitation
 * only after a second member of staff confirms it: neither the one who entered it (at enrolment, or when registering
 * a representative) nor the one who sends the invitation. Alternatively the signer's identity is verified in person
 * at a visit (who and when recorded); that person cannot send the invitation either. A legally authorized
 * representative's or parent's contact must be confirmed by an investigator of the site. Each confirmation is a
 * sealed `consent.contact_confirmed` entry naming who confirmed.
 */
import { and, desc, eq, isNotNull } from "drizzle-orm";
import { alias } from "drizzle-orm/pg-core";
import { z } from "zod";
import { participants, signerContacts, users } from "../../db/schema/index.ts";
import type { AppContext } from "../platform/context.server.ts";
import type { DbOrTx } from "../../db/client.ts";
import { ServiceError } from "../platform/errors.server.ts";
import { can, type Principal } from "../platform/permissions.server.ts";
import { appendEntry } from "../log/append-entry.server.ts";
import { audit, auditPrincipalRead } from "../audit-trail/record-event.server.ts";
import { getStudyOrThrow } from "../studies/studies.server.ts";
import { participantBySubject } from "../participants/find-participant.server.ts";
import { decryptField, encryptField } from "../participants/personal-data.server.ts";
import { decryptParticipant } from "../participants/decrypt-participant.server.ts";
import { sameName } from "./consent-document.ts";
import { contactHmac, hmacHex, normaliseContact, staffContactHmacs } from "./contact-hmac.server.ts";
import { contactSchema, maskContact } from "./signer-contact.ts";

type Participant = typeof participants.$inferSelect;
type ContactRow = typeof signerContacts.$inferSelect;

function invalid(message: string, field: string): never {
  throw new ServiceError("invalid", message, field);
}

const isSiteInvestigator = (principal: Principal, studyId: string, siteId: string) =>
  principal.memberships.some(
    (m) => m.studyId === studyId && m.role === "investigator" && (m.siteId === null || m.siteId === siteId),
  );

/** A person (not a token) on the site's staff who may see the participant's personal data. */
function requireSiteStaff(principal: Principal, p: Participant) {
  if (!principal.userId || principal.kind !== "user")
    throw new ServiceError("forbidden", "a contact is confirmed by a person, not an API token");
  if (!can(principal, "personal_data.view", { studyId: p.studyId, siteId: p.siteId }))
    throw new ServiceError("forbidden", "not permitted: only site staff can confirm a signer's contact");
}

/** The contact the participant's own invitations go to (email, else phone), or null. */
function participantContact(ctx: AppContext, p: Participant): string | null {
  const person = decryptParticipant(ctx, p);
  return person.email ?? person.phone ?? null;
}

/** The enrolment contacts as rows (in the enrolment's transaction): each with its HMAC and who entered it. */
export async function recordEnrolmentContacts(
  ctx: AppContext,
  tx: DbOrTx,
  p: { id: string; studyId: string; siteId: string },
  enteredBy: string | null,
  entryId: string,
  contacts: (string | undefined)[],
) {
  for (const c of contacts)
    if (c)
      await tx.insert(signerContacts).values({
        studyId: p.studyId,
        siteId: p.siteId,
        participantId: p.id,
        role: "participant",
        channel: normaliseContact(c).channel,
        contactHmac: contactHmac(ctx, c),
        enteredBy,
        entryId,
      });
}

/** The participant's row for their invitation contact; created for participants enrolled before these rows. */
async function participantRow(ctx: AppContext, p: Participant): Promise<ContactRow | null> {
  const contact = participantContact(ctx, p);
  if (!contact) return null;
  const h = hmacHex(contactHmac(ctx, contact));
  const rows = await ctx.db
    .select()
    .from(signerContacts)
    .where(and(eq(signerContacts.participantId, p.id), eq(signerContacts.role, "participant")))
    .orderBy(desc(signerContacts.enteredAt));
  const match = rows.filter((r) => hmacHex(r.contactHmac) === h);
  const confirmed = match.find((r) => r.confirmedAt);
  if (confirmed || match[0]) return confirmed ?? match[0];
  const [row] = await ctx.db
    .insert(signerContacts)
    .values({
      studyId: p.studyId,
      siteId: p.siteId,
      participantId: p.id,
      role: "participant",
      channel: normaliseContact(contact).channel,
      contactHmac: contactHmac(ctx, contact),
      enteredBy: p.enrolledBy,
      entryId: p.entryId,
    })
    .returning();
  return row;
}

async function refuseStaffContact(ctx: AppContext, contact: string, field: string) {
  const staff = (await staffContactHmacs(ctx)).get(hmacHex(contactHmac(ctx, contact)));
  if (staff)
    throw new ServiceError(
      "conflict",
      `${field}: this is the contact of a staff account (${staff.name}); ` +
        "the one-time code must go to the signer, not to a member of staff",
      field,
    );
}

export const RepresentativeInput = z.object({
  role: z.enum(["lar", "parent"], { error: "role: choose legally authorized representative or parent" }),
  name: z.string().trim().min(1, "give the representative's full name").max(200),
  contact: contactSchema,
});

/** A member of staff enters a representative's (or parent's) name and contact; an investigator must confirm it. */
export async function registerRepresentative(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  subject: string,
  input: unknown,
) {
  const r = RepresentativeInput.safeParse(input);
  if (!r.success) {
    const i = r.error.issues[0];
    const field = String(i.path[0] ?? "contact");
    invalid(i.message.startsWith(`${field}:`) ? i.message : `${field}: ${i.message}`, field);
  }
  const study = await getStudyOrThrow(ctx, studyCode);
  const p = await participantBySubject(ctx, study.id, subject);
  if (!p) invalid(`subject: no subject ${subject} in ${study.code}`, "subject");
  requireSiteStaff(principal, p);
  await refuseStaffContact(ctx, r.data.contact, "contact");
  const n = normaliseContact(r.data.contact);
  return ctx.db.transaction(async (tx) => {
    const [row] = await tx
      .insert(signerContacts)
      .values({
        studyId: study.id,
        siteId: p.siteId,
        participantId: p.id,
        role: r.data.role,
        channel: n.channel,
        contactHmac: contactHmac(ctx, r.data.contact),
        nameEnc: encryptField(ctx.env.dataKey, r.data.name, `signer_contacts.name:${p.id}`),
        contactEnc: encryptField(ctx.env.dataKey, r.data.contact, `signer_contacts.contact:${p.id}`),
        enteredBy: principal.userId,
      })
      .returning();
    const e = await appendEntry(tx, ctx.crypto, study, "consent.contact_registered", {
      contact: row.id,
      subject: p.subjectCode,
      role: r.data.role,
      channel: n.channel,
      actor: principal.userId!,
    });
    await tx.update(signerContacts).set({ entryId: e.id }).where(eq(signerContacts.id, row.id));
    await audit(tx, {
      action: "consent.contact_register",
      actorUserId: principal.userId,
      actorLabel: principal.label,
      studyId: study.id,
      siteId: p.siteId,
      participantId: p.id,
      detail: { contact: row.id, role: r.data.role, entry: e.id },
    });
    return { id: row.id, entryId: e.id };
  });
}

export const ConfirmInput = z.object({
  /** The representative's contact row; omitted for the participant's own contact. */
  contact: z.string().uuid("contact: choose a contact to confirm").optional(),
  method: z.enum(["staff", "in_person"], { error: "method: confirm the contact or record an in-person check" }),
});

/**
 * A second member of staff confirms a signer's contact (method "staff", never the one who entered it), or records
 * that the signer's identity was verified in person at a visit ("in_person"). A representative's or parent's
 * contact needs an investigator of the site. Sealed as `consent.contact_confirmed`.
 */
export async function confirmContact(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  subject: string,
  input: unknown,
) {
  const r = ConfirmInput.safeParse(input);
  if (!r.success) {
    const i = r.error.issues[0];
    invalid(i.message.includes(":") ? i.message : `${String(i.path[0])}: ${i.message}`, String(i.path[0]));
  }
  const study = await getStudyOrThrow(ctx, studyCode);
  const p = await participantBySubject(ctx, study.id, subject);
  if (!p) invalid(`subject: no subject ${subject} in ${study.code}`, "subject");
  requireSiteStaff(principal, p);
  let row: ContactRow | null;
  if (r.data.contact) {
    [row] = await ctx.db
      .select()
      .from(signerContacts)
      .where(and(eq(signerContacts.id, r.data.contact), eq(signerContacts.participantId, p.id)));
    if (!row) invalid(`contact: no such contact for ${p.subjectCode}`, "contact");
  } else {
    row = await participantRow(ctx, p);
    if (!row) invalid(`subject: ${p.subjectCode} has no email or phone on record`, "subject");
  }
  if (row.confirmedAt)
    throw new ServiceError(
      "conflict",
      `contact: already confirmed on ${row.confirmedAt.toISOString().slice(0, 16).replace("T", " ")} UTC`,
      "contact",
    );
  if (r.data.method === "staff" && row.enteredBy === principal.userId)
    throw new ServiceError(
      "forbidden",
      "contact: you entered this contact; a second member of staff must confirm it " +
        "(or record that the signer's identity was verified in person)",
      "contact",
    );
  if (row.role !== "participant" && !isSiteInvestigator(principal, study.id, p.siteId))
    throw new ServiceError(
      "forbidden",
      "contact: a representative's or parent's contact is confirmed by an investigator of the site",
      "contact",
    );
  const contact =
    row.role === "participant"
      ? participantContact(ctx, p)
      : decryptField(ctx.env.dataKey, row.contactEnc!, `signer_contacts.contact:${p.id}`);
  if (contact) await refuseStaffContact(ctx, contact, "contact");
  const confirmedAt = new Date();
  return ctx.db.transaction(async (tx) => {
    const e = await appendEntry(tx, ctx.crypto, study, "consent.contact_confirmed", {
      contact: row.id,
      subject: p.subjectCode,
      role: row.role,
      method: r.data.method,
      enteredBy: row.enteredBy,
      actor: principal.userId!,
    });
    await tx
      .update(signerContacts)
      .set({ confirmedBy: principal.userId, confirmedAt, method: r.data.method, confirmEntryId: e.id })
      .where(eq(signerContacts.id, row.id));
    await audit(tx, {
      action: "consent.contact_confirm",
      actorUserId: principal.userId,
      actorLabel: principal.label,
      studyId: study.id,
      siteId: p.siteId,
      participantId: p.id,
      detail: { contact: row.id, role: row.role, method: r.data.method, entry: e.id },
    });
    return { id: row.id, entryId: e.id, confirmedAt: confirmedAt.toISOString() };
  });
}

/**
 * The confirmed contact an invitation may use, or a refusal naming what is missing. Called by createInvitation
 * with the contact the code would go to (and, for a representative, the name they will type).
 */
export async function requireConfirmedContact(
  ctx: AppContext,
  principal: Principal,
  p: Participant,
  role: "participant" | "lar" | "parent",
  contact: string,
  name: string | null,
) {
  const h = hmacHex(contactHmac(ctx, contact));
  const rows = await ctx.db
    .select()
    .from(signerContacts)
    .where(
      and(eq(signerContacts.participantId, p.id), eq(signerContacts.role, role), isNotNull(signerContacts.confirmedAt)),
    );
  const field = role === "participant" ? "subject" : "representativeContact";
  const match = rows.filter(
    (r) =>
      hmacHex(r.contactHmac) === h &&
      (role === "participant" ||
        (r.nameEnc && sameName(decryptField(ctx.env.dataKey, r.nameEnc, `signer_contacts.name:${p.id}`), name ?? ""))),
  );
  if (match.length === 0)
    throw new ServiceError(
      "conflict",
      role === "participant"
        ? `subject: the contact of ${p.subjectCode} has not been confirmed by a second member of staff ` +
            "(nor the participant's identity verified in person); a colleague confirms it on the consent page"
        : `${field}: this ${role === "lar" ? "representative" : "parent"} and contact have not been confirmed by ` +
            "an investigator of the site; register them on the consent page and ask an investigator to confirm",
      field,
    );
  if (!match.some((r) => r.confirmedBy !== principal.userId))
    throw new ServiceError(
      "forbidden",
      `${field}: you confirmed this contact yourself; another member of staff must send the invitation`,
      field,
    );
}

/** Why the invite button is disabled for this principal (participant's own contact), or null when it is not. */
export async function participantInviteBlock(ctx: AppContext, principal: Principal, p: Participant) {
  const contact = participantContact(ctx, p);
  if (!contact) return null; // createInvitation explains the missing contact itself
  try {
    await requireConfirmedContact(ctx, principal, p, "participant", contact, null);
    return null;
  } catch (err) {
    if (err instanceof ServiceError) return err.message.replace(/^subject: /, "");
    throw err;
  }
}

/** A participant's signer contacts for the consent page: masked contact, who entered and who confirmed, how. */
export async function signerContactsOf(ctx: AppContext, p: Participant) {
  if (!p.erasedAt) await participantRow(ctx, p);
  const entered = alias(users, "entered");
  const confirmed = alias(users, "confirmed");
  const rows = await ctx.db
    .select({ c: signerContacts, enteredBy: entered.fullName, confirmedBy: confirmed.fullName })
    .from(signerContacts)
    .leftJoin(entered, eq(entered.id, signerContacts.enteredBy))
    .leftJoin(confirmed, eq(confirmed.id, signerContacts.confirmedBy))
    .where(eq(signerContacts.participantId, p.id))
    .orderBy(signerContacts.enteredAt);
  const own = p.erasedAt ? null : participantContact(ctx, p);
  const ownHmac = own ? hmacHex(contactHmac(ctx, own)) : null;
  return rows
    .filter(({ c }) => c.role !== "participant" || hmacHex(c.contactHmac) === ownHmac)
    .map(({ c, enteredBy, confirmedBy }) => ({
      id: c.id,
      role: c.role,
      name: c.nameEnc ? decryptField(ctx.env.dataKey, c.nameEnc, `signer_contacts.name:${p.id}`) : null,
      contact: maskContact(
        c.contactEnc ? decryptField(ctx.env.dataKey, c.contactEnc, `signer_contacts.contact:${p.id}`) : (own ?? ""),
      ),
      enteredById: c.enteredBy,
      enteredBy: enteredBy ?? "enrolment",
      confirmedById: c.confirmedBy,
      confirmedBy,
      confirmedAt: c.confirmedAt?.toISOString() ?? null,
      method: c.method,
    }));
}

/**
 * The consent page's panel: the signer contacts with who entered and confirmed them, and why the invite button is
 * disabled for this member of staff (null when an invitation can be sent to the participant or to a confirmed
 * representative).
 */
export async function contactPanel(ctx: AppContext, principal: Principal, participantId: string) {
  const [p] = await ctx.db.select().from(participants).where(eq(participants.id, participantId));
  if (!p || p.erasedAt) return { contacts: [], inviteBlock: null };
  const contacts = await signerContactsOf(ctx, p);
  // The contacts are personal data shown in clear: one sealed read event per user, participant and hour (ADR 0016).
  await auditPrincipalRead(ctx.db, principal, {
    action: "personal_data.view",
    studyId: p.studyId,
    siteId: p.siteId,
    participantId: p.id,
  });
  const block = await participantInviteBlock(ctx, principal, p);
  const repReady = contacts.some(
    (c) => c.role !== "participant" && c.confirmedAt && c.confirmedById !== principal.userId,
  );
  return { contacts, inviteBlock: block && !repReady ? block : null };
}
