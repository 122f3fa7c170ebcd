/**
 * Paper consent attestations against the log (ADR 0021): an attested paper consent counts as a complete consent
 * and opens the consent gate, so its attestation columns (attested_by, attested_at, attest_entry_id) must match the
 * `consent.paper_attested` entry it names: the paper, the investigator, the entry's time and the scan's SHA-256.
 * Named: an attestation that differs from its entry (DATA_ROW_MISMATCH, naming the field), one claimed with no
 * entry (DATA_ROW_UNLOGGED), and an entry whose paper consent's row says unattested or names another entry.
 */
import { canonicalize } from "../../anchoring/log/canonical.ts";
import { toHex } from "../../anchoring/log/bytes.ts";
import type { AuditFinding } from "../../anchoring/verifier/log-auditor.ts";
import { attestationEntriesWithoutRow, paperAttestationRows } from "../../db/queries/paper-attestations.ts";
import type { AppContext } from "../platform/context.server.ts";

const KIND = "consent.paper_attested";
const seqOf = (v: string | number | null) => (v === null || v === undefined ? undefined : Number(v));
const hexOf = (v: unknown) =>
  v instanceof Uint8Array ? toHex(v) : typeof v === "string" && v.startsWith("\\x") ? v.slice(2) : String(v);
const parse = (text: string | null): Record<string, unknown> | null => {
  try {
    return text ? (JSON.parse(text) as Record<string, unknown>) : null;
  } catch {
    return null; // a damaged payload is reported by the log audit
  }
};

/** Check a study's paper consent attestations; returns how many rows were checked. */
export async function paperAttestationFindings(
  ctx: AppContext,
  study: { id: string; code: string },
  findings: AuditFinding[],
): Promise<number> {
  const f = (x: Omit<AuditFinding, "severity" | "table" | "study">) =>
    findings.push({ severity: "tamper", table: "paper_consents", study: study.code, ...x });
  const rows = await paperAttestationRows(ctx.db, study.id);
  const byId = new Map(rows.map((r) => [String(r.id), r]));
  for (const r of rows) {
    const what = `paper consent ${r.id}`;
    if (r.attest_entry_id === null) {
      if (r.attested_by !== null || r.attested_iso !== null)
        f({
          code: "DATA_ROW_UNLOGGED",
          id: r.id,
          field: "attestedAt",
          message:
            `${what} claims an attestation (by ${r.attested_by ?? "nobody"} at ${r.attested_iso ?? "no time"}) ` +
            `that no ${KIND} entry seals (set behind the portal's back?)`,
        });
      continue;
    }
    const p = parse(r.e_payload);
    if (!r.e_id || r.e_kind !== KIND || !p || r.e_study !== study.id) {
      f({
        code: "DATA_ROW_UNLOGGED",
        id: r.id,
        field: "attestEntryId",
        message: `${what} names ${r.attest_entry_id} as its attestation, which is no ${KIND} entry of ${study.code}`,
      });
      continue;
    }
    const fields: [string, unknown, unknown][] = [
      ["paper", r.id, p.paper],
      ["attestedBy", r.attested_by, p.investigator],
      ["attestedAt", r.attested_iso, r.e_at_iso],
      ["scanSha256", hexOf(r.scan_sha256), p.scanSha256],
    ];
    for (const [field, rowValue, logValue] of fields)
      if (canonicalize(rowValue ?? null) !== canonicalize(logValue ?? null))
        f({
          code: "DATA_ROW_MISMATCH",
          id: r.id,
          seq: seqOf(r.e_seq),
          field,
          message:
            `${what}: its attestation's ${field} is ${JSON.stringify(rowValue)} in the database but ` +
            `${JSON.stringify(logValue)} in its ${KIND} entry${r.e_seq === null ? "" : ` (seq ${r.e_seq})`}`,
        });
  }
  for (const e of await attestationEntriesWithoutRow(ctx.db, study.id)) {
    const paper = String(parse(e.payload_text)?.paper ?? "?");
    const row = byId.get(paper);
    const where = e.seq === null ? `entry ${e.id}` : `entry seq ${e.seq}`;
    f({
      code: row ? "DATA_ROW_MISMATCH" : "DATA_ROW_MISSING",
      id: paper,
      seq: seqOf(e.seq),
      ...(row ? { field: row.attest_entry_id === null ? "attestedAt" : "attestEntryId" } : {}),
      message: !row
        ? `the ${KIND} ${where} seals the attestation of paper consent ${paper}, which has no row (deleted?)`
        : row.attest_entry_id === null
          ? `paper consent ${paper} is sealed as attested (${KIND} ${where}) but its row says unattested`
          : `paper consent ${paper} is sealed as attested by ${KIND} ${where} but its row names another entry`,
    });
  }
  return rows.length;
}
