/**
 * A table whose rows each name their ledger entry (the integrity audit's `linked` tables): every row must match its
 * entry field by field, and every entry of `kind` must have its row. Capabilities add theirs through
 * pre-commitment-checks.server.ts and the like; the audit runs them all the same way.
 */
import { toHex } from "../../anchoring/log/bytes.ts";
import type { AuditFinding } from "../../anchoring/verifier/log-auditor.ts";

export type Row = Record<string, unknown>;

export interface LinkedTable {
  table: string;
  column: string;
  kind: string;
  /** [field, the row's value, the payload's value]: each pair must be equal as canonical JSON. */
  compare: (row: Row, p: Record<string, unknown>) => [string, unknown, unknown][];
  /** What the row is, in words, beside its id. */
  label?: (row: Row) => string;
  /** Name the field that differs, never its values (they may be identifiers or free text). */
  namesOnly?: boolean;
}

/** Push a finding of the study being audited (severity `tamper` unless said). */
export type FindingSink = (
  x: Omit<AuditFinding, "study" | "severity"> & { severity?: AuditFinding["severity"] },
) => void;

export const payloadOf = (r: Row): Record<string, unknown> | null => {
  try {
    return r.e_payload ? (JSON.parse(String(r.e_payload)) as Record<string, unknown>) : null;
  } catch {
    return null;
  }
};
/** A bytea column as lowercase hex (PGlite and postgres.js differ in how they hand it over). */
export const hexOf = (v: unknown) =>
  v instanceof Uint8Array ? toHex(v) : typeof v === "string" && v.startsWith("\\x") ? v.slice(2) : String(v);
/** A jsonb column as its value (PGlite and postgres.js may hand it over as text). */
export const jsonOf = (v: unknown) => (typeof v === "string" ? JSON.parse(v) : (v ?? null));
export const seqOf = (r: Row) => (r.e_seq === null || r.e_seq === undefined ? undefined : Number(r.e_seq));
/** The token columns (actor_token_id, actor_token_name) against a payload's `token`. */
export function tokenPairs(r: Row, p: Record<string, unknown>): [string, unknown, unknown][] {
  const t = p.token as { id?: string; name?: string } | undefined;
  return [
    ["token", r.actor_token_id ?? null, t?.id ?? null],
    ["tokenName", r.actor_token_name ?? null, t?.name ?? null],
  ];
}
