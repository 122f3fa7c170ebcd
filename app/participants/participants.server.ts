/**
 * Enrolling participants (the pseudonymous part; personal data capture comes with CRF entry in its issue).
 * Enrolling needs the role permission and, for site staff, a current "enrollment" delegation at the site.
 * Subject codes are generated per site (SITE-001, SITE-002, ...); the enrolment is a ledger entry.
 */
import { createHmac, randomBytes } from "node:crypto";
import { z } from "zod";
import { canonicalize } from "../../anchoring/log/canonical.ts";
import { and, asc, count, eq, inArray, sql } from "drizzle-orm";
import { consentInvitations, participants, signerContacts, sites } from "../../db/schema/index.ts";
import type { AppContext } from "../platform/context.server.ts";
import { refuseUnderDatabaseLock } from "../database-lock/refuse-under-lock.server.ts";
import { ServiceError, isUniqueViolation } from "../platform/errors.server.ts";
import { appendEntry } from "../log/append-entry.server.ts";
import { saltedTextHash } from "../../anchoring/log/text-hash.ts";
import { audit } from "../audit-trail/record-event.server.ts";
import { requireSiteAction } from "../studies/delegations.server.ts";
import { encryptField } from "./personal-data.server.ts";
import { recordEnrolmentContacts } from "../consent/contact-confirmation.server.ts";
import { requirePermission, type Principal } from "../platform/permissions.server.ts";
import { auditActor, auditDetail, payloadActor, rowTokenColumns } from "../platform/attribution.ts";
import { getStudyOrThrow } from "../studies/studies.server.ts";
import { todayIn } from "../records/records.server.ts";
import { writeDisposition } from "./disposition.server.ts";
import { replayIdempotent, storeIdempotent, type Idempotency } from "../records/idempotency.server.ts";

/** Optional personal data at enrolment: encrypted at rest; only an HMAC under the subject's key reaches the log. */
export const PersonalData = z.strictObject({
  fullName: z.string().trim().min(1).max(200).optional(),
  email: z.string().trim().toLowerCase().email("not a valid email address").optional(),
  phone: z
    .string()
    .trim()
    .regex(/^\+?[0-9 ()-]{5,25}$/, "a phone number such as +44 20 7946 0000")
    .optional(),
  birthDate: z
    .string()
    .trim()
    .regex(/^\d{4}-\d{2}-\d{2}$/, "use YYYY-MM-DD")
    .refine(
      (d) => !Number.isNaN(Date.parse(`${d}T00:00:00Z`)) && d <= new Date().toISOString().slice(0, 10),
      "not a past calendar date",
    )
    .optional(),
});
export type PersonalData = z.infer<typeof PersonalData>;

export interface Enrolled {
  id: string;
  subjectCode: string;
  entryId: string;
}

/** The API's answer to an enrolment (also what an Idempotency-Key replays). */
export function enrolledResponse(e: Enrolled) {
  return { subject: e.subjectCode, id: e.id, entry: { id: e.entryId, status: "pending" as const } };
}

/**
 * Enrol a participant at a site. Subject codes are SITE-NNN in enrolment order: the site's row is locked for the
 * transaction, so concurrent enrolments at one site queue instead of colliding. With an Idempotency-Key the
 * answer is stored in the same transaction and a retry gets it back (nothing is enrolled twice).
 */
export async function enrollParticipant(
  ctx: AppContext,
  principal: Principal,
  input: { study: string; site: string; personal?: unknown; disposition?: unknown },
  idem?: Idempotency,
): Promise<Enrolled> {
  // Issue 18 (ADR 0033): a participant may start at screening; enrolled (the default) needs no entry of its own.
  const start = input.disposition === undefined || input.disposition === "" ? "enrolled" : input.disposition;
  if (start !== "enrolled" && start !== "screening")
    throw new ServiceError("invalid", "disposition: a participant starts as screening or enrolled", "disposition");
  const pd = PersonalData.safeParse(input.personal ?? {});
  if (!pd.success) {
    const i = pd.error.issues[0];
    throw new ServiceError(
      "invalid",
      `${i.path.join(".") || "personal"}: ` +
        `${i.code === "unrecognized_keys" ? "unknown personal data field" : i.message}`,
      String(i.path[0] ?? "personal"),
    );
  }
  const personal = Object.fromEntries(Object.entries(pd.data).filter(([, v]) => v !== undefined)) as PersonalData;
  const study = await getStudyOrThrow(ctx, input.study);
  const [site] = await ctx.db
    .select()
    .from(sites)
    .where(and(eq(sites.studyId, study.id), eq(sites.code, String(input.site ?? "").toUpperCase())));
  if (!site) throw new ServiceError("invalid", `site: choose a site of ${study.code}`, "site");
  await requireSiteAction(ctx, principal, "participants.enroll", { studyId: study.id, siteId: site.id });
  try {
    return await ctx.db.transaction(async (tx) => {
      await refuseUnderDatabaseLock(tx, study.id, "enrolling a participant");
      await tx.execute(sql`SELECT 1 FROM sites WHERE id = ${site.id} FOR UPDATE`);
      const [{ n }] = await tx.select({ n: count() }).from(participants).where(eq(participants.siteId, site.id));
      const subject = `${site.code}-${String(n + 1).padStart(3, "0")}`;
      const [p] = await tx
        .insert(participants)
        .values({
          studyId: study.id,
          siteId: site.id,
          subjectCode: subject,
          enrolledBy: principal.userId,
          ...rowTokenColumns(principal),
        })
        .returning();
      // The per-subject key binding personal data to ledger payloads (HMAC); destroying it is the erasure procedure.
      const subjectKey = randomBytes(32);
      const subjectKeyEnc = encryptField(
        ctx.env.dataKey,
        subjectKey.toString("base64"),
        `participants.subject_key:${p.id}`,
      );
      const identity = Object.keys(personal).length
        ? createHmac("sha256", subjectKey).update(canonicalize(personal)).digest("hex")
        : null;
      const enc = (field: "name" | "email" | "phone" | "birth_date", v: string | undefined) =>
        v === undefined ? null : encryptField(ctx.env.dataKey, v, `participants.${field}:${p.id}`);
      const e = await appendEntry(tx, ctx.crypto, study, "participant.enrolled", {
        subject,
        site: site.code,
        identity,
        ...payloadActor(principal),
      });
      await tx
        .update(participants)
        .set({
          subjectKeyEnc,
          entryId: e.id,
          nameEnc: enc("name", personal.fullName),
          emailEnc: enc("email", personal.email),
          phoneEnc: enc("phone", personal.phone),
          birthDateEnc: enc("birth_date", personal.birthDate),
        })
        .where(eq(participants.id, p.id));
      // The contacts as HMACs, with who entered them: usable for consent only once confirmed (ADR 0018).
      await recordEnrolmentContacts(ctx, tx, p, principal.userId, e.id, [personal.email, personal.phone]);
      if (start === "screening")
        await writeDisposition(tx, ctx, principal, study, p, {
          status: "screening",
          previous: null,
          date: todayIn(site.timeZone),
          reason: null,
        });
      await audit(tx, {
        action: "participant.enroll",
        ...auditActor(principal),
        studyId: study.id,
        siteId: site.id,
        participantId: p.id,
        detail: auditDetail(principal, { entry: e.id }),
      });
      const out: Enrolled = { id: p.id, subjectCode: subject, entryId: e.id };
      await storeIdempotent(tx, idem, 201, enrolledResponse(out));
      return out;
    });
  } catch (err) {
    // The same key committed by a concurrent retry: answer as it did.
    if (idem && isUniqueViolation(err)) {
      const replay = await replayIdempotent(ctx, idem);
      if (replay) {
        const b = replay.body as ReturnType<typeof enrolledResponse>;
        return { id: b.id, subjectCode: b.subject, entryId: b.entry.id };
      }
    }
    throw err;
  }
}

/** Participants the principal may see: all of the study, or only their sites for site-scoped roles. */
export async function listParticipants(ctx: AppContext, principal: Principal, studyId: string) {
  // Checked here too, not only by the routes (issue 22 attack: an external researcher, with no records.read, got
  // every subject code, site and enrolment date when a caller forgot the route's check).
  requirePermission(principal, "records.read", { studyId });
  const mine = principal.memberships.filter((m) => m.studyId === studyId);
  const siteLimited = !principal.platformAdmin && mine.length > 0 && mine.every((m) => m.siteId !== null);
  const siteIds = mine.map((m) => m.siteId!).filter(Boolean);
  return ctx.db
    .select({
      id: participants.id,
      subject: participants.subjectCode,
      site: sites.code,
      status: participants.status,
      disposition: participants.disposition,
      enrolledAt: participants.enrolledAt,
    })
    .from(participants)
    .innerJoin(sites, eq(sites.id, participants.siteId))
    .where(and(eq(participants.studyId, studyId), siteLimited ? inArray(participants.siteId, siteIds) : undefined))
    .orderBy(asc(participants.subjectCode));
}

/**
 * The erasure procedure (GDPR Art. 17 where it applies; crypto-shredding): destroys the subject's key and every
 * personal-data column of the participant (and of their consent invitations). Consent printed names, encrypted
 * under a key derived from the subject key, become unreadable; trial data, pseudonymous ledger entries and every
 * proof stay valid. The erasure is itself a ledger entry (`participant.erased`) with the reason's SHA-256.
 */
export async function eraseParticipantData(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  subject: string,
  reason: string,
) {
  const study = await getStudyOrThrow(ctx, studyCode);
  requirePermission(principal, "study.manage", { studyId: study.id });
  const why = String(reason ?? "").trim();
  if (!why)
    throw new ServiceError("invalid", "reason: give the reason for the erasure (e.g. the request reference)", "reason");
  const [p] = await ctx.db
    .select()
    .from(participants)
    .where(and(eq(participants.studyId, study.id), eq(participants.subjectCode, subject.toUpperCase())));
  if (!p) throw new ServiceError("not_found", `no subject ${subject} in ${study.code}`, "subject");
  if (p.erasedAt)
    throw new ServiceError(
      "conflict",
      `the personal data of ${p.subjectCode} were already erased on ${p.erasedAt.toISOString().slice(0, 10)}`,
      "subject",
    );
  return ctx.db.transaction(async (tx) => {
    await tx
      .update(participants)
      .set({
        nameEnc: null,
        emailEnc: null,
        phoneEnc: null,
        birthDateEnc: null,
        subjectKeyEnc: null,
        erasedAt: new Date(),
      })
      .where(eq(participants.id, p.id));
    await tx
      .update(consentInvitations)
      .set({ representativeNameEnc: null, representativeContactEnc: null, revokedAt: new Date() })
      .where(eq(consentInvitations.participantId, p.id));
    await tx
      .update(signerContacts)
      .set({ nameEnc: null, contactEnc: null, contactHmac: new Uint8Array(0) })
      .where(eq(signerContacts.participantId, p.id));
    const e = await appendEntry(tx, ctx.crypto, study, "participant.erased", (salt) => ({
      subject: p.subjectCode,
      reasonHash: saltedTextHash(ctx.crypto, salt, why),
      actor: principal.userId,
    }));
    await audit(tx, {
      action: "participant.erase",
      actorUserId: principal.userId,
      actorLabel: principal.label,
      studyId: study.id,
      siteId: p.siteId,
      participantId: p.id,
      detail: { entry: e.id },
    });
    return { subject: p.subjectCode, entryId: e.id };
  });
}
