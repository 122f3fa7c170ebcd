/**
 * The integrity audit's checks of free text kept beside its entry (ADR 0020): an unlock's reason (locks
 * .release_reason, `lock.released`), a delegation's revocation reason and training courses (`delegation.revoked`,
 * `delegation.granted`), the study's title (`study.registered`) and a consent document's IRB name
 * (`consent_document.approved`), each recomputed from the row: the salted hash under the
 * entry's salt (version 2) or the clear text (version 1). The lock's own reason and a correction's reason are
 * checked with their rows in the main data audit.
 */
import type { AuditFinding } from "../../anchoring/verifier/log-auditor.ts";
import { textMatchesPayload } from "../../anchoring/log/text-hash.ts";
import { studyEntriesOfKinds } from "../../db/queries/integrity-audit.ts";
import { rowsOf } from "../../db/queries/rows.ts";
import { sql } from "drizzle-orm";
import type { AppContext } from "../platform/context.server.ts";

type Row = Record<string, unknown>;

const KINDS = [
  "lock.released",
  "delegation.revoked",
  "delegation.granted",
  "study.registered",
  "consent_document.approved",
];
const keyOf = (kind: string, p: Row) =>
  kind === "lock.released"
    ? `lock:${p.lock}`
    : kind === "delegation.revoked"
      ? `delegation:${p.delegation}`
      : kind === "delegation.granted"
        ? `granted:${p.delegation}`
        : kind === "study.registered"
          ? "study"
          : `document:${p.document}@${p.version}`;

export async function freeTextFindings(ctx: AppContext, study: { id: string; code: string }, findings: AuditFinding[]) {
  const byKey = new Map<string, { p: Row; seq: number | null }>();
  let after: { seq: number | null; at: Date; id: string } | null = null;
  for (;;) {
    const page = await studyEntriesOfKinds(ctx.db, study.id, KINDS, after, 1000);
    if (page.length === 0) break;
    for (const e of page) {
      try {
        const p = JSON.parse(e.payloadText) as Row;
        byKey.set(keyOf(e.kind, p), { p, seq: e.seq });
      } catch {
        /* reported by the log audit */
      }
    }
    const l = page[page.length - 1];
    after = { seq: l.seq, at: l.at, id: l.id };
  }
  let rows = 0;
  const check = (table: string, id: string, key: string, field: string, text: unknown, sealed = "reason") => {
    rows++;
    const e = byKey.get(key);
    // A missing entry is the main audit's finding (released/revoked in the database but not in the log).
    if (!e) return;
    if (!sameText(e.p, sealed, text))
      findings.push({
        code: "DATA_ROW_MISMATCH",
        severity: "tamper",
        study: study.code,
        table,
        id,
        seq: e.seq ?? undefined,
        field,
        message: `${table} row ${id}: its ${field.replace("_", " ")} differs from its ledger entry`,
      });
  };
  const sameText = (p: Row, sealed: string, text: unknown): boolean => {
    if (sealed !== "training") return textMatchesPayload(ctx.crypto, p, sealed, typeof text === "string" ? text : null);
    // Training courses: each item's course, in clear (v1) or as its salted hash under the payload's salt (v2).
    const rowItems = (typeof text === "string" ? JSON.parse(text) : (text ?? [])) as { course?: string }[];
    const items = Array.isArray(p.training) ? (p.training as Row[]) : [];
    return (
      items.length === rowItems.length &&
      items.every((x, k) => textMatchesPayload(ctx.crypto, { ...x, salt: p.salt }, "course", rowItems[k]?.course))
    );
  };
  const locks = rowsOf<Row>(
    await ctx.db.execute(
      sql`SELECT id, release_reason FROM locks WHERE study_id = ${study.id} AND released_at IS NOT NULL`,
    ),
  );
  for (const r of locks) check("locks", String(r.id), `lock:${r.id}`, "release_reason", r.release_reason);
  const revoked = rowsOf<Row>(
    await ctx.db.execute(
      sql`SELECT id, revoke_reason FROM delegations WHERE study_id = ${study.id} AND revoked_at IS NOT NULL`,
    ),
  );
  for (const r of revoked) check("delegations", String(r.id), `delegation:${r.id}`, "revoke_reason", r.revoke_reason);
  const granted = rowsOf<Row>(
    await ctx.db.execute(sql`SELECT id, training FROM delegations WHERE study_id = ${study.id}`),
  );
  for (const r of granted) check("delegations", String(r.id), `granted:${r.id}`, "training", r.training, "training");
  const title = rowsOf<Row>(await ctx.db.execute(sql`SELECT id, title FROM studies WHERE id = ${study.id}`));
  for (const r of title) check("studies", String(r.id), "study", "title", r.title, "title");
  const docs = rowsOf<Row>(
    await ctx.db.execute(
      sql`SELECT id, code, version, irb_name FROM consent_documents
          WHERE study_id = ${study.id} AND status <> 'draft' AND irb_name IS NOT NULL`,
    ),
  );
  for (const r of docs)
    check("consent_documents", String(r.id), `document:${r.code}@${r.version}`, "irb_name", r.irb_name, "irbName");
  return { rows };
}
