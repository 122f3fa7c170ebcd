/**
 * The study review for sponsors and regulators: participants (pseudonymous) with their consent status,
 * consents per document version, records with their proof status (never "sealed" when a version's rows no
 * longer match its entry), the batch/checkpoint timeline with each ledger's anchors, per-ledger anchoring health,
 * and the study's ledger entries with their proof bundles.
 */
import { checkpointTimeline, consentCountsByVersion, studyEntries, studyRecords } from "../../db/queries/review.ts";
import type { AppContext } from "../platform/context.server.ts";
import { systemStatus } from "../anchor-worker/anchor-worker.server.ts";
import { listParticipants } from "../participants/participants.server.ts";
import { studyConsentSummary } from "../consent/status.server.ts";
import { requirePermission, type Principal } from "../platform/permissions.server.ts";
import { getStudyOrThrow } from "../studies/studies.server.ts";
import { studySealMismatches } from "../records/seal-match.server.ts";
import { remoteConsentSignals } from "./remote-consent-signals.server.ts";
import { recordsBeforeConsent } from "./pre-consent.server.ts";

export async function studyReview(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  opts: { entries?: number } = {},
) {
  const study = await getStudyOrThrow(ctx, studyCode);
  requirePermission(principal, "study.review", { studyId: study.id });
  const [people, consent, byVersion, recs, entries, timeline, status] = await Promise.all([
    listParticipants(ctx, principal, study.id),
    studyConsentSummary(ctx, principal, study.id),
    consentCountsByVersion(ctx.db, study.id),
    studyRecords(ctx.db, study.id, 500),
    studyEntries(ctx.db, study.id, { limit: opts.entries ?? 200 }),
    checkpointTimeline(ctx.db, 60),
    systemStatus(ctx),
  ]);
  // Every version of the listed records, checked against its sealed entry (a value altered behind the log).
  const mismatches = await studySealMismatches(
    ctx,
    study.id,
    recs.map((x) => x.id),
  );
  const mismatched = new Set(mismatches.map((m) => m.record));
  // Signals that a remote consent may not come from the person it names (ADR 0018).
  const remote = await remoteConsentSignals(ctx, study.id, new Map(people.map((p) => [p.id, p.subject])));
  const beforeConsent = await recordsBeforeConsent(ctx, principal, study.id);
  const versions = new Map<
    string,
    { code: string; version: string; status: string; signatures: Record<string, number> }
  >();
  for (const r of byVersion) {
    const key = `${r.code} ${r.version}`;
    const v = versions.get(key) ?? { code: r.code, version: r.version, status: r.status, signatures: {} };
    if (r.role) v.signatures[r.role] = r.n;
    versions.set(key, v);
  }
  return {
    study: { code: study.code, title: study.title },
    participants: people.map((p) => ({
      subject: p.subject,
      site: p.site,
      status: p.status,
      consent: consent.get(p.id)?.summary ?? "-",
      consentState: consent.get(p.id)?.state ?? "none",
    })),
    consentVersions: [...versions.values()],
    records: recs.map((x) => ({ ...x, matchesSeal: !mismatched.has(x.id) })),
    /** The versions of the listed records whose rows no longer match their sealed entries. */
    mismatches,
    /** Per participant: signed from a staff session's network, contact equal to staff's or another participant's. */
    consentSignals: remote.consentSignals,
    /** Sites with at most one member of site staff (no second person to confirm a contact): flagged, not refused. */
    singleStaffSites: remote.singleStaffSites,
    /** Records saved before their participant's consent was complete (pre-screening forms, or older data). */
    beforeConsent,
    entries: entries.map((e) => ({ ...e, at: e.at.toISOString() })),
    timeline: timeline.map((c) => ({
      treeSize: c.treeSize,
      at: c.createdAt.toISOString(),
      anchors: c.anchors.map((a) => ({ ledger: a.ledger, status: a.status })),
    })),
    ledgers: status.ledgers,
    logSize: status.logSize,
  };
}
