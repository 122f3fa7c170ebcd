/**
 * Issue 21's tables in the integrity audit (ADR 0056-0065, ADR 0061): every supply table's rows against their entries
 * (lots, releases, recalls, kits, shipments and their kits, receipts, quarantine decisions, dispensings, returns,
 * destructions and their kits and witnesses, reconciliations), and the supply's own findings.
 * - Linked tables (drugSupplyLinks): each row field by field against its entry; free text (product, CoA file name,
 *   reasons, method) through its salted hash, the blinded commitments (blindHash) recomputed from the row's kit type,
 *   lot and secret nonce, the label token's SHA-256, the certificate's and the logger file's SHA-256 against the row's
 *   AND against the stored bytes, the actor and the API token.
 * - drugSupplyFindings: what a linked table cannot see on its own row (kit numbers, subject and site codes through
 *   their joins); each shipment's and destruction's kits against the kit list sealed in its entry (a link row deleted
 *   or inserted is named); a destruction witnessed by its recorder (WITNESS_IS_RECORDER); a dispensed kit whose type
 *   is not the participant's allocated slot's (KIT_TYPE_MISMATCH); a kit of a recalled lot dispensed after the recall
 *   (DISPENSED_AFTER_RECALL); and every supply entry whose row is gone, named by the row's id and what it was.
 * Messages name the table and the row (id, kit number, shipment number, subject code), never a kit type or which lot
 * a kit is of: the report is read by blinded roles (ADR 0057).
 */
import { sql } from "drizzle-orm";
import { fromHex, toBase64Url, toHex, utf8 } from "../../anchoring/log/bytes.ts";
import { canonicalize } from "../../anchoring/log/canonical.ts";
import { hashedTextMatches } from "../../anchoring/log/text-hash.ts";
import { kitBlindHash, lotBlindHash } from "../../anchoring/supply/blind-hash.ts";
import type { AuditFinding } from "../../anchoring/verifier/log-auditor.ts";
import { rowsOf } from "../../db/queries/rows.ts";
import type { AppContext } from "../platform/context.server.ts";
import { hexOf, type LinkedTable, payloadOf, type Row, seqOf, tokenPairs } from "./linked-table.ts";

/** A bytea column's bytes (PGlite and postgres.js differ in how they hand it over). */
function bytesOf(v: unknown): Uint8Array {
  if (v instanceof Uint8Array) return v;
  if (typeof v === "string" && v.startsWith("\\x")) return fromHex(v.slice(2));
  return new Uint8Array(0);
}
/** A date column as YYYY-MM-DD (a Date at UTC midnight from some drivers, text from others). */
const dayOf = (v: unknown) => (v instanceof Date ? v.toISOString().slice(0, 10) : v === null ? null : String(v));
const num = (v: unknown) => (v === null || v === undefined ? null : Number(v));
const textMatches = (ctx: AppContext, p: Record<string, unknown>, field: string, v: unknown) =>
  hashedTextMatches(ctx.crypto, p, field, v === null || v === undefined ? null : String(v));
const actorPair = (r: Row, p: Record<string, unknown>): [string, unknown, unknown] => [
  "actor",
  r.actor_user_id ?? null,
  p.actor ?? null,
];

/** The row's blinded commitment recomputed from its kit type, lot and nonce (anchoring/supply/blind-hash.ts). */
export function rowBlindHash(ctx: AppContext, table: "supply_lots" | "supply_kits", r: Row): string {
  const nonce = toBase64Url(bytesOf(r.blind_nonce));
  return table === "supply_lots"
    ? lotBlindHash(ctx.crypto, { lot: String(r.id), kitType: String(r.kit_type), nonce })
    : kitBlindHash(ctx.crypto, { kit: String(r.id), lot: String(r.lot_id), kitType: String(r.kit_type), nonce });
}

export function drugSupplyLinks(ctx: AppContext): LinkedTable[] {
  const sha = (b: Uint8Array) => toHex(ctx.crypto.sha256(b));
  return [
    {
      table: "supply_lots",
      column: "entry_id",
      kind: "supply.lot_registered",
      compare: (r, p) => {
        const coa = bytesOf(r.coa_content);
        return [
          ["lot", r.id, p.lot],
          ["lotNumber", r.lot_number, p.lotNumber],
          ["product", textMatches(ctx, p, "product", r.product), true],
          ["blindHash", rowBlindHash(ctx, "supply_lots", r), p.blindHash],
          ["manufacturedOn", dayOf(r.manufactured_on), p.manufacturedOn],
          ["expiresOn", dayOf(r.expires_on), p.expiresOn],
          ["storageMinTenths", num(r.storage_min_tenths), p.storageMinTenths],
          ["storageMaxTenths", num(r.storage_max_tenths), p.storageMaxTenths],
          ["dailyUnits", num(r.daily_units), p.dailyUnits],
          ["coaSha256", hexOf(r.coa_sha256), p.coaSha256],
          ["coaContent", sha(coa), p.coaSha256],
          ["coaBytes", num(r.coa_bytes), p.coaBytes],
          ["coaContentBytes", coa.length, p.coaBytes],
          ["coaName", textMatches(ctx, p, "coaName", r.coa_file_name), true],
          actorPair(r, p),
          ...tokenPairs(r, p),
        ];
      },
      label: (r) => `lot ${r.lot_number}`,
      namesOnly: true,
    },
    {
      table: "supply_lot_releases",
      column: "entry_id",
      kind: "supply.lot_released",
      compare: (r, p) => [["release", r.id, p.release], ["lot", r.lot_id, p.lot], actorPair(r, p), ...tokenPairs(r, p)],
      label: () => "lot release",
    },
    {
      table: "supply_lot_recalls",
      column: "entry_id",
      kind: "supply.lot_recalled",
      compare: (r, p) => [
        ["recall", r.id, p.recall],
        ["lot", r.lot_id, p.lot],
        ["reason", textMatches(ctx, p, "reason", r.reason), true],
        ["kitsBlocked", num(r.kits_blocked), p.kitsBlocked],
        ["subjectsAffected", num(r.subjects_affected), p.subjectsAffected],
        ["sitesNotified", num(r.sites_notified), p.sitesNotified],
        actorPair(r, p),
        ...tokenPairs(r, p),
      ],
      label: () => "lot recall",
      namesOnly: true,
    },
    {
      // The kit's lot and type only through blindHash: a kit moved to another lot or relabelled is named by it.
      table: "supply_kits",
      column: "entry_id",
      kind: "supply.kit_registered",
      compare: (r, p) => [
        ["kit", r.id, p.kit],
        ["number", r.number, p.number],
        ["blindHash", rowBlindHash(ctx, "supply_kits", r), p.blindHash],
        ["units", num(r.units), p.units],
        ["labelTokenHash", sha(utf8(String(r.label_token))), p.labelTokenHash],
        actorPair(r, p),
        ...tokenPairs(r, p),
      ],
      label: (r) => `kit ${r.number}`,
      namesOnly: true,
    },
    {
      // Site code and kit list through joins: drugSupplyFindings.
      table: "supply_shipments",
      column: "entry_id",
      kind: "supply.shipment_sent",
      compare: (r, p) => [
        ["shipment", r.id, p.shipment],
        ["number", r.number, p.number],
        ["depot", r.depot, p.depot],
        actorPair(r, p),
        ...tokenPairs(r, p),
      ],
      label: (r) => `shipment ${r.number}`,
    },
    {
      table: "supply_shipment_receipts",
      column: "entry_id",
      kind: "supply.shipment_received",
      compare: (r, p) => {
        const logger = r.logger_content === null || r.logger_content === undefined ? null : bytesOf(r.logger_content);
        return [
          ["receipt", r.id, p.receipt],
          ["shipment", r.shipment_id, p.shipment],
          ["temperatureMinTenths", num(r.temperature_min_tenths), p.temperatureMinTenths],
          ["temperatureMaxTenths", num(r.temperature_max_tenths), p.temperatureMaxTenths],
          ["loggerSha256", r.logger_sha256 === null ? null : hexOf(r.logger_sha256), p.loggerSha256],
          ["loggerContent", logger === null ? null : sha(logger), p.loggerSha256],
          ["loggerBytes", num(r.logger_bytes), p.loggerBytes ?? null],
          ["loggerContentBytes", logger === null ? null : logger.length, p.loggerBytes ?? null],
          [
            "loggerName",
            r.logger_file_name === null || r.logger_file_name === undefined
              ? (p.loggerNameHash ?? null) === null
              : textMatches(ctx, p, "loggerName", r.logger_file_name),
            true,
          ],
          ["excursion", Boolean(r.excursion), p.excursion],
          actorPair(r, p),
          ...tokenPairs(r, p),
        ];
      },
      label: () => "shipment receipt",
    },
    {
      table: "supply_quarantine_decisions",
      column: "entry_id",
      kind: "supply.quarantine_decided",
      compare: (r, p) => [
        ["decision", r.id, p.decision],
        ["shipment", r.shipment_id, p.shipment],
        ["outcome", r.outcome, p.outcome],
        ["reason", textMatches(ctx, p, "reason", r.reason), true],
        actorPair(r, p),
        ...tokenPairs(r, p),
      ],
      label: () => "quarantine decision",
      namesOnly: true,
    },
    {
      // Kit number, subject and site through joins: drugSupplyFindings.
      table: "supply_kit_assignments",
      column: "entry_id",
      kind: "supply.kit_assigned",
      compare: (r, p) => [
        ["assignment", r.id, p.assignment],
        ["kit", r.kit_id, p.kit],
        ["visit", r.visit ?? null, p.visit ?? null],
        actorPair(r, p),
        ...tokenPairs(r, p),
      ],
      label: () => "kit assignment",
    },
    {
      // Kit number, subject and site through joins: drugSupplyFindings.
      table: "supply_dispensings",
      column: "entry_id",
      kind: "supply.kit_dispensed",
      compare: (r, p) => [
        ["dispensing", r.id, p.dispensing],
        ["kit", r.kit_id, p.kit],
        ["visit", r.visit ?? null, p.visit ?? null],
        actorPair(r, p),
        ...tokenPairs(r, p),
      ],
      label: () => "dispensing",
    },
    {
      table: "supply_returns",
      column: "entry_id",
      kind: "supply.kit_returned",
      compare: (r, p) => [
        ["return", r.id, p.return],
        ["kit", r.kit_id, p.kit],
        ["unitsReturned", num(r.units_returned), p.unitsReturned],
        ["unitsDispensed", num(r.units_dispensed), p.unitsDispensed],
        ["compliancePercent", num(r.compliance_percent), p.compliancePercent],
        ["returnedOn", dayOf(r.returned_on), p.returnedOn],
        actorPair(r, p),
        ...tokenPairs(r, p),
      ],
      label: () => "return",
    },
    {
      // Site code and kit list through joins: drugSupplyFindings.
      table: "supply_destructions",
      column: "entry_id",
      kind: "supply.destruction_recorded",
      compare: (r, p) => [
        ["destruction", r.id, p.destruction],
        ["method", textMatches(ctx, p, "method", r.method), true],
        actorPair(r, p),
        ...tokenPairs(r, p),
      ],
      label: () => "destruction",
      namesOnly: true,
    },
    {
      table: "supply_destruction_witnesses",
      column: "entry_id",
      kind: "supply.destruction_witnessed",
      compare: (r, p) => [
        ["witness", r.id, p.witness],
        ["destruction", r.destruction_id, p.destruction],
        actorPair(r, p),
        ...tokenPairs(r, p),
      ],
      label: () => "destruction witness",
    },
    {
      table: "supply_reconciliations",
      column: "entry_id",
      kind: "supply.reconciled",
      compare: (r, p) => {
        const list = (t: unknown) => {
          try {
            return JSON.parse(String(t)) as unknown;
          } catch {
            return String(t);
          }
        };
        // The counted list is sealed only through its size and the kits it names that differ: it must hold
        // p.counted distinct kit numbers, every unexpected kit and none of the missing ones.
        const counted = list(r.counted_text);
        const countedFits =
          Array.isArray(counted) &&
          new Set(counted.map(String)).size === counted.length &&
          counted.length === p.counted &&
          ((p.unexpected as unknown[] | undefined) ?? []).every((k) => counted.includes(k)) &&
          !((p.missing as unknown[] | undefined) ?? []).some((k) => counted.includes(k));
        return [
          ["reconciliation", r.id, p.reconciliation],
          ["expected", num(r.expected), p.expected],
          ["counted", num(r.counted), p.counted],
          ["countedText", countedFits, true],
          ["missing", list(r.missing_text), p.missing],
          ["unexpected", list(r.unexpected_text), p.unexpected],
          actorPair(r, p),
          ...tokenPairs(r, p),
        ];
      },
      label: () => "reconciliation",
      namesOnly: true,
    },
  ];
}

/**
 * The fields of one supply row that differ from its entry's payload (empty: it matches), by the audit's own
 * comparison: the kit's page and the accountability log mark such a row instead of calling it sealed.
 */
export function supplyRowDiffers(ctx: AppContext, table: string, row: Row, payload: Record<string, unknown>): string[] {
  const t = drugSupplyLinks(ctx).find((x) => x.table === table);
  if (!t) return [];
  return t
    .compare(row, payload)
    .filter(([, a, b]) => canonicalize(a ?? null) !== canonicalize(b ?? null))
    .map(([field]) => field);
}

/** Each supply kind's row id field in its payload, and what the row was in words (from the payload alone). */
const SUPPLY_ROWS: Record<string, { table: string; id: string; what: (p: Record<string, unknown>) => string }> = {
  "supply.lot_registered": { table: "supply_lots", id: "lot", what: (p) => `lot ${p.lotNumber}` },
  "supply.lot_released": { table: "supply_lot_releases", id: "release", what: (p) => `release of lot ${p.lot}` },
  "supply.lot_recalled": { table: "supply_lot_recalls", id: "recall", what: (p) => `recall of lot ${p.lot}` },
  "supply.kit_registered": { table: "supply_kits", id: "kit", what: (p) => `kit ${p.number}` },
  "supply.shipment_sent": {
    table: "supply_shipments",
    id: "shipment",
    what: (p) => `shipment ${p.number} to site ${p.site}`,
  },
  "supply.shipment_received": {
    table: "supply_shipment_receipts",
    id: "receipt",
    what: (p) => `receipt of shipment ${p.shipment}`,
  },
  "supply.quarantine_decided": {
    table: "supply_quarantine_decisions",
    id: "decision",
    what: (p) => `quarantine decision (${p.outcome}) on shipment ${p.shipment}`,
  },
  "supply.kit_assigned": {
    table: "supply_kit_assignments",
    id: "assignment",
    what: (p) => `assignment of kit ${p.number} to ${p.subject} at site ${p.site}`,
  },
  "supply.kit_dispensed": {
    table: "supply_dispensings",
    id: "dispensing",
    what: (p) => `dispensing of kit ${p.number} to ${p.subject} at site ${p.site}`,
  },
  "supply.kit_returned": {
    table: "supply_returns",
    id: "return",
    what: (p) => `return of kit ${p.number} by ${p.subject}`,
  },
  "supply.destruction_recorded": {
    table: "supply_destructions",
    id: "destruction",
    what: (p) => `destruction of kits ${((p.kits as string[] | undefined) ?? []).join(", ")}`,
  },
  "supply.destruction_witnessed": {
    table: "supply_destruction_witnesses",
    id: "witness",
    what: (p) => `witness of destruction ${p.destruction}`,
  },
  "supply.reconciled": {
    table: "supply_reconciliations",
    id: "reconciliation",
    what: (p) => `reconciliation of site ${p.site}`,
  },
};
const SUPPLY_TABLES = new Set(Object.values(SUPPLY_ROWS).map((x) => x.table));

/** How much later than its entry a row's created_at may be (clocks), and how much earlier than its transaction's
 * first entry (the work a transaction does before it appends, a lock wait). */
const CREATED_AFTER_ENTRY_MS = 1_000;
const CREATED_BEFORE_ENTRY_MS = 60_000;

/** Order of two entries in the log: by seq, a pending one (no seq yet) after every sealed one, then by time. */
function after(a: { seq: unknown; at: unknown }, b: { seq: unknown; at: unknown }): boolean {
  const sa = a.seq === null || a.seq === undefined ? Number.POSITIVE_INFINITY : Number(a.seq);
  const sb = b.seq === null || b.seq === undefined ? Number.POSITIVE_INFINITY : Number(b.seq);
  if (sa !== sb) return sa > sb;
  return new Date(String(a.at)).getTime() > new Date(String(b.at)).getTime();
}

export async function drugSupplyFindings(
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

  // Entries whose row is gone: named by the row's id and what it was (the linked tables' own DATA_ROW_MISSING
  // findings name only the entry; they are replaced here).
  for (let i = findings.length - 1; i >= 0; i--) {
    const x = findings[i];
    if (x.study === study.code && x.code === "DATA_ROW_MISSING" && x.table && SUPPLY_TABLES.has(x.table))
      findings.splice(i, 1);
  }
  for (const [kind, d] of Object.entries(SUPPLY_ROWS))
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

  // Assignments: kit number, subject and site through their joins.
  for (const r of await q(
    sql`SELECT a.id, k.number, p.subject_code, s.code AS site_code, e.payload_text AS e_payload, e.seq AS e_seq
        FROM supply_kit_assignments a
        LEFT JOIN supply_kits k ON k.id = a.kit_id
        LEFT JOIN participants p ON p.id = a.participant_id
        LEFT JOIN sites s ON s.id = a.site_id
        LEFT JOIN ledger_entries e ON e.id = a.entry_id AND e.kind = 'supply.kit_assigned'
        WHERE a.study_id = ${study.id} ORDER BY a.id`,
  )) {
    rows++;
    const p = payloadOf(r);
    const what = `kit ${r.number ?? "?"} assigned to ${r.subject_code ?? "?"}`;
    if (p)
      for (const [field, a, b] of [
        ["number", r.number ?? null, p.number],
        ["subject", r.subject_code ?? null, p.subject],
        ["site", r.site_code ?? null, p.site],
      ] as const)
        if (a !== b) mismatch("supply_kit_assignments", String(r.id), what, field, seqOf(r));
  }

  // created_at: a row is written in its entry's transaction, so its created_at (the transaction's start on the
  // database clock) is at most its entry's time and shortly before the first entry of that transaction (the rows
  // sharing its created_at). A row back- or forward-dated behind the portal's back is named: exports and the
  // compliance computation read created_at.
  for (const table of [...SUPPLY_TABLES].sort()) {
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

  // Dispensings: kit number, subject and site through their joins; the kit's type against the allocated slot's;
  // the allocation's participant; a kit of a recalled lot dispensed after the recall.
  for (const r of await q(
    sql`SELECT d.id, d.participant_id, a.participant_id AS a_participant, k.number, k.kit_type,
               sl.kit_type AS slot_kit_type, p.subject_code, s.code AS site_code,
               e.payload_text AS e_payload, e.seq AS e_seq, e.at AS e_at,
               rc.id AS recall_id, re.seq AS recall_seq, re.at AS recall_at
        FROM supply_dispensings d
        LEFT JOIN supply_kits k ON k.id = d.kit_id
        LEFT JOIN participants p ON p.id = d.participant_id
        LEFT JOIN sites s ON s.id = d.site_id
        LEFT JOIN randomization_allocations a ON a.id = d.allocation_id
        LEFT JOIN randomization_slots sl ON sl.id = a.slot_id
        LEFT JOIN supply_lot_recalls rc ON rc.lot_id = k.lot_id
        LEFT JOIN ledger_entries re ON re.id = rc.entry_id
        LEFT JOIN ledger_entries e ON e.id = d.entry_id AND e.kind = 'supply.kit_dispensed'
        WHERE d.study_id = ${study.id} ORDER BY d.id`,
  )) {
    rows++;
    const id = String(r.id);
    const what = `kit ${r.number ?? "?"} dispensed to ${r.subject_code ?? "?"}`;
    const p = payloadOf(r);
    if (p)
      for (const [field, a, b] of [
        ["number", r.number ?? null, p.number],
        ["subject", r.subject_code ?? null, p.subject],
        ["site", r.site_code ?? null, p.site],
      ] as const)
        if (a !== b) mismatch("supply_dispensings", id, what, field, seqOf(r));
    if (r.a_participant !== r.participant_id) mismatch("supply_dispensings", id, what, "allocation", seqOf(r));
    if (r.kit_type !== null && r.slot_kit_type !== null && r.kit_type !== r.slot_kit_type)
      push({
        code: "KIT_TYPE_MISMATCH",
        table: "supply_dispensings",
        id,
        seq: seqOf(r),
        message:
          `supply_dispensings row ${id}: ${what} is not of the kit type of the participant's allocated ` +
          "randomization slot (a wrong kit dispensed, or a kit or slot changed behind the portal)",
      });
    if (r.recall_id && p && after({ seq: r.e_seq, at: r.e_at }, { seq: r.recall_seq, at: r.recall_at }))
      push({
        code: "DISPENSED_AFTER_RECALL",
        table: "supply_dispensings",
        id,
        seq: seqOf(r),
        message:
          `supply_dispensings row ${id}: ${what} after its lot was recalled ` +
          `(recall${r.recall_seq === null ? "" : ` seq ${r.recall_seq}`}); the portal refuses that dispensing`,
      });
  }

  // Returns: kit number and subject through their joins; the dispensing returned is of the same kit.
  for (const r of await q(
    sql`SELECT r.id, r.kit_id, d.kit_id AS d_kit, k.number, p.subject_code,
               e.payload_text AS e_payload, e.seq AS e_seq
        FROM supply_returns r
        LEFT JOIN supply_kits k ON k.id = r.kit_id
        LEFT JOIN supply_dispensings d ON d.id = r.dispensing_id
        LEFT JOIN participants p ON p.id = d.participant_id
        LEFT JOIN ledger_entries e ON e.id = r.entry_id AND e.kind = 'supply.kit_returned'
        WHERE r.study_id = ${study.id} ORDER BY r.id`,
  )) {
    rows++;
    const id = String(r.id);
    const what = `kit ${r.number ?? "?"} returned by ${r.subject_code ?? "?"}`;
    const p = payloadOf(r);
    if (p)
      for (const [field, a, b] of [
        ["number", r.number ?? null, p.number],
        ["subject", r.subject_code ?? null, p.subject],
      ] as const)
        if (a !== b) mismatch("supply_returns", id, what, field, seqOf(r));
    if (r.d_kit !== r.kit_id) mismatch("supply_returns", id, what, "dispensing", seqOf(r));
  }

  // Shipments and destructions: the site through its join, and the kit links against the sealed kit list.
  for (const g of [
    {
      table: "supply_shipments",
      links: "supply_shipment_kits",
      key: "shipment_id",
      kind: "supply.shipment_sent",
      what: (r: Row) => `shipment ${r.number}`,
    },
    {
      table: "supply_destructions",
      links: "supply_destruction_kits",
      key: "destruction_id",
      kind: "supply.destruction_recorded",
      what: () => "destruction",
    },
  ]) {
    const parents = new Map<string, { row: Row; kits: Set<string> | null }>();
    for (const r of await q(
      sql`SELECT t.*, s.code AS site_code, e.payload_text AS e_payload, e.seq AS e_seq
          FROM ${sql.identifier(g.table)} t LEFT JOIN sites s ON s.id = t.site_id
          LEFT JOIN ledger_entries e ON e.id = t.entry_id AND e.kind = ${g.kind}
          WHERE t.study_id = ${study.id} ORDER BY t.id`,
    )) {
      rows++;
      const p = payloadOf(r);
      parents.set(String(r.id), { row: r, kits: p && Array.isArray(p.kits) ? new Set(p.kits.map(String)) : null });
      if (p && (r.site_code ?? null) !== (p.site ?? null)) mismatch(g.table, String(r.id), g.what(r), "site", seqOf(r));
    }
    const held = new Map<string, Set<string>>();
    for (const l of await q(
      sql`SELECT l.${sql.identifier(g.key)} AS parent, l.kit_id, k.number FROM ${sql.identifier(g.links)} l
          LEFT JOIN supply_kits k ON k.id = l.kit_id WHERE l.study_id = ${study.id}
          ORDER BY l.${sql.identifier(g.key)}, k.number`,
    )) {
      rows++;
      const parent = parents.get(String(l.parent));
      const number = l.number === null || l.number === undefined ? `(kit id ${l.kit_id})` : String(l.number);
      const set = held.get(String(l.parent)) ?? new Set<string>();
      held.set(String(l.parent), set.add(number));
      if (parent && parent.kits === null) continue; // the parent row has no entry: named by its linked table
      if (!parent?.kits?.has(number))
        push({
          code: "DATA_ROW_UNLOGGED",
          table: g.links,
          id: `${l.parent}/${l.kit_id}`,
          message:
            `${g.links} row (${parent ? g.what(parent.row) : `${g.key} ${l.parent}, which has no row`}, ` +
            `kit ${number}) is not in the kit list sealed in its ${g.kind} entry (inserted behind the portal's back?)`,
        });
    }
    for (const [id, parent] of parents)
      for (const number of parent.kits ?? [])
        if (!held.get(id)?.has(number))
          push({
            code: "DATA_ROW_MISSING",
            table: g.links,
            id: `${id}/${number}`,
            seq: seqOf(parent.row),
            message:
              `${g.links} row (${g.what(parent.row)}, kit ${number}) is gone: the ${g.kind} entry` +
              `${seqOf(parent.row) === undefined ? "" : ` seq ${seqOf(parent.row)}`} lists the kit ` +
              "but the database does not (deleted?)",
          });
  }

  // Witnesses: never the person who recorded the destruction.
  for (const r of await q(
    sql`SELECT w.id, w.destruction_id, w.actor_user_id, d.actor_user_id AS recorder
        FROM supply_destruction_witnesses w JOIN supply_destructions d ON d.id = w.destruction_id
        WHERE w.study_id = ${study.id} ORDER BY w.id`,
  )) {
    rows++;
    if (r.actor_user_id !== null && r.actor_user_id === r.recorder)
      push({
        code: "WITNESS_IS_RECORDER",
        table: "supply_destruction_witnesses",
        id: String(r.id),
        message:
          `supply_destruction_witnesses row ${r.id}: destruction ${r.destruction_id} is witnessed by the user ` +
          "who recorded it (a witness must be a second person)",
      });
  }

  // Reconciliations: the site through its join.
  for (const r of await q(
    sql`SELECT c.id, s.code AS site_code, e.payload_text AS e_payload, e.seq AS e_seq
        FROM supply_reconciliations c LEFT JOIN sites s ON s.id = c.site_id
        LEFT JOIN ledger_entries e ON e.id = c.entry_id AND e.kind = 'supply.reconciled'
        WHERE c.study_id = ${study.id} ORDER BY c.id`,
  )) {
    const p = payloadOf(r);
    if (p && (r.site_code ?? null) !== p.site)
      mismatch("supply_reconciliations", String(r.id), "reconciliation", "site", seqOf(r));
  }
  return { rows };
}
