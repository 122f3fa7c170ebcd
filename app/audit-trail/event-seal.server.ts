/**
 * One audit-trail event against its `audit.event` entry (ADR 0016): the comparison the integrity audit runs on every
 * event (app/integrity-audit/audit-trail-checks.server.ts) and a page runs on the events it shows (the participant's
 * access list, ADR 0067), so that an event altered behind the log is shown as such, never as sealed.
 */
import { canonicalize } from "../../anchoring/log/canonical.ts";
import type { Crypto } from "../../anchoring/log/crypto.ts";
import { eventPayloadFields } from "./seal-event.server.ts";

/** An audit_events row as the comparison needs it (`detail` as stored: parsed JSON). */
export interface EventRow {
  id: number;
  at: Date;
  action: string;
  outcome: "success" | "failure" | "denied";
  actorUserId: string | null;
  actorLabel: string | null;
  studyId: string | null;
  siteId: string | null;
  participantId: string | null;
  ip: string | null;
  detail: unknown;
}

/** The entry the row names: its kind, payload and study (null when the row names none, or a missing one). */
export interface EventEntry {
  kind: string | null;
  payloadText: string | null;
  studyId: string | null;
}

/**
 * "unsealed" when the row has no readable `audit.event` entry behind it; else the payload members (`event`, `at`,
 * `action`, `actor`, `detail`, `study`...) where the row and its entry differ: none when they match.
 */
export function eventSealDifferences(
  crypto: Crypto,
  dataKey: Uint8Array,
  row: EventRow,
  entry: EventEntry | null,
): "unsealed" | string[] {
  let payload: Record<string, unknown> | null = null;
  try {
    payload = entry?.payloadText ? (JSON.parse(entry.payloadText) as Record<string, unknown>) : null;
  } catch {
    payload = null;
  }
  if (entry?.kind !== "audit.event" || !payload || typeof payload.salt !== "string") return "unsealed";
  const want = eventPayloadFields(crypto, payload.salt, row, { v: payload.v, dataKey });
  const fields: [string, unknown, unknown][] = [
    ...Object.entries(want).map(([k, v]) => [k, v, payload[k]] as [string, unknown, unknown]),
    ...(payload.count !== undefined && want.count === undefined ? [["count", undefined, payload.count]] : []),
    ["study", row.studyId ?? null, entry.studyId ?? null],
  ] as [string, unknown, unknown][];
  return fields
    .filter(([, rowValue, logValue]) => canonicalize(rowValue ?? null) !== canonicalize(logValue ?? null))
    .map(([k]) => k);
}
