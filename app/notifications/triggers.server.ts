/**
 * Notification triggers of issue 18 that belong to no other capability (ADR 0035): "signature requested" (a
 * coordinator asks the site's investigators to sign a complete record) and "re-consent needed" (a new version
 * of a consent document is approved: the participants who consented to an earlier one are told, at the contact
 * on file, and the site staff get the list of subject codes). Messages are queued in the caller's transaction.
 * No personal data enters a ledger payload or an audit detail: counts and ids only.
 */
import { and, eq, inArray, isNull, ne } from "drizzle-orm";
import type { Tx } from "../../db/client.ts";
import {
  consentDocuments,
  consentSignatures,
  paperConsents,
  participants,
  sites,
  users,
} from "../../db/schema/index.ts";
import { audit } from "../audit-trail/record-event.server.ts";
import { signaturesOf } from "../clinical-monitoring/clinical-monitoring.server.ts";
import { consentStatus } from "../consent/status.server.ts";
import { decryptParticipant } from "../participants/decrypt-participant.server.ts";
import type { AppContext } from "../platform/context.server.ts";
import { ServiceError } from "../platform/errors.server.ts";
import { can, requirePermission, type Principal } from "../platform/permissions.server.ts";
import { findRecord, recordDefinition, recordHistory } from "../records/records.server.ts";
import { isIncomplete } from "../subject-matrix/subject-matrix.server.ts";
import { getStudyOrThrow } from "../studies/studies.server.ts";
import { notifyStudyRoles, queueNotification } from "./notify.server.ts";

/** Why a signature cannot be requested for this record now (null: it can). */
async function signatureRequestBlock(
  ctx: AppContext,
  record: Awaited<ReturnType<typeof recordHistory>>,
): Promise<string | null> {
  if (record.status === "locked") return "record: the record is locked";
  const sigs = await signaturesOf(ctx, record.id, record.version);
  if (sigs.some((s) => s.valid)) return `record: version ${record.version} is already signed`;
  const def = await recordDefinition(ctx, record.id);
  if (!def || isIncomplete(def, record.data, record.missing))
    return "record: complete the required fields before asking for a signature";
  return null;
}

/** Whether the record page offers "Request signature" to this member of staff. */
export async function canRequestSignature(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  recordId: string,
): Promise<boolean> {
  const study = await getStudyOrThrow(ctx, studyCode);
  const record = await recordHistory(ctx, principal, studyCode, recordId);
  const row = await findRecord(ctx, record.id);
  if (principal.kind !== "user" || !can(principal, "records.enter", { studyId: study.id, siteId: row.siteId }))
    return false;
  return (await signatureRequestBlock(ctx, record)) === null;
}

/**
 * A coordinator asks the investigators of the record's site to sign its current version: one e-mail each, and an
 * audit event naming who asked. Refused when the record is locked, already signed or incomplete, or when the site
 * has no active investigator to ask.
 */
export async function requestSignature(ctx: AppContext, principal: Principal, studyCode: string, recordId: string) {
  const study = await getStudyOrThrow(ctx, studyCode);
  const record = await recordHistory(ctx, principal, studyCode, recordId);
  const row = await findRecord(ctx, record.id);
  if (principal.kind !== "user")
    throw new ServiceError("forbidden", "a signature is requested by a person, not an API token");
  requirePermission(principal, "records.enter", { studyId: study.id, siteId: row.siteId });
  const block = await signatureRequestBlock(ctx, record);
  if (block) throw new ServiceError("conflict", block, "record");
  const url = `${ctx.env.publicUrl}/studies/${study.code}/records/${record.id}`;
  const what = `${record.subject}, ${record.form} visit ${record.visit}`;
  const [me] = await ctx.db.select({ name: users.fullName }).from(users).where(eq(users.id, principal.userId!));
  return ctx.db.transaction(async (tx) => {
    const notified = await notifyStudyRoles(tx, {
      studyId: study.id,
      siteId: row.siteId,
      roles: ["investigator"],
      exceptUserId: principal.userId,
      kind: "signature_requested",
      subject: `${study.code}: signature requested for ${what}`,
      body:
        `Hello,\n\n${me?.name ?? principal.label} asks you to review and sign ${what} (version ${record.version}) ` +
        `of study ${study.code}, site ${record.site}.\n\nOpen the record:\n${url}\n`,
    });
    if (notified === 0)
      throw new ServiceError("conflict", `record: site ${record.site} has no active investigator to ask`, "record");
    await audit(tx, {
      action: "record.signature_requested",
      actorUserId: principal.userId,
      actorLabel: principal.label,
      studyId: study.id,
      siteId: row.siteId,
      participantId: row.participantId,
      detail: { record: record.id, version: record.version, notified },
    });
    return { notified };
  });
}

/**
 * In the transaction that approves `doc`: each participant of the study whose latest consent to the document's
 * code is to an earlier version (consentStatus says "reconsent_needed") and who has a contact on file gets a
 * notice; the coordinators and investigators of each site get the subject codes. Returns how many participants
 * were told.
 */
export async function queueReconsentNotices(
  ctx: AppContext,
  tx: Tx,
  opts: { studyId: string; studyCode: string; documentId: string; code: string; version: string; title: string },
  actor: { userId: string | null; label?: string | null },
): Promise<number> {
  const earlier = tx
    .select({ id: consentDocuments.id })
    .from(consentDocuments)
    .where(
      and(
        eq(consentDocuments.studyId, opts.studyId),
        eq(consentDocuments.code, opts.code),
        ne(consentDocuments.id, opts.documentId),
      ),
    );
  const signed = await tx
    .selectDistinct({ id: consentSignatures.participantId })
    .from(consentSignatures)
    .where(and(inArray(consentSignatures.documentId, earlier), isNull(consentSignatures.countersigns)));
  const onPaper = await tx
    .selectDistinct({ id: paperConsents.participantId })
    .from(paperConsents)
    .where(inArray(paperConsents.documentId, earlier));
  const ids = [...new Set([...signed, ...onPaper].map((r) => r.id))];
  if (ids.length === 0) return 0;
  const rows = await tx
    .select({ p: participants, siteCode: sites.code })
    .from(participants)
    .innerJoin(sites, eq(sites.id, participants.siteId))
    .where(inArray(participants.id, ids))
    .orderBy(participants.subjectCode);
  const bySite = new Map<string, { code: string; subjects: string[] }>();
  let told = 0;
  for (const { p, siteCode } of rows) {
    if (p.erasedAt) continue;
    const st = await consentStatus(ctx, p.id, { db: tx });
    if (st.state !== "reconsent_needed") continue;
    const site = bySite.get(p.siteId) ?? { code: siteCode, subjects: [] };
    site.subjects.push(p.subjectCode);
    bySite.set(p.siteId, site);
    const person = decryptParticipant(ctx, p);
    const to = person.email ?? person.phone;
    if (!to) continue;
    await queueNotification(tx, {
      studyId: opts.studyId,
      kind: "reconsent_needed",
      channel: person.email ? "email" : "sms",
      to,
      subject: `${opts.studyCode}: a new version of "${opts.title}" needs your consent`,
      body:
        `Hello,\n\nA new version (${opts.version}) of the document "${opts.title}" of study ${opts.studyCode} ` +
        "has been approved by the ethics committee. Your study team will contact you to go through it with you " +
        "and ask for your consent to the new version. Until then nothing changes for you.\n",
    });
    told++;
  }
  for (const [siteId, s] of bySite)
    await notifyStudyRoles(tx, {
      studyId: opts.studyId,
      siteId,
      roles: ["coordinator", "investigator"],
      exceptUserId: actor.userId,
      kind: "reconsent_needed",
      subject: `${opts.studyCode}: re-consent needed at site ${s.code} (${s.subjects.length})`,
      body:
        `Hello,\n\nVersion ${opts.version} of consent document ${opts.code} ("${opts.title}") was approved. ` +
        `These participants of site ${s.code} consented to an earlier version and must re-consent:\n` +
        `${s.subjects.join(", ")}\n\n${ctx.env.publicUrl}/studies/${opts.studyCode}/consent\n`,
    });
  if (bySite.size > 0)
    await audit(tx, {
      action: "consent.reconsent_notified",
      actorUserId: actor.userId,
      actorLabel: actor.label ?? null,
      studyId: opts.studyId,
      detail: {
        document: opts.code,
        version: opts.version,
        participants: [...bySite.values()].reduce((n, s) => n + s.subjects.length, 0),
        notified: told,
      },
    });
  return told;
}
