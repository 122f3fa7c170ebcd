/**
 * The audit trail against the log (ADR 0016): every audit_events row must match the `audit.event` entry it names,
 * and every such entry must still have its row. A deleted event (AUDIT_EVENT_MISSING), an altered one
 * (AUDIT_EVENT_MISMATCH, naming the field) and one inserted behind the portal's back (AUDIT_EVENT_UNLOGGED) are
 * each named with the event's id and action. Rows older than the first sealed event (written before migration
 * 0016) cannot be checked: they are counted in one note. Paged by id; memory stays bounded.
 */
import { canonicalize } from "../../anchoring/log/canonical.ts";
import type { AuditFinding } from "../../anchoring/verifier/log-auditor.ts";
import {
  auditEntriesWithoutRow,
  auditEventsWithEntries,
  firstSealedEventId,
} from "../../db/queries/audit-trail-checks.ts";
import { eventPayloadFields } from "../audit-trail/seal-event.server.ts";
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
      let payload: Record<string, unknown> | null = null;
      try {
        payload = r.e_payload ? (JSON.parse(r.e_payload) as Record<string, unknown>) : null;
      } catch {
        payload = null; // a damaged payload is reported by the log audit; the row is unmatched here
      }
      if (!r.e_id || r.e_kind !== "audit.event" || !payload || typeof payload.salt !== "string") {
        if (r.entry_id === null && (firstSealed === null || id < firstSealed)) {
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
      let detail: unknown;
      try {
        detail = JSON.parse(r.detail_text);
      } catch {
        detail = r.detail_text;
      }
      const want = eventPayloadFields(ctx.crypto, payload.salt, {
        id,
        at: new Date(r.at_iso),
        action: r.action,
        outcome: r.outcome,
        actorUserId: r.actor_user_id,
        actorLabel: r.actor_label,
        siteId: r.site_id,
        participantId: r.participant_id,
        ip: r.ip,
        detail,
      });
      const fields: [string, unknown, unknown][] = [
        ...Object.entries(want).map(([k, v]) => [k, v, payload[k]] as [string, unknown, unknown]),
        ...(payload.count !== undefined && want.count === undefined ? [["count", undefined, payload.count]] : []),
        ["study", r.study_id ?? null, r.e_study ?? null],
      ] as [string, unknown, unknown][];
      const field = (k: string) =>
        ({ event: "id", actor: "actor_user_id", actorLabel: "actor_label", site: "site_id" })[k] ??
        { participant: "participant_id", study: "study_id", count: "detail" }[k] ??
        k;
      for (const [k, rowValue, logValue] of fields)
        if (canonicalize(rowValue ?? null) !== canonicalize(logValue ?? null))
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
  if (legacy > 0)
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
