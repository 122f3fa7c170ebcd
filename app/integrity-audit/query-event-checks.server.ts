/**
 * The integrity audit's check of query histories (ADR 0034): every query_events row against the entry it names (the
 * kind its action has, the query, the salted hash of its text, the user or API token, the time), and every query.*
 * entry against its row, so that a row changed, deleted or inserted behind the log is named.
 */
import { sql } from "drizzle-orm";
import { hashedTextMatches } from "../../anchoring/log/text-hash.ts";
import type { AuditFinding } from "../../anchoring/verifier/log-auditor.ts";
import { studyEntriesOfKinds } from "../../db/queries/integrity-audit.ts";
import { rowsOf } from "../../db/queries/rows.ts";
import type { AppContext } from "../platform/context.server.ts";
import { QUERY_EVENT_KIND, type QueryAction } from "../queries/query-events.server.ts";

const KINDS = ["query.opened", "query.answered", "query.closed", "query.reopened"];

interface EventRow {
  id: string;
  query_id: string;
  action: QueryAction;
  text: string | null;
  actor_user_id: string | null;
  actor_token_id: string | null;
  actor_token_name: string | null;
  at: Date | string;
  entry_id: string;
}

const iso = (d: Date | string) => new Date(d).toISOString();

export async function queryEventFindings(
  ctx: AppContext,
  study: { id: string; code: string },
  findings: AuditFinding[],
) {
  const entries = new Map<string, { kind: string; p: Record<string, unknown> | null; seq: number | null; at: Date }>();
  let after: { seq: number | null; at: Date; id: string } | null = null;
  for (;;) {
    const page = await studyEntriesOfKinds(ctx.db, study.id, KINDS, after, 1000);
    if (page.length === 0) break;
    for (const e of page) {
      let p: Record<string, unknown> | null = null;
      try {
        p = JSON.parse(e.payloadText) as Record<string, unknown>;
      } catch {
        /* reported by the log audit */
      }
      entries.set(e.id, { kind: e.kind, p, seq: e.seq, at: e.at });
    }
    const l = page[page.length - 1];
    after = { seq: l.seq, at: l.at, id: l.id };
  }
  const rows = rowsOf<EventRow>(
    await ctx.db.execute(
      sql`SELECT id, query_id, action, text, actor_user_id, actor_token_id, actor_token_name, at, entry_id
          FROM query_events WHERE study_id = ${study.id} ORDER BY at, id`,
    ),
  );
  const f = (x: Omit<AuditFinding, "study" | "severity" | "table">) =>
    findings.push({ ...x, table: "query_events", severity: "tamper", study: study.code });
  const seen = new Set<string>();
  for (const r of rows) {
    const id = String(r.id);
    const e = entries.get(String(r.entry_id));
    if (!e?.p) {
      f({
        code: "DATA_ROW_UNLOGGED",
        id,
        message: `query history row ${id} (${r.action} of query ${r.query_id}) names no query entry of ${study.code}`,
      });
      continue;
    }
    if (seen.has(String(r.entry_id))) {
      f({
        code: "DATA_ROW_UNLOGGED",
        id,
        seq: e.seq ?? undefined,
        message: `query history row ${id} repeats the entry of another row (inserted behind the log?)`,
      });
      continue;
    }
    seen.add(String(r.entry_id));
    const p = e.p;
    const token = (p.token ?? null) as { id?: string; name?: string } | null;
    const wrong: [string, boolean][] = [
      ["action", QUERY_EVENT_KIND[r.action] !== e.kind],
      ["query", p.query !== r.query_id],
      ["text", r.action === "closed" ? r.text !== null : !hashedTextMatches(ctx.crypto, p, "text", r.text)],
      ["actor", (p.actor ?? null) !== (r.actor_user_id ?? null)],
      ["token", (token?.id ?? null) !== (r.actor_token_id ?? null) || (token?.name ?? null) !== r.actor_token_name],
      ["at", iso(r.at) !== iso(e.at)],
    ];
    const bad = wrong.find(([, w]) => w);
    if (bad)
      f({
        code: "DATA_ROW_MISMATCH",
        id,
        seq: e.seq ?? undefined,
        field: bad[0],
        message:
          `query history row ${id} (${r.action} of query ${r.query_id}): ` +
          `its ${bad[0]} differs from its ${e.kind} entry`,
      });
  }
  for (const [entryId, e] of entries)
    if (!seen.has(entryId) && e.p)
      f({
        code: "DATA_ROW_MISSING",
        id: String(e.p.query ?? entryId),
        seq: e.seq ?? undefined,
        message: `the ${e.kind} entry of query ${String(e.p.query)} has no query history row (deleted?)`,
      });
  return { rows: rows.length };
}
