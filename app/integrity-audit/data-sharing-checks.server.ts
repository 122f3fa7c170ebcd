/**
 * Issue 22's tables in the integrity audit (ADR 0066-0072): consent choice changes, data-use requests, decisions,
 * deliveries and the participants each delivery holds, each against its entry; a row changed, deleted or inserted
 * behind the log is named. Reads of a participant's data are audit-trail events, checked by audit-trail-checks.
 * - Linked tables (dataSharingLinks): each row field by field against its entry; free text (institution,
 *   justification, reason) through its salted hash, the manifest's SHA-256 against the row's AND against the stored
 *   manifest text, the actor and the API token. A row moved to another study is named by the linked-table loop.
 * - dataSharingFindings: what a linked table cannot see on its own row (the subject code through the participant,
 *   a decision's or delivery's request and purpose through their joins), each delivery's participant rows against
 *   its sealed membersHash (a deleted or inserted row named by participant id where one row explains it), created_at
 *   against the entry's time, and every entry of these kinds whose row is gone, named by the row's id and what it was.
 * Messages name the table and the row (id, subject code), never free text nor a participant's choices.
 */
import { sql } from "drizzle-orm";
import { utf8 } from "../../anchoring/log/bytes.ts";
import { hashedTextMatches } from "../../anchoring/log/text-hash.ts";
import type { AuditFinding } from "../../anchoring/verifier/log-auditor.ts";
import { rowsOf } from "../../db/queries/rows.ts";
import { verifyDeliveryPackage } from "../data-sharing/deliveries.server.ts";
import { membersHash } from "../data-sharing/members-hash.ts";
import type { AppContext } from "../platform/context.server.ts";
import { hexOf, jsonOf, type LinkedTable, payloadOf, type Row, seqOf, tokenPairs } from "./linked-table.ts";

/** A date column as YYYY-MM-DD (a Date at UTC midnight from some drivers, text from others). */
const dayOf = (v: unknown) => (v instanceof Date ? v.toISOString().slice(0, 10) : v === null ? null : String(v));
/** A bytea column as bytes (a Uint8Array/Buffer from the drivers, or `\\x...` text). */
function bytesOf(v: unknown): Uint8Array {
  if (v instanceof Uint8Array) return new Uint8Array(v);
  const s = String(v ?? "");
  return new Uint8Array(Buffer.from(s.startsWith("\\x") ? s.slice(2) : s, "hex"));
}
const num = (v: unknown) => (v === null || v === undefined ? null : Number(v));
/** A timestamptz as epoch milliseconds, whatever the driver hands over (a Date, or text such as `... +00`). */
export function msOf(v: unknown): number | null {
  if (v === null || v === undefined) return null;
  if (v instanceof Date) return v.getTime();
  const s = String(v).trim().replace(" ", "T");
  const t = Date.parse(/[+-]\d\d$/.test(s) ? `${s}:00` : s);
  return Number.isNaN(t) ? null : t;
}
const textMatches = (ctx: AppContext, p: Record<string, unknown>, field: string, v: unknown) =>
  hashedTextMatches(ctx.crypto, p, field, v === null || v === undefined ? null : String(v));
const actorPair = (r: Row, p: Record<string, unknown>): [string, unknown, unknown] => [
  "actor",
  r.actor_user_id ?? null,
  p.actor ?? null,
];

export function dataSharingLinks(ctx: AppContext): LinkedTable[] {
  const sha = (b: Uint8Array) => hexOf(ctx.crypto.sha256(b));
  return [
    {
      // The subject through its join: dataSharingFindings.
      table: "consent_choice_changes",
      column: "entry_id",
      kind: "consent.choices_changed",
      compare: (r, p) => [
        ["change", r.id, p.change],
        ["choices", jsonOf(r.choices), p.choices],
        ["byParticipant", Boolean(r.by_participant), p.byParticipant],
        actorPair(r, p),
        ...tokenPairs(r, p),
      ],
      label: () => "choice change",
      namesOnly: true,
    },
    {
      table: "data_use_requests",
      column: "entry_id",
      kind: "data_use.requested",
      compare: (r, p) => [
        ["request", r.id, p.request],
        ["purpose", r.purpose, p.purpose],
        ["fields", jsonOf(r.fields), p.fields],
        ["periodFrom", dayOf(r.period_from), p.periodFrom],
        ["periodTo", dayOf(r.period_to), p.periodTo],
        ["institution", textMatches(ctx, p, "institution", r.institution), true],
        ["justification", textMatches(ctx, p, "justification", r.justification), true],
        actorPair(r, p),
      ],
      label: () => "data-use request",
      namesOnly: true,
    },
    {
      table: "data_use_decisions",
      column: "entry_id",
      kind: "data_use.decided",
      compare: (r, p) => [
        ["decision", r.id, p.decision],
        ["request", r.request_id, p.request],
        ["outcome", r.outcome, p.outcome],
        ["reason", textMatches(ctx, p, "reason", r.reason), true],
        ["expiresInDays", num(r.expires_in_days), p.expiresInDays ?? null],
        actorPair(r, p),
      ],
      label: () => "data-use decision",
      namesOnly: true,
    },
    {
      // The purpose through the request, the participants through membersHash: dataSharingFindings.
      table: "data_use_deliveries",
      column: "entry_id",
      kind: "data_use.delivered",
      compare: (r, p) => [
        ["delivery", r.id, p.delivery],
        ["request", r.request_id, p.request],
        ["manifestSha256", hexOf(r.manifest_sha256), p.manifestSha256],
        ["manifest", sha(utf8(String(r.manifest ?? ""))), p.manifestSha256],
        ["participants", num(r.participant_count), p.participants],
        ["excluded", jsonOf(r.excluded), p.excluded],
        ["expiresAt", msOf(r.expires_at), msOf(p.expiresAt)],
        actorPair(r, p),
      ],
      label: () => "data-use delivery",
      namesOnly: true,
    },
  ];
}

/** Each kind's row id field in its payload, and what the row was in words (from the payload alone). */
const SHARING_ROWS: Record<string, { table: string; id: string; what: (p: Record<string, unknown>) => string }> = {
  "consent.choices_changed": {
    table: "consent_choice_changes",
    id: "change",
    what: (p) => `choice change of ${p.subject} ${p.byParticipant ? "by the participant" : "recorded by staff"}`,
  },
  "data_use.requested": {
    table: "data_use_requests",
    id: "request",
    what: (p) => `data-use request for purpose ${p.purpose}`,
  },
  "data_use.decided": {
    table: "data_use_decisions",
    id: "decision",
    what: (p) => `decision (${p.outcome}) on data-use request ${p.request}`,
  },
  "data_use.delivered": {
    table: "data_use_deliveries",
    id: "delivery",
    what: (p) => `delivery of ${p.participants} participants for data-use request ${p.request}`,
  },
};
const SHARING_TABLES = new Set(Object.values(SHARING_ROWS).map((x) => x.table));

/** As drug-supply-checks: how much later than its entry a row's created_at may be (clocks), and how much earlier
 * than its transaction's first entry (the work a transaction does before it appends, a lock wait). */
const CREATED_AFTER_ENTRY_MS = 1_000;
const CREATED_BEFORE_ENTRY_MS = 60_000;

export async function dataSharingFindings(
  ctx: AppContext,
  study: { id: string; code: string },
  findings: AuditFinding[],
): Promise<{ rows: number }> {
  const push = (x: Omit<AuditFinding, "study" | "severity">) =>
    findings.push({ ...x, severity: "tamper", study: study.code });
  const q = async (query: ReturnType<typeof sql>) => rowsOf<Row>(await ctx.db.execute(query));
  let rows = 0;
  const mismatch = (table: string, id: string, what: string, field: string, seq?: number) =>
    push({
      code: "DATA_ROW_MISMATCH",
      table,
      id,
      seq,
      field,
      message: `${table} row ${id} (${what}): ${field} differs between the database and its ledger entry`,
    });

  // Entries whose row is gone: named by the row's id and what it was (replacing the linked tables' findings, which
  // name only the entry). A row moved to another study counts as gone from this one.
  for (let i = findings.length - 1; i >= 0; i--) {
    const x = findings[i];
    if (x.study === study.code && x.code === "DATA_ROW_MISSING" && x.table && SHARING_TABLES.has(x.table))
      findings.splice(i, 1);
  }
  for (const [kind, d] of Object.entries(SHARING_ROWS))
    for (const e of await q(
      sql`SELECT e.id, e.seq, e.payload_text FROM ledger_entries e WHERE e.study_id = ${study.id}
          AND e.kind = ${kind} AND NOT EXISTS (SELECT 1 FROM ${sql.identifier(d.table)} t WHERE t.entry_id = e.id
            AND t.study_id = e.study_id)
          ORDER BY e.seq NULLS LAST, e.id`,
    )) {
      const p = payloadOf({ e_payload: e.payload_text }) ?? {};
      const where = e.seq === null || e.seq === undefined ? `entry ${e.id}` : `seq ${e.seq}`;
      push({
        code: "DATA_ROW_MISSING",
        table: d.table,
        id: String(p[d.id] ?? ""),
        seq: e.seq === null || e.seq === undefined ? undefined : Number(e.seq),
        message:
          `${d.table} row ${String(p[d.id] ?? "?")} (${d.what(p)}) is gone: ` +
          `the ${kind} entry ${where} names it but the database has no such row (deleted?)`,
      });
    }

  // Choice changes: the subject through the participant (of this study).
  for (const r of await q(
    sql`SELECT c.id, p.subject_code, p.study_id AS p_study, e.payload_text AS e_payload, e.seq AS e_seq
        FROM consent_choice_changes c
        LEFT JOIN participants p ON p.id = c.participant_id
        LEFT JOIN ledger_entries e ON e.id = c.entry_id AND e.kind = 'consent.choices_changed'
        WHERE c.study_id = ${study.id} ORDER BY c.id`,
  )) {
    rows++;
    const p = payloadOf(r);
    if (!p) continue; // no entry: named by its linked table
    const subject = r.p_study === study.id ? (r.subject_code ?? null) : null;
    if (subject !== p.subject)
      mismatch("consent_choice_changes", String(r.id), `choice change of ${p.subject}`, "subject", seqOf(r));
  }

  // Decisions and deliveries: their request is of this study; a delivery's purpose is its request's.
  for (const g of [
    { table: "data_use_decisions", kind: "data_use.decided", what: "data-use decision" },
    { table: "data_use_deliveries", kind: "data_use.delivered", what: "data-use delivery" },
  ])
    for (const r of await q(
      sql`SELECT t.id, q.study_id AS q_study, q.purpose, e.payload_text AS e_payload, e.seq AS e_seq
          FROM ${sql.identifier(g.table)} t
          LEFT JOIN data_use_requests q ON q.id = t.request_id
          LEFT JOIN ledger_entries e ON e.id = t.entry_id AND e.kind = ${g.kind}
          WHERE t.study_id = ${study.id} ORDER BY t.id`,
    )) {
      const p = payloadOf(r);
      if (!p) continue;
      if (r.q_study !== study.id) mismatch(g.table, String(r.id), g.what, "requestStudy", seqOf(r));
      if (g.kind === "data_use.delivered" && (r.purpose ?? null) !== p.purpose)
        mismatch(g.table, String(r.id), g.what, "purpose", seqOf(r));
    }

  // Each delivery's participants against its sealed membersHash (and count). Where one row explains the
  // difference, it is named: the one row whose removal restores the hash (inserted), or the one participant of the
  // study whose addition does (deleted).
  const held = new Map<string, string[]>();
  for (const l of await q(
    sql`SELECT l.delivery_id, l.participant_id, l.study_id, p.study_id AS p_study
        FROM data_use_delivery_participants l LEFT JOIN participants p ON p.id = l.participant_id
        WHERE l.study_id = ${study.id} OR l.delivery_id IN (SELECT id FROM data_use_deliveries
          WHERE study_id = ${study.id}) ORDER BY l.delivery_id, l.participant_id`,
  )) {
    rows++;
    const id = `${l.delivery_id}/${l.participant_id}`;
    if (l.study_id !== study.id || l.p_study !== study.id)
      push({
        code: "DATA_ROW_MISMATCH",
        table: "data_use_delivery_participants",
        id,
        field: "study",
        message:
          `data_use_delivery_participants row ${id}: the row, its delivery and its participant are not all of ` +
          "this study (moved behind the portal's back?)",
      });
    held.set(String(l.delivery_id), [...(held.get(String(l.delivery_id)) ?? []), String(l.participant_id)]);
  }
  let studyParticipants: string[] | null = null;
  for (const r of await q(
    sql`SELECT d.id, e.payload_text AS e_payload, e.seq AS e_seq FROM data_use_deliveries d
        LEFT JOIN ledger_entries e ON e.id = d.entry_id AND e.kind = 'data_use.delivered'
        WHERE d.study_id = ${study.id} ORDER BY d.id`,
  )) {
    const p = payloadOf(r);
    const salt = p?.salt;
    if (!p || typeof salt !== "string") continue;
    const ids = held.get(String(r.id)) ?? [];
    const sealed = String(p.membersHash);
    if (membersHash(ctx.crypto, salt, ids) === sealed && ids.length === Number(p.participants)) continue;
    const where = seqOf(r) === undefined ? "" : ` seq ${seqOf(r)}`;
    const inserted = ids.find(
      (x) =>
        membersHash(
          ctx.crypto,
          salt,
          ids.filter((y) => y !== x),
        ) === sealed,
    );
    if (inserted) {
      push({
        code: "DATA_ROW_UNLOGGED",
        table: "data_use_delivery_participants",
        id: `${r.id}/${inserted}`,
        seq: seqOf(r),
        message:
          `data_use_delivery_participants row (delivery ${r.id}, participant ${inserted}) is not among the ` +
          `participants sealed in its data_use.delivered entry${where} (inserted behind the portal's back?)`,
      });
      continue;
    }
    studyParticipants ??= (await q(sql`SELECT id FROM participants WHERE study_id = ${study.id} ORDER BY id`)).map(
      (x) => String(x.id),
    );
    const have = new Set(ids);
    const deleted = studyParticipants.find(
      (x) => !have.has(x) && membersHash(ctx.crypto, salt, [...ids, x]) === sealed,
    );
    push({
      code: deleted ? "DATA_ROW_MISSING" : "DATA_ROW_MISMATCH",
      table: "data_use_delivery_participants",
      id: deleted ? `${r.id}/${deleted}` : String(r.id),
      seq: seqOf(r),
      field: deleted ? undefined : "membersHash",
      message: deleted
        ? `data_use_delivery_participants row (delivery ${r.id}, participant ${deleted}) is gone: the ` +
          `data_use.delivered entry${where} seals it but the database does not hold it (deleted?)`
        : `data_use_deliveries row ${r.id}: its participant rows (${ids.length}) are not the ${p.participants} ` +
          `sealed in its data_use.delivered entry${where} (rows deleted or inserted behind the portal's back?)`,
    });
  }

  // Each delivery's stored package (the ZIP the researcher downloads): manifest.json inside it against the sealed
  // manifestSha256, data.csv against the manifest's SHA-256 (verifyDeliveryPackage); named by delivery id.
  for (const r of await q(
    sql`SELECT d.id, d.entry_id, d.content, d.manifest_sha256, e.seq AS e_seq FROM data_use_deliveries d
        JOIN ledger_entries e ON e.id = d.entry_id AND e.kind = 'data_use.delivered'
        WHERE d.study_id = ${study.id} ORDER BY d.id`,
  )) {
    const problem = await verifyDeliveryPackage(ctx, {
      id: String(r.id),
      entryId: String(r.entry_id),
      content: bytesOf(r.content),
      manifestSha256: bytesOf(r.manifest_sha256),
    });
    if (problem)
      push({
        code: "DATA_ROW_MISMATCH",
        table: "data_use_deliveries",
        id: String(r.id),
        seq: seqOf(r),
        field: "content",
        message: `data_use_deliveries row ${r.id}: its stored package differs from what was sealed (${problem})`,
      });
  }

  // created_at: written in its entry's transaction (see drug-supply-checks): a row back- or forward-dated is named.
  for (const table of [...SHARING_TABLES].sort()) {
    const all = await q(
      sql`SELECT t.id, (extract(epoch FROM t.created_at) * 1000)::float8 AS created_ms,
                 (extract(epoch FROM e.at) * 1000)::float8 AS at_ms, e.seq AS e_seq
          FROM ${sql.identifier(table)} t JOIN ledger_entries e ON e.id = t.entry_id
          WHERE t.study_id = ${study.id} ORDER BY t.id`,
    );
    const firstAt = new Map<number, number>();
    for (const r of all) {
      const c = Number(r.created_ms);
      firstAt.set(c, Math.min(firstAt.get(c) ?? Number.POSITIVE_INFINITY, Number(r.at_ms)));
    }
    for (const r of all) {
      const c = Number(r.created_ms);
      const late = c - Number(r.at_ms) > CREATED_AFTER_ENTRY_MS;
      const early = (firstAt.get(c) ?? c) - c > CREATED_BEFORE_ENTRY_MS;
      if (late || early)
        push({
          code: "DATA_ROW_MISMATCH",
          table,
          id: String(r.id),
          seq: seqOf(r),
          field: "createdAt",
          message:
            `${table} row ${r.id}: created_at ${new Date(c).toISOString()} is not its ledger entry's time ` +
            `(${new Date(Number(r.at_ms)).toISOString()}): ${late ? "after" : "before"} it (dated behind the ` +
            "portal's back?)",
        });
    }
  }
  return { rows };
}
