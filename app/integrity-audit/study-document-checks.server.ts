/**
 * The integrity audit of study documents and their site approvals (ADR 0048). Each study_documents row against its
 * `study_document.registered` entry: id, type, version, the SHA-256 column and the stored PDF's own SHA-256 against
 * the sealed one, the size, the approval date, file name, approving body and reason (by their salted hashes), the
 * version it replaces and who registered it. Each document_site_approvals row against its
 * `study_document.site_approved` entry: id, document, approval date and who recorded it; its site's code (a join,
 * so checked in the findings below). Names fields only: file names and approving bodies are free text.
 */
import { sql } from "drizzle-orm";
import { toHex, utf8 } from "../../anchoring/log/bytes.ts";
import { hashedTextMatches } from "../../anchoring/log/text-hash.ts";
import type { AuditFinding } from "../../anchoring/verifier/log-auditor.ts";
import { rowsOf } from "../../db/queries/rows.ts";
import type { AppContext } from "../platform/context.server.ts";
import { hexOf, type LinkedTable, tokenPairs } from "./linked-table.ts";

/** A date column as YYYY-MM-DD, however the driver hands it over. */
const dateOf = (v: unknown) => {
  if (v instanceof Date) {
    const p = (n: number) => String(n).padStart(2, "0");
    return `${v.getFullYear()}-${p(v.getMonth() + 1)}-${p(v.getDate())}`;
  }
  return v === null || v === undefined ? null : String(v).slice(0, 10);
};
/** A bytea column's bytes (PGlite: Uint8Array; postgres.js: Buffer or `\x` hex text). */
const bytesOf = (v: unknown): Uint8Array =>
  v instanceof Uint8Array
    ? v
    : typeof v === "string" && v.startsWith("\\x")
      ? new Uint8Array(Buffer.from(v.slice(2), "hex"))
      : utf8(String(v ?? ""));
const text = (v: unknown) => (v === null || v === undefined ? null : String(v));

export function studyDocumentLinks(ctx: AppContext): LinkedTable[] {
  return [
    {
      table: "study_documents",
      column: "entry_id",
      kind: "study_document.registered",
      compare: (r, p) => [
        ["document", r.id, p.document],
        ["type", r.type, p.type],
        ["version", r.version, p.version],
        ["sha256", hexOf(r.sha256), p.sha256],
        // The PDF itself: its bytes must hash to what was sealed (a swapped file with the old hash column is found).
        ["content", toHex(ctx.crypto.sha256(bytesOf(r.content))), p.sha256],
        ["bytes", Number(r.bytes), p.bytes],
        ["approvedOn", dateOf(r.approved_on), p.approvedOn],
        ["fileName", hashedTextMatches(ctx.crypto, p, "fileName", text(r.file_name)), true],
        ["approvingBody", hashedTextMatches(ctx.crypto, p, "approver", text(r.approving_body)), true],
        ["reason", hashedTextMatches(ctx.crypto, p, "reason", text(r.reason)), true],
        ["replaces", r.replaces_id ?? null, p.replaces],
        ["actor", r.actor_user_id ?? null, p.actor],
        ...tokenPairs(r, p),
      ],
      label: (r) => `${r.type} version ${r.version}`,
      namesOnly: true,
    },
    {
      table: "document_site_approvals",
      column: "entry_id",
      kind: "study_document.site_approved",
      compare: (r, p) => [
        ["approval", r.id, p.approval],
        ["document", r.document_id, p.document],
        ["approvedOn", dateOf(r.approved_on), p.approvedOn],
        ["actor", r.actor_user_id ?? null, p.actor],
        ...tokenPairs(r, p),
      ],
      label: (r) => `site approval of document ${r.document_id}`,
    },
  ];
}

/**
 * What the linked tables cannot see from the row alone: each site approval's site (by its code, as sealed), and each
 * amendment replacing a version of its own type.
 */
export async function studyDocumentFindings(
  ctx: AppContext,
  study: { id: string; code: string },
  findings: AuditFinding[],
): Promise<{ rows: number }> {
  const approvals = rowsOf<{ id: string; site: string; payload_text: string }>(
    await ctx.db.execute(
      sql`SELECT a.id, s.code AS site, e.payload_text FROM document_site_approvals a
          JOIN sites s ON s.id = a.site_id
          JOIN ledger_entries e ON e.id = a.entry_id AND e.kind = 'study_document.site_approved'
          WHERE a.study_id = ${study.id} ORDER BY a.id`,
    ),
  );
  for (const r of approvals) {
    let site: unknown;
    try {
      site = (JSON.parse(r.payload_text) as { site?: unknown }).site;
    } catch {
      continue; // reported by the log audit
    }
    if (site !== r.site)
      findings.push({
        code: "DATA_ROW_MISMATCH",
        severity: "tamper",
        study: study.code,
        table: "document_site_approvals",
        id: String(r.id),
        field: "site",
        message:
          `document_site_approvals row ${r.id} of ${study.code} is site ${r.site} in the database but ` +
          `${JSON.stringify(site)} in its ledger entry (moved to another site behind the log?)`,
      });
  }
  const amendments = rowsOf<{ id: string; type: string; version: string; replaced_type: string | null }>(
    await ctx.db.execute(
      sql`SELECT d.id, d.type, d.version, o.type AS replaced_type FROM study_documents d
          LEFT JOIN study_documents o ON o.id = d.replaces_id
          WHERE d.study_id = ${study.id} AND d.replaces_id IS NOT NULL ORDER BY d.id`,
    ),
  );
  for (const r of amendments)
    if (r.replaced_type !== r.type)
      findings.push({
        code: "DATA_ROW_MISMATCH",
        severity: "tamper",
        study: study.code,
        table: "study_documents",
        id: String(r.id),
        field: "replaces",
        message:
          `study_documents row ${r.id} (${r.type} version ${r.version}) replaces ` +
          (r.replaced_type === null ? "a document that is not in the table" : `a ${r.replaced_type}, not a ${r.type}`),
      });
  return { rows: approvals.length };
}
