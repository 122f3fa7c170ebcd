/**
 * Signer contacts as HMACs (ADR 0018): a contact is normalised (email trimmed and lower-cased; phone as E.164, "+"
 * and digits) and kept as HMAC-SHA-256 under a per-deployment key derived from DATA_KEY (HKDF-SHA-256, its own
 * label), so equal contacts can be found without decrypting, and the value never leaves the database (never in a
 * ledger payload or bundle). Also every contact HMAC of a study, for the integrity audit and the review page.
 */
import { createHmac, hkdfSync } from "node:crypto";
import { and, eq, inArray, isNotNull, isNull, ne, or } from "drizzle-orm";
import { memberships, participants, signerContacts, users } from "../../db/schema/index.ts";
import type { AppContext } from "../platform/context.server.ts";
import { decryptParticipant } from "../participants/decrypt-participant.server.ts";

/** The normalised form of a contact: an email lower-cased, a phone number as "+" and its digits (E.164). */
export function normaliseContact(contact: string): { value: string; channel: "email" | "sms" } {
  const c = contact.trim();
  if (c.includes("@")) return { value: c.toLowerCase(), channel: "email" };
  return { value: `+${c.replace(/[^0-9]/g, "")}`, channel: "sms" };
}

const keys = new WeakMap<Uint8Array, Buffer>();
function contactKey(ctx: AppContext): Buffer {
  let k = keys.get(ctx.env.dataKey);
  if (!k) {
    k = Buffer.from(hkdfSync("sha256", ctx.env.dataKey, Buffer.alloc(0), "trialseal contact-hmac v1", 32));
    keys.set(ctx.env.dataKey, k);
  }
  return k;
}

/** HMAC-SHA-256 of the normalised contact under the deployment's contact key. */
export function contactHmac(ctx: AppContext, contact: string): Uint8Array {
  return new Uint8Array(createHmac("sha256", contactKey(ctx)).update(normaliseContact(contact).value).digest());
}

export const hmacHex = (h: Uint8Array) => Buffer.from(h).toString("hex");

export interface ContactRef {
  participantId: string;
  subject: string;
  studyId: string;
  siteId: string;
  role: "participant" | "lar" | "parent";
  hmac: string;
}

/**
 * Every contact HMAC of the given studies (all studies when none is given): the stored rows, plus the enrolment
 * contacts of participants enrolled before signer_contacts existed (computed here, nothing written).
 */
export async function contactRefs(ctx: AppContext, studyIds?: string[]): Promise<ContactRef[]> {
  const where = studyIds ? inArray(signerContacts.studyId, studyIds) : undefined;
  const rows = await ctx.db
    .select({ c: signerContacts, subject: participants.subjectCode })
    .from(signerContacts)
    .innerJoin(participants, eq(participants.id, signerContacts.participantId))
    .where(and(where, isNull(participants.erasedAt)));
  const out: ContactRef[] = rows.map(({ c, subject }) => ({
    participantId: c.participantId,
    subject,
    studyId: c.studyId,
    siteId: c.siteId,
    role: c.role,
    hmac: hmacHex(c.contactHmac),
  }));
  const withRow = new Set(out.filter((r) => r.role === "participant").map((r) => r.participantId));
  const ps = await ctx.db
    .select()
    .from(participants)
    .where(
      and(
        studyIds ? inArray(participants.studyId, studyIds) : undefined,
        isNull(participants.erasedAt),
        or(isNotNull(participants.emailEnc), isNotNull(participants.phoneEnc)),
      ),
    );
  for (const p of ps) {
    if (withRow.has(p.id)) continue;
    const person = decryptParticipant(ctx, p);
    for (const c of [person.email, person.phone])
      if (c)
        out.push({
          participantId: p.id,
          subject: p.subjectCode,
          studyId: p.studyId,
          siteId: p.siteId,
          role: "participant",
          hmac: hmacHex(contactHmac(ctx, c)),
        });
  }
  return out;
}

/** The contact HMACs of staff accounts (anyone with a staff role in any study, or a platform admin): hmac -> name. */
export async function staffContactHmacs(ctx: AppContext): Promise<Map<string, { userId: string; name: string }>> {
  const rows = await ctx.db
    .select({ id: users.id, email: users.email, name: users.fullName, admin: users.platformAdmin })
    .from(users);
  const staff = await ctx.db
    .selectDistinct({ id: memberships.userId })
    .from(memberships)
    .where(ne(memberships.role, "participant"));
  const isStaff = new Set(staff.map((s) => s.id));
  const out = new Map<string, { userId: string; name: string }>();
  for (const u of rows)
    if (u.admin || isStaff.has(u.id)) out.set(hmacHex(contactHmac(ctx, u.email)), { userId: u.id, name: u.name });
  return out;
}
