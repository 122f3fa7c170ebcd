/**
 * The audit trail against the log (ADR 0016): every audit_events row must match the `audit.event` entry it names,
 * and every such entry must still have its row. A deleted event (AUDIT_EVENT_MISSING), an altered one
 * (AUDIT_EVENT_MISMATCH, naming the field) and one inserted behind the portal's back (AUDIT_EVENT_UNLOGGED) are
 * each named with the event's id and action. Rows written before migration 0016 are sealed together, once, by the
 * `audit.legacy_sealed` entry (app/audit-trail/seal-legacy.server.ts): the whole audit recomputes its count and
 * digest (AUDIT_LEGACY_MISMATCH); a row without an entry above its last id is AUDIT_EVENT_UNLOGGED. A study's audit
 * also checks the study's entries against their rows by entry, so a row moved to another study (or none) is named.
 * Paged by id; memory stays bounded.
 */
import type { AuditFinding } from "../../anchoring/verifier/log-auditor.ts";
import {
  auditEntriesWithoutRow,
  auditEventsWithEntries,
  firstSealedEventId,
  legacySealedEntries,
  studyEntriesWithMovedRow,
} from "../../db/queries/audit-trail-checks.ts";
import { eventSealDifferences } from "../audit-trail/event-seal.server.ts";
import { legacyDigest } from "../audit-trail/seal-legacy.server.ts";
import type { AppContext } from "../platform/context.server.ts";

const PAGE = 1000;
const seqOf = (v: string | number | null) => (v === null || v === undefined ? undefined : Number(v));

/** Check the audit trail (one study's events when `study` is given, else all, the deployment scope included). */
export async function auditTrailFindings(
  ctx: AppContext,
  study: { id: string; code: string } | null,
  findings: AuditFinding[],
): Promise<{ rows: number }> {
  const f = (x: Omit<AuditFinding, "severity" | "table"> & { severity?: AuditFinding["severity"] }) =>
    findings.push({ severity: "tamper", table: "audit_events", ...(study ? { study: study.code } : {}), ...x });
  const firstSealed = await firstSealedEventId(ctx.db);
  const legacy0 = (await legacySealedEntries(ctx.db))[0];
  type Legacy = { seq: number | undefined; salt: string; count: number; firstId: number; lastId: number };
  let sealedLegacy: Legacy | null = null;
  try {
    const p = legacy0 ? (JSON.parse(legacy0.payload_text) as Legacy | null) : null;
    if (p && typeof p.salt === "string" && Number.isInteger(p.lastId)) {
      sealedLegacy = { ...p, seq: seqOf(legacy0.seq) };
    }
  } catch {
    /* a damaged payload is reported by the log audit; the rows without an entry are then unmatched */
  }
  let rows = 0;
  let legacy = 0;
  let after = 0;
  for (;;) {
    const page = await auditEventsWithEntries(ctx.db, after, PAGE, study?.id);
    if (page.length === 0) break;
    for (const r of page) {
      rows++;
      const id = Number(r.id);
      const what = `audit-trail event ${id} (${r.action})`;
      let detail: unknown;
      try {
        detail = JSON.parse(r.detail_text);
      } catch {
        detail = r.detail_text;
      }
      // The address: its salted hash in a v1 payload, its HMAC under the deployment key in v2 (ADR 0016).
      const differs = eventSealDifferences(
        ctx.crypto,
        ctx.env.dataKey,
        {
          id,
          at: new Date(r.at_iso),
          action: r.action,
          outcome: r.outcome,
          actorUserId: r.actor_user_id,
          actorLabel: r.actor_label,
          studyId: r.study_id,
          siteId: r.site_id,
          participantId: r.participant_id,
          ip: r.ip,
          detail,
        },
        r.e_id ? { kind: r.e_kind, payloadText: r.e_payload, studyId: r.e_study } : null,
      );
      if (differs === "unsealed") {
        // Sealed together by the legacy entry (checked below), or nothing was ever sealed (cannot be checked).
        if (r.entry_id === null && (sealedLegacy ? id <= sealedLegacy.lastId : firstSealed === null)) {
          legacy++;
          continue;
        }
        f({
          code: "AUDIT_EVENT_UNLOGGED",
          id: String(id),
          message: `${what} has no audit.event ledger entry behind it (inserted behind the portal's back?)`,
        });
        continue;
      }
      const field = (k: string) =>
        ({ event: "id", actor: "actor_user_id", actorLabel: "actor_label", site: "site_id" })[k] ??
        { participant: "participant_id", study: "study_id", count: "detail" }[k] ??
        k;
      for (const k of differs)
        f({
          code: "AUDIT_EVENT_MISMATCH",
          id: String(id),
          seq: seqOf(r.e_seq),
          field: field(k),
          message:
            `${what}: its ${field(k)} differs from its sealed audit.event entry` +
            `${r.e_seq === null ? "" : ` (seq ${r.e_seq})`} (altered behind the log?)`,
        });
    }
    after = Number(page[page.length - 1].id);
  }
  for (const e of await auditEntriesWithoutRow(ctx.db, study?.id)) {
    let p: { event?: unknown; action?: unknown } = {};
    try {
      p = JSON.parse(e.payload_text) as typeof p;
    } catch {
      /* reported by the log audit */
    }
    f({
      code: "AUDIT_EVENT_MISSING",
      id: String(p.event ?? e.id),
      seq: seqOf(e.seq),
      ...(study ? {} : { study: e.study_code }),
      message:
        `audit-trail event ${String(p.event ?? "?")} (${String(p.action ?? "?")}) is sealed in the log` +
        `${e.seq === null ? "" : ` (seq ${e.seq})`} but has no audit_events row (deleted?)`,
    });
  }
  if (study)
    for (const e of await studyEntriesWithMovedRow(ctx.db, study.id))
      f({
        code: "AUDIT_EVENT_MISMATCH",
        id: String(e.event),
        seq: seqOf(e.seq),
        field: "study_id",
        message:
          `audit-trail event ${e.event} (${e.action}): its study_id differs from its sealed audit.event entry` +
          `${e.seq === null ? "" : ` (seq ${e.seq})`}, which is ${study.code}'s (moved behind the log?)`,
      });
  if (!study && sealedLegacy) {
    const now = await legacyDigest(ctx.db, sealedLegacy.salt, { upTo: sealedLegacy.lastId });
    const want = sealedLegacy as typeof sealedLegacy & { digest?: unknown };
    if (now.count !== want.count || now.firstId !== want.firstId || now.digest !== want.digest)
      f({
        code: "AUDIT_LEGACY_MISMATCH",
        seq: sealedLegacy.seq,
        field: now.count !== want.count ? "count" : "digest",
        message:
          `the audit.legacy_sealed entry${want.seq === undefined ? "" : ` (seq ${want.seq})`} seals ${want.count} ` +
          `audit-trail event(s) from before migration 0016 (ids ${want.firstId}-${want.lastId}); ` +
          (now.count !== want.count
            ? `${now.count} are there now (deleted or inserted behind the log?)`
            : `${now.count} are there, but their digest differs (altered behind the log?)`),
      });
  }
  if (legacy > 0 && !sealedLegacy)
    findings.push({
      code: "AUDIT_EVENT_UNSEALED_LEGACY",
      severity: "info",
      table: "audit_events",
      message:
        `${legacy} audit-trail event(s) predate the sealing of the audit trail (migration 0016) ` +
        "and have no ledger entry to be checked against",
    });
  return { rows };
}
