/**
 * A kit's chain of custody (issue 21, ADR 0061).
 * - kitPage: the kit's page: its state in words and its history, one line per event (registered, shipped, received,
 *   the quarantine decision, dispensed, returned, destroyed, witnessed; its lot's for roles who may know the lot) with
 *   when, who, what, and a seal state checked against the entry: the row against its payload by the integrity audit's
 *   own comparison (drug-supply-checks.server.ts), the payload against its hash, the kit in the shipment's or
 *   destruction's sealed list. A row that differs is shown as such, never as sealed; an entry whose row is gone is
 *   listed too.
 * - kitCustody: the custody file `trialseal-kit-custody/1` (anchoring/verifier/verify-custody.ts): the proof bundle of
 *   every entry naming the kit, found in the log (not through the rows, so a deleted row does not drop its entry),
 *   the deployment's trust policy text, and for roles who may see kit types (or after unblinding) its lot's entries
 *   and the disclosure of the blinded commitments. Pending entries are sealed first.
 * Blinded roles never receive the kit type or which lot the kit is of (ADR 0057).
 */
import { sql } from "drizzle-orm";
import { toBase64Url, toHex, utf8 } from "../../anchoring/log/bytes.ts";
import type { Bundle } from "../../anchoring/verifier/bundle.ts";
import { CUSTODY_FORMAT, type CustodyFile, CustodyFileSchema } from "../../anchoring/verifier/verify-custody.ts";
import { firstFinalAnchorsCovering } from "../../db/queries/anchors.ts";
import { rowsOf } from "../../db/queries/rows.ts";
import { audit } from "../audit-trail/record-event.server.ts";
import { exportParticipantsDetail, participantIdsOfSubjects } from "../data-sharing/export-access.server.ts";
import { hexOf, payloadOf, type Row } from "../integrity-audit/linked-table.ts";
import { supplyRowDiffers } from "../integrity-audit/drug-supply-checks.server.ts";
import { proofBundlesOfBatch } from "../log/proofs.server.ts";
import { sealAll } from "../log/sealer.server.ts";
import type { Seal } from "../log/seal-text.ts";
import { auditActor, auditDetail, tokenLabel } from "../platform/attribution.ts";
import type { AppContext } from "../platform/context.server.ts";
import { ServiceError } from "../platform/errors.server.ts";
import { type Action, can, type Principal } from "../platform/permissions.server.ts";
import { trustPolicyText } from "../randomization/allocations-export.server.ts";
import { todayIn } from "../records/records.server.ts";
import { getStudyOrThrow } from "../studies/studies.server.ts";
import { kitFacts } from "./kit-facts.server.ts";
import { kitTypesVisible, kitStateWords } from "./inventory.server.ts";

/** No site: a kit not shipped yet is only for study-wide roles (as entryVisibleTo judges such entries). */
const NO_SITE = "00000000-0000-0000-0000-000000000000";
const KIT_NUMBER = /^[A-Z0-9][A-Z0-9-]{2,31}$/;

export interface KitEvent {
  kind: string;
  /** What happened, in words (no kit type; the lot only for roles who may know it). */
  what: string;
  at: string;
  by: string;
  seal: Seal;
  /** Fields of the row that differ from its entry (empty when it matches). */
  differs: string[];
}

/** The kit, its study and site, and whether this principal may see kit types here; refuses other sites' roles. */
async function kitFor(ctx: AppContext, principal: Principal, studyCode: string, kitNumber: string, action: Action) {
  const study = await getStudyOrThrow(ctx, studyCode);
  const number = String(kitNumber ?? "").trim();
  if (!KIT_NUMBER.test(number)) throw new ServiceError("invalid", `kit: ${JSON.stringify(number)} is not a kit number`);
  const [f] = await kitFacts(ctx.db, study.id, { numbers: [number] });
  const siteId = f?.shipment?.siteId ?? NO_SITE;
  if (!can(principal, action, { studyId: study.id, siteId }))
    throw new ServiceError(
      f && can(principal, action, { studyId: study.id }) ? "not_found" : "forbidden",
      f ? `no kit ${number} at your site` : `not permitted: ${action}`,
    );
  if (!f) throw new ServiceError("not_found", `no kit ${number} in study ${study.code}`, "kit");
  const types = await kitTypesVisible(ctx, principal, { studyId: study.id, siteId: f.shipment?.siteId ?? null });
  return { study, f, types };
}

const q = async (ctx: AppContext, query: ReturnType<typeof sql>) => rowsOf<Row>(await ctx.db.execute(query));

/** The rows about one kit in each supply table, with their entries and who made them. */
async function kitRows(ctx: AppContext, kitId: string, lotId: string | null) {
  const withEntry = (table: string, where: ReturnType<typeof sql>) =>
    q(
      ctx,
      sql`SELECT t.*, e.id AS e_id, e.kind AS e_kind, e.payload_text AS e_payload, e.payload_hash AS e_hash,
                 e.seq AS e_seq, e.batch_no AS e_batch, e.status AS e_status, e.at AS e_at, u.full_name AS by_name
          FROM ${sql.identifier(table)} t LEFT JOIN ledger_entries e ON e.id = t.entry_id
          LEFT JOIN users u ON u.id = t.actor_user_id WHERE ${where}`,
    );
  const shipments = sql`(SELECT shipment_id FROM supply_shipment_kits WHERE kit_id = ${kitId})`;
  const destructions = sql`(SELECT destruction_id FROM supply_destruction_kits WHERE kit_id = ${kitId})`;
  const out: { table: string; rows: Row[] }[] = [
    { table: "supply_kits", rows: await withEntry("supply_kits", sql`t.id = ${kitId}`) },
    { table: "supply_shipments", rows: await withEntry("supply_shipments", sql`t.id IN ${shipments}`) },
    {
      table: "supply_shipment_receipts",
      rows: await withEntry("supply_shipment_receipts", sql`t.shipment_id IN ${shipments}`),
    },
    {
      table: "supply_quarantine_decisions",
      rows: await withEntry("supply_quarantine_decisions", sql`t.shipment_id IN ${shipments}`),
    },
    { table: "supply_dispensings", rows: await withEntry("supply_dispensings", sql`t.kit_id = ${kitId}`) },
    { table: "supply_returns", rows: await withEntry("supply_returns", sql`t.kit_id = ${kitId}`) },
    { table: "supply_destructions", rows: await withEntry("supply_destructions", sql`t.id IN ${destructions}`) },
    {
      table: "supply_destruction_witnesses",
      rows: await withEntry("supply_destruction_witnesses", sql`t.destruction_id IN ${destructions}`),
    },
  ];
  if (lotId)
    out.push(
      { table: "supply_lots", rows: await withEntry("supply_lots", sql`t.id = ${lotId}`) },
      { table: "supply_lot_releases", rows: await withEntry("supply_lot_releases", sql`t.lot_id = ${lotId}`) },
      { table: "supply_lot_recalls", rows: await withEntry("supply_lot_recalls", sql`t.lot_id = ${lotId}`) },
    );
  return out;
}

const KIT_KINDS = [
  "supply.kit_registered",
  "supply.shipment_sent",
  "supply.shipment_received",
  "supply.quarantine_decided",
  "supply.kit_dispensed",
  "supply.kit_returned",
  "supply.destruction_recorded",
  "supply.destruction_witnessed",
];
const LOT_KINDS = ["supply.lot_registered", "supply.lot_released", "supply.lot_recalled"];

interface EntryRef {
  id: string;
  kind: string;
  seq: number | null;
  batch: number | null;
  status: string;
  at: Date;
  payload: Record<string, unknown>;
  payloadText: string;
  payloadHash: string;
}

/** Every entry of the study's log naming this kit (and, when `lotId`, its lot), in log order. */
async function kitEntries(
  ctx: AppContext,
  studyId: string,
  kit: { id: string; number: string },
  lotId: string | null,
): Promise<EntryRef[]> {
  const rows = await q(
    ctx,
    sql`SELECT e.id, e.kind, e.seq, e.batch_no, e.status, e.at, e.payload_text, e.payload_hash FROM ledger_entries e
        WHERE e.study_id = ${studyId} AND e.kind LIKE 'supply.%'
        AND (e.payload_text LIKE ${`%${kit.id}%`} OR e.payload_text LIKE ${`%"${kit.number}"%`}
             OR e.kind IN ('supply.shipment_received', 'supply.quarantine_decided', 'supply.destruction_witnessed')
             ${lotId ? sql`OR e.payload_text LIKE ${`%${lotId}%`}` : sql``})
        ORDER BY e.seq NULLS LAST, e.at, e.id`,
  );
  const all: EntryRef[] = rows.map((r) => ({
    id: String(r.id),
    kind: String(r.kind),
    seq: r.seq === null ? null : Number(r.seq),
    batch: r.batch_no === null ? null : Number(r.batch_no),
    status: String(r.status),
    at: new Date(String(r.at instanceof Date ? r.at.toISOString() : r.at)),
    payload: payloadOf({ e_payload: r.payload_text }) ?? {},
    payloadText: String(r.payload_text),
    payloadHash: hexOf(r.payload_hash),
  }));
  const has = (p: Record<string, unknown>) => Array.isArray(p.kits) && p.kits.includes(kit.number);
  const shipments = new Set(
    all.filter((e) => e.kind === "supply.shipment_sent" && has(e.payload)).map((e) => e.payload.shipment),
  );
  const destructions = new Set(
    all.filter((e) => e.kind === "supply.destruction_recorded" && has(e.payload)).map((e) => e.payload.destruction),
  );
  return all.filter((e) => {
    const p = e.payload;
    switch (e.kind) {
      case "supply.kit_registered":
      case "supply.kit_dispensed":
      case "supply.kit_returned":
        return p.kit === kit.id;
      case "supply.shipment_sent":
      case "supply.destruction_recorded":
        return has(p);
      case "supply.shipment_received":
      case "supply.quarantine_decided":
        return shipments.has(p.shipment);
      case "supply.destruction_witnessed":
        return destructions.has(p.destruction);
      default:
        return lotId !== null && LOT_KINDS.includes(e.kind) && p.lot === lotId;
    }
  });
}

const when = (v: unknown) => (v instanceof Date ? v.toISOString() : new Date(String(v)).toISOString());
const tenths = (v: unknown) => (v === null || v === undefined ? "?" : (Number(v) / 10).toFixed(1));

/** What a row records, in words (blinded: no kit type; a lot only where the caller passes lot rows). */
function eventWords(table: string, r: Row, names: Record<string, string>): string {
  switch (table) {
    case "supply_kits":
      return `registered with ${r.units} units`;
    case "supply_shipments":
      return `shipped in ${r.number} from ${r.depot} to site ${names[String(r.site_id)] ?? "?"}`;
    case "supply_shipment_receipts": {
      const temps =
        r.temperature_min_tenths === null && r.temperature_max_tenths === null
          ? ""
          : ` (${tenths(r.temperature_min_tenths)} °C to ${tenths(r.temperature_max_tenths)} °C)`;
      const logger = r.logger_file_name ? `, logger file ${r.logger_file_name}` : "";
      return `received at the site${temps}${logger}${r.excursion ? ": temperature excursion, quarantined" : ""}`;
    }
    case "supply_quarantine_decisions":
      return r.outcome === "release"
        ? `released from quarantine by the sponsor: ${r.reason}`
        : `rejected by the sponsor after the excursion (to be destroyed): ${r.reason}`;
    case "supply_dispensings":
      return `dispensed to ${names[String(r.participant_id)] ?? "?"}${r.visit ? ` at visit ${r.visit}` : ""}`;
    case "supply_returns":
      return (
        `returned on ${dayText(r.returned_on)}: ${r.units_returned} of ${r.units_dispensed} units back` +
        (r.compliance_percent === null ? "" : `, compliance ${r.compliance_percent}%`)
      );
    case "supply_destructions":
      return `destroyed ${r.site_id ? `at site ${names[String(r.site_id)] ?? "?"}` : "at the depot"}: ${r.method}`;
    case "supply_destruction_witnesses":
      return "destruction witnessed";
    case "supply_lots":
      return `its lot ${r.lot_number} registered (expires ${dayText(r.expires_on)})`;
    case "supply_lot_releases":
      return "its lot released by the sponsor";
    case "supply_lot_recalls":
      return `its lot recalled: ${r.reason}`;
    default:
      return table;
  }
}
const dayText = (v: unknown) => (v instanceof Date ? v.toISOString().slice(0, 10) : String(v));

/** The kit's page: state in words, and its history with seal states checked against the entries. */
export async function kitPage(ctx: AppContext, principal: Principal, studyCode: string, kitNumber: string) {
  const { study, f, types } = await kitFor(ctx, principal, studyCode, kitNumber, "supply.view");
  const lotId = types ? f.lotId : null;
  const tables = await kitRows(ctx, f.id, lotId);
  const entries = await kitEntries(ctx, study.id, { id: f.id, number: f.number }, lotId);
  // Site and subject codes by id, for the words.
  const names: Record<string, string> = {};
  for (const r of await q(ctx, sql`SELECT id, code AS name, time_zone FROM sites WHERE study_id = ${study.id}`))
    names[String(r.id)] = String(r.name);
  for (const t of tables)
    for (const r of t.rows)
      if (r.participant_id && !names[String(r.participant_id)])
        for (const p of await q(ctx, sql`SELECT subject_code FROM participants WHERE id = ${r.participant_id}`))
          names[String(r.participant_id)] = String(p.subject_code);
  const batches = new Set<number>();
  for (const t of tables)
    for (const r of t.rows) if (r.e_batch !== null && r.e_batch !== undefined) batches.add(Number(r.e_batch));
  for (const e of entries) if (e.batch !== null) batches.add(e.batch);
  const anchored = new Map<number, string[]>();
  for (const b of batches)
    anchored.set(
      b,
      (await firstFinalAnchorsCovering(ctx.db, b)).map((a) => a.ledger),
    );

  const events: (KitEvent & { order: [number, number] })[] = [];
  const seen = new Set<string>();
  for (const t of tables)
    for (const r of t.rows) {
      const p = payloadOf(r);
      const differs: string[] = [];
      if (!r.e_id || !p) differs.push("entry");
      else {
        seen.add(String(r.e_id));
        differs.push(...supplyRowDiffers(ctx, t.table, r, p));
        if (toHex(ctx.crypto.sha256(utf8(String(r.e_payload)))) !== hexOf(r.e_hash)) differs.push("payload");
        // What the row holds through its joins (site and subject codes), against the payload: the audit's own
        // comparison sees only the row's columns.
        const siteCode = (id: unknown) => (id === null || id === undefined ? null : (names[String(id)] ?? "?"));
        if (t.table === "supply_shipments" || t.table === "supply_destructions") {
          if (!(Array.isArray(p.kits) && p.kits.includes(f.number))) differs.push("kits");
          if (siteCode(r.site_id) !== (p.site ?? null)) differs.push("site");
        }
        if (t.table === "supply_dispensings" || t.table === "supply_returns") {
          if (p.number !== f.number) differs.push("number");
          const dispensing =
            t.table === "supply_dispensings"
              ? r
              : tables.find((x) => x.table === "supply_dispensings")?.rows.find((d) => d.id === r.dispensing_id);
          if (!dispensing) differs.push("dispensing");
          else if (p.subject !== names[String(dispensing.participant_id)]) differs.push("subject");
          if (t.table === "supply_dispensings" && siteCode(r.site_id) !== p.site) differs.push("site");
        }
      }
      const batch = r.e_batch === null || r.e_batch === undefined ? null : Number(r.e_batch);
      const seq = r.e_seq === null || r.e_seq === undefined ? null : Number(r.e_seq);
      events.push({
        kind: String(r.e_kind ?? t.table),
        what: eventWords(t.table, r, names),
        at: when(r.e_at ?? r.created_at),
        by: r.actor_token_id
          ? tokenLabel({ id: String(r.actor_token_id), name: String(r.actor_token_name ?? "") })
          : String(r.by_name ?? "unknown user"),
        seal: {
          status: r.e_status ? String(r.e_status) : "missing",
          seq,
          batch,
          anchoredOn: batch === null ? [] : (anchored.get(batch) ?? []),
          matchesSeal: differs.length === 0,
        },
        differs,
        order: [seq ?? Number.MAX_SAFE_INTEGER, new Date(when(r.e_at ?? r.created_at)).getTime()],
      });
    }
  // Entries naming the kit whose row is gone: listed, never as sealed.
  for (const e of entries)
    if (!seen.has(e.id) && (KIT_KINDS.includes(e.kind) || LOT_KINDS.includes(e.kind)))
      events.push({
        kind: e.kind,
        what: `${e.kind} sealed in the log, but its row is missing from the database`,
        at: e.at.toISOString(),
        by: "",
        seal: {
          status: e.status,
          seq: e.seq,
          batch: e.batch,
          anchoredOn: e.batch === null ? [] : (anchored.get(e.batch) ?? []),
          matchesSeal: false,
        },
        differs: ["row"],
        order: [e.seq ?? Number.MAX_SAFE_INTEGER, e.at.getTime()],
      });
  events.sort((a, b) => a.order[0] - b.order[0] || a.order[1] - b.order[1]);
  const siteTz = f.shipment
    ? String((await q(ctx, sql`SELECT time_zone FROM sites WHERE id = ${f.shipment.siteId}`))[0]?.time_zone ?? "UTC")
    : "UTC";
  return {
    study: study.code,
    kit: f.number,
    state: kitStateWords(f, todayIn(siteTz)),
    units: f.units,
    expiresOn: f.expiresOn,
    site: f.shipment?.siteCode ?? null,
    dispensedTo: f.dispensed?.subject ?? null,
    /** Only for roles who may see kit types here (or after unblinding). */
    ...(types
      ? {
          kitType: f.kitType,
          lot: (tables.find((t) => t.table === "supply_lots")?.rows[0]?.lot_number ?? null) as string | null,
        }
      : {}),
    history: events.map(({ order: _o, ...e }) => e),
    canDownload: can(principal, "supply.custody", { studyId: study.id, siteId: f.shipment?.siteId ?? NO_SITE }),
    allMatch: events.every((e) => e.seal.matchesSeal !== false),
  };
}

/** The custody file of a kit (`trialseal-kit-custody/1`): supply.custody at the kit's site. */
export async function kitCustody(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  kitNumber: string,
): Promise<CustodyFile> {
  const { study, f, types } = await kitFor(ctx, principal, studyCode, kitNumber, "supply.custody");
  const lotId = types ? f.lotId : null;
  let entries = await kitEntries(ctx, study.id, { id: f.id, number: f.number }, lotId);
  if (entries.some((e) => e.status !== "sealed")) {
    await sealAll(ctx);
    entries = await kitEntries(ctx, study.id, { id: f.id, number: f.number }, lotId);
  }
  if (entries.some((e) => e.seq === null || e.batch === null))
    throw new ServiceError("conflict", `some entries of kit ${f.number} are not sealed yet: try again in a minute`);
  const wanted = new Set(entries.map((e) => e.id));
  const bundles = new Map<number, Bundle>();
  for (const b of [...new Set(entries.map((e) => e.batch!))].sort((x, y) => x - y))
    for (const bundle of await proofBundlesOfBatch(ctx, b, (e) => wanted.has(e.id)))
      bundles.set(Number(bundle.envelope.seq), bundle);
  const ordered = entries.map((e) => bundles.get(e.seq!)).filter((b): b is Bundle => b !== undefined);
  if (ordered.length !== entries.length)
    throw new ServiceError("conflict", `some entries of kit ${f.number} have no proof yet: try again in a minute`);
  let disclosure: CustodyFile["disclosure"];
  if (types) {
    const [k] = await q(
      ctx,
      sql`SELECT k.blind_nonce, k.kit_type, l.blind_nonce AS lot_nonce FROM supply_kits k
          JOIN supply_lots l ON l.id = k.lot_id WHERE k.id = ${f.id}`,
    );
    const b64 = (v: unknown) =>
      toBase64Url(v instanceof Uint8Array ? v : Uint8Array.from(Buffer.from(hexOf(v), "hex")));
    disclosure = {
      kit: f.id,
      lot: f.lotId,
      kitType: String(k.kit_type),
      nonce: b64(k.blind_nonce),
      lotNonce: b64(k.lot_nonce),
    };
  }
  const file: CustodyFile = {
    format: CUSTODY_FORMAT,
    study: study.code,
    kit: f.number,
    exportedAt: new Date().toISOString(),
    trustPolicyText: trustPolicyText(ctx),
    bundles: ordered,
    ...(disclosure ? { disclosure } : {}),
  };
  await audit(ctx.db, {
    action: "export.kit_custody",
    ...auditActor(principal),
    studyId: study.id,
    detail: auditDetail(principal, {
      kit: f.number,
      entries: ordered.length,
      disclosed: Boolean(disclosure),
      // The participants the file's entries name (their sealed `subject`).
      ...exportParticipantsDetail(
        await participantIdsOfSubjects(
          ctx,
          study.id,
          entries.map((e) => (typeof e.payload.subject === "string" ? e.payload.subject : null)),
        ),
      ),
    }),
  });
  return CustodyFileSchema.parse(file);
}

/** The custody file as downloaded (`<study>-kit-<number>-custody.json`). */
export async function kitCustodyDownload(ctx: AppContext, principal: Principal, studyCode: string, kitNumber: string) {
  const file = await kitCustody(ctx, principal, studyCode, kitNumber);
  return {
    name: `${file.study}-kit-${file.kit}-custody.json`,
    contentType: "application/json",
    data: new TextEncoder().encode(`${JSON.stringify(file, null, 2)}\n`),
  };
}
