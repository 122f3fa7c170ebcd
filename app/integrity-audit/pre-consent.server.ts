/**
 * The review page's list of CRF data recorded before a complete consent (ADR 0021): each record whose first version
 * was saved before its participant's consent was first complete (countersigned, or on paper and attested), or whose
 * participant has no complete consent yet. Each says why it was accepted: a pre-screening form the study's settings
 * allowed then, or data that predate the consent gate.
 */
import { and, asc, eq, isNotNull } from "drizzle-orm";
import {
  consentSignatures,
  paperConsents,
  participants,
  records,
  recordVersions,
  sites,
  studySettings,
} from "../../db/schema/index.ts";
import type { AppContext } from "../platform/context.server.ts";
import { can, type Principal } from "../platform/permissions.server.ts";

export interface RecordBeforeConsent {
  record: string;
  subject: string;
  site: string;
  form: string;
  visit: string;
  savedAt: string;
  /** When the participant's consent was first complete, or null when it is not yet. */
  consentCompleteAt: string | null;
  why: string;
}

export async function recordsBeforeConsent(
  ctx: AppContext,
  principal: Principal,
  studyId: string,
): Promise<RecordBeforeConsent[]> {
  const rows = await ctx.db
    .select({
      id: records.id,
      siteId: records.siteId,
      participantId: records.participantId,
      subject: participants.subjectCode,
      site: sites.code,
      form: records.formCode,
      visit: records.visit,
      savedAt: recordVersions.createdAt,
    })
    .from(records)
    .innerJoin(recordVersions, and(eq(recordVersions.recordId, records.id), eq(recordVersions.version, 1)))
    .innerJoin(participants, eq(participants.id, records.participantId))
    .innerJoin(sites, eq(sites.id, records.siteId))
    .where(eq(records.studyId, studyId))
    .orderBy(asc(recordVersions.createdAt));
  const completeAt = new Map<string, Date>();
  const earliest = (pid: string, at: Date | null) => {
    if (!at) return;
    const cur = completeAt.get(pid);
    if (!cur || at < cur) completeAt.set(pid, at);
  };
  const countersigned = await ctx.db
    .select({ pid: consentSignatures.participantId, at: consentSignatures.signedAt })
    .from(consentSignatures)
    .where(
      and(
        eq(consentSignatures.studyId, studyId),
        eq(consentSignatures.signerRole, "staff"),
        isNotNull(consentSignatures.countersigns),
      ),
    );
  for (const c of countersigned) earliest(c.pid, c.at);
  const attested = await ctx.db
    .select({ pid: paperConsents.participantId, at: paperConsents.attestedAt })
    .from(paperConsents)
    .where(and(eq(paperConsents.studyId, studyId), isNotNull(paperConsents.attestedAt)));
  for (const a of attested) earliest(a.pid, a.at);
  const settings = await ctx.db
    .select()
    .from(studySettings)
    .where(eq(studySettings.studyId, studyId))
    .orderBy(asc(studySettings.version));
  const out: RecordBeforeConsent[] = [];
  for (const r of rows) {
    if (!can(principal, "records.read", { studyId, siteId: r.siteId })) continue;
    const done = completeAt.get(r.participantId);
    if (done && done <= r.savedAt) continue;
    const inForce = settings.filter((s) => s.changedAt <= r.savedAt).pop();
    const why = inForce?.formsBeforeConsent.includes(r.form)
      ? `pre-screening form allowed before consent (study settings v${inForce.version})`
      : "saved before the consent gate existed (no consent check then)";
    out.push({
      record: r.id,
      subject: r.subject,
      site: r.site,
      form: r.form,
      visit: r.visit,
      savedAt: r.savedAt.toISOString(),
      consentCompleteAt: done ? done.toISOString() : null,
      why,
    });
  }
  return out;
}
