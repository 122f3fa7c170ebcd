/**
 * The integrity audit of database locks, data changed under a lock, the study's unblinding (ADR 0054).
 * - database_locks rows against their `database.locked` entries: the lock, the analysis data set's sealed SHA-256
 *   against the row's and against the stored bytes' own SHA-256, its size, the record count, who locked it.
 * - randomization_unblindings rows against their `randomization.unblinded` entries.
 * - DATA_CHANGED_UNDER_LOCK: each data entry (a record version, a query step, a signature, a disposition, an
 *   allocation, ...) sealed after a `database.locked` entry and before its lock's `lock.released`, in log order. The
 *   services refuse every such write under a study lock (refuseUnderDatabaseLock, app/database-lock), so one there
 *   was written behind them (tamper). Consent withdrawals and emergency unblindings are allowed: not findings.
 */
import { fromHex, toHex } from "../../anchoring/log/bytes.ts";
import type { AuditFinding } from "../../anchoring/verifier/log-auditor.ts";
import { studyEntriesOfKinds } from "../../db/queries/integrity-audit.ts";
import type { AppContext } from "../platform/context.server.ts";
import { hexOf, type LinkedTable, type Row, tokenPairs } from "./linked-table.ts";

/** A bytea column's bytes (PGlite and postgres.js differ in how they hand it over). */
function bytesOf(v: unknown): Uint8Array {
  if (v instanceof Uint8Array) return v;
  if (typeof v === "string" && v.startsWith("\\x")) return fromHex(v.slice(2));
  return new Uint8Array(0);
}

export function databaseLockLinks(ctx: AppContext): LinkedTable[] {
  return [
    {
      table: "database_locks",
      column: "entry_id",
      kind: "database.locked",
      compare: (r: Row, p) => {
        const data = bytesOf(r.analysis_data);
        return [
          ["databaseLock", r.id, p.databaseLock],
          ["lock", r.lock_id, p.lock],
          ["analysisSha256", hexOf(r.analysis_sha256), p.analysisSha256],
          ["analysisData", toHex(ctx.crypto.sha256(data)), p.analysisSha256],
          ["analysisBytes", Number(r.analysis_bytes), p.analysisBytes],
          ["analysisDataBytes", data.length, p.analysisBytes],
          ["records", Number(r.records), p.records],
          ["actor", r.actor_user_id ?? null, p.actor],
          ...tokenPairs(r, p),
        ];
      },
      label: (r) => `database lock ${r.lock_id}`,
    },
    {
      table: "randomization_unblindings",
      column: "entry_id",
      kind: "randomization.unblinded",
      compare: (r: Row, p) => [
        ["unblinding", r.id, p.unblinding],
        ["list", r.list_id, p.list],
        ["databaseLock", r.database_lock_id, p.databaseLock],
        ["actor", r.actor_user_id ?? null, p.actor],
      ],
      label: () => "the study's unblinding",
    },
  ];
}

/**
 * The kinds the services refuse under a study-wide (database) lock (ADR 0054, "Which writes a database lock stops"):
 * one sealed under a database lock was written behind them. Not listed, so never a finding: consent withdrawals,
 * emergency unblindings, erasures (the participant's rights, patient safety), form and document registrations, the
 * study's unblinding, record and subject locks and their release, and the unlock itself.
 */
const REFUSED_UNDER_LOCK = new Set([
  "record.saved",
  "import.completed",
  "randomization.allocated",
  "participant.disposition_set",
  "participant.enrolled",
  "query.opened",
  "query.answered",
  "query.closed",
  "query.reopened",
  "signature.applied",
  "sdv.marked",
  "consent.signed",
  "consent.paper_scanned",
  "consent.paper_attested",
  "study_document.site_approved",
  "sap.outcomes_set",
  "schedule.set",
  "lock.set", // a study-wide one only: a record's or subject's lock under a database lock is allowed
  // Issue 21: what a participant received and returned is trial data; the supply's close-out (receipts, destruction,
  // reconciliation, recall) goes on under a lock (ADR 0059).
  "supply.kit_dispensed",
  "supply.kit_returned",
]);
const DATA_KINDS = [...REFUSED_UNDER_LOCK];

export async function databaseLockFindings(
  ctx: AppContext,
  study: { id: string; code: string },
  findings: AuditFinding[],
): Promise<{ rows: number }> {
  /** The database locks in force at this point of the log: lock id -> the database.locked entry's seq. */
  const open = new Map<string, number | null>();
  let entries = 0;
  let after: { seq: number | null; at: Date; id: string } | null = null;
  for (;;) {
    const page = await studyEntriesOfKinds(
      ctx.db,
      study.id,
      ["database.locked", "lock.released", ...DATA_KINDS],
      after,
      1000,
    );
    if (page.length === 0) break;
    for (const e of page) {
      entries++;
      let p: Record<string, unknown>;
      try {
        p = JSON.parse(e.payloadText) as Record<string, unknown>;
      } catch {
        continue; // reported by the log audit
      }
      if (e.kind === "database.locked") open.set(String(p.lock), e.seq);
      else if (e.kind === "lock.released") open.delete(String(p.lock));
      else if (e.kind === "lock.set" && p.scope !== "study")
        continue; // a record's or subject's lock: allowed
      else if (open.size) {
        // Any other entry here is a write the services refuse under the lock: a data change, a review step, a
        // second study-wide lock.
        const [lockSeq] = [...open.values()];
        const what =
          e.kind === "record.saved"
            ? `record ${p.record} version ${p.version}`
            : e.kind === "lock.set"
              ? `a second study-wide lock ${p.lock}`
              : e.kind;
        findings.push({
          code: "DATA_CHANGED_UNDER_LOCK",
          severity: "tamper",
          study: study.code,
          seq: e.seq ?? undefined,
          id: e.id,
          message:
            `${e.kind} entry ${e.seq === null ? e.id : `seq ${e.seq}`} (${what}) was sealed while the database ` +
            `was locked (database.locked${lockSeq === null ? "" : ` seq ${lockSeq}`}) with no unlock before it: ` +
            "the portal refuses that write under a lock, so it was written behind it",
        });
      }
    }
    const l = page[page.length - 1];
    after = { seq: l.seq, at: l.at, id: l.id };
  }
  return { rows: entries };
}
