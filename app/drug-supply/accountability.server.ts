/**
 * The drug accountability log of a site (issue 21, ADR 0062): one row per kit event there (shipped to the site,
 * received, the sponsor's quarantine decision, dispensed, returned, recalled, destroyed, destruction witnessed) and
 * one per reconciliation, each with its date on the site's clock, who recorded it, the reason in words, and its
 * ledger entry's seq and seal state checked against the entry: every field of the row is compared with the entry's
 * payload (free text through its salted hash), and a row that differs is marked "does not match its sealed entry"
 * with the fields that differ, never shown as sealed. As CSV (app/platform/csv.ts) and as a landscape PDF table.
 *
 * Blinding (ADR 0057): no kit type or arm anywhere; the lot of a kit only for a role with supply.view_kit_types at
 * the site or once the study is unblinded (the lot column is left out otherwise). Each export is an audit event.
 */
import { existsSync } from "node:fs";
import { and, asc, eq, inArray } from "drizzle-orm";
import PDFDocument from "pdfkit";
import { toHex, utf8 } from "../../anchoring/log/bytes.ts";
import type { Crypto } from "../../anchoring/log/crypto.ts";
import { textMatchesPayload } from "../../anchoring/log/text-hash.ts";
import { firstFinalAnchorsCovering } from "../../db/queries/anchors.ts";
import {
  ledgerEntries,
  participants,
  type Role,
  sites,
  supplyDestructionKits,
  supplyDestructionWitnesses,
  supplyDestructions,
  supplyDispensings,
  supplyKits,
  supplyLotRecalls,
  supplyLots,
  supplyQuarantineDecisions,
  supplyReconciliations,
  supplyReturns,
  supplyShipmentKits,
  supplyShipmentReceipts,
  supplyShipments,
  users,
} from "../../db/schema/index.ts";
import type { EntryKind } from "../../anchoring/log/payloads.ts";
import { audit } from "../audit-trail/record-event.server.ts";
import { exportParticipantsDetail, participantIdsOfSubjects } from "../data-sharing/export-access.server.ts";
import { latestCheckpoint } from "../log/proofs.server.ts";
import { MISMATCH_TEXT, type Seal, sealText } from "../log/seal-text.ts";
import { auditActor, tokenLabel } from "../platform/attribution.ts";
import type { AppContext } from "../platform/context.server.ts";
import { csvCell, csvValue } from "../platform/csv.ts";
import { ServiceError } from "../platform/errors.server.ts";
import { can, PERMISSIONS, type Principal } from "../platform/permissions.server.ts";
import { isStudyUnblinded } from "../randomization/unblinding-state.server.ts";
import { dateInZone } from "../study-documents/protocol-in-force.ts";
import { getStudyOrThrow } from "../studies/studies.server.ts";

// ---- Scope: which sites a principal exports, and where it may see lots ----

export interface ExportSite {
  id: string;
  code: string;
  name: string;
  timeZone: string;
  /** The principal may see which lot a kit of this site is of (supply.view_kit_types here, or study unblinded). */
  showLots: boolean;
}

export interface SupplyExportScope {
  study: { id: string; code: string; title: string; createdAt: Date };
  /** The sites the principal may export (supply.export there), by code. */
  sites: ExportSite[];
  /** A study-wide principal: kits still at the depot (never shipped) are in its exports too. */
  studyWide: boolean;
  /** Lots of depot kits may be shown (a study-wide supply.view_kit_types membership, or study unblinded). */
  depotShowLots: boolean;
  unblinded: boolean;
}

const studyWideWith = (p: Principal, studyId: string, action: "supply.export" | "supply.view_kit_types") =>
  p.memberships.some(
    (m) => m.studyId === studyId && m.siteId === null && (PERMISSIONS[action] as readonly Role[]).includes(m.role),
  );

/** The sites a principal may export the supply of (refused when none); site-scoped roles get their own sites. */
export async function supplyExportScope(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
): Promise<SupplyExportScope> {
  const study = await getStudyOrThrow(ctx, studyCode);
  const all = await ctx.db
    .select({ id: sites.id, code: sites.code, name: sites.name, timeZone: sites.timeZone })
    .from(sites)
    .where(eq(sites.studyId, study.id))
    .orderBy(asc(sites.code));
  const unblinded = await isStudyUnblinded(ctx.db, study.id);
  const mine = all.filter((s) => can(principal, "supply.export", { studyId: study.id, siteId: s.id }));
  if (!mine.length) throw new ServiceError("forbidden", "not permitted: supply.export");
  const studyWide =
    (principal.platformAdmin && can(principal, "supply.export", { studyId: study.id })) ||
    studyWideWith(principal, study.id, "supply.export");
  return {
    study: { id: study.id, code: study.code, title: study.title, createdAt: study.createdAt },
    sites: mine.map((s) => ({
      ...s,
      showLots: unblinded || can(principal, "supply.view_kit_types", { studyId: study.id, siteId: s.id }),
    })),
    studyWide,
    depotShowLots: unblinded || (studyWide && studyWideWith(principal, study.id, "supply.view_kit_types")),
    unblinded,
  };
}

/** The one site of an export by code: unknown -> not_found naming it, not the principal's -> forbidden. */
export async function exportSite(ctx: AppContext, principal: Principal, studyCode: string, siteCode: string) {
  const study = await getStudyOrThrow(ctx, studyCode);
  const code = siteCode.trim();
  if (!code) throw new ServiceError("invalid", "site is required: name the site (?site=CODE)", "site");
  const [site] = await ctx.db
    .select({ id: sites.id })
    .from(sites)
    .where(and(eq(sites.studyId, study.id), eq(sites.code, code)));
  if (!site) throw new ServiceError("not_found", `there is no site ${code} in study ${study.code}`, "site");
  const scope = await supplyExportScope(ctx, principal, study.code);
  const s = scope.sites.find((x) => x.id === site.id);
  if (!s) throw new ServiceError("forbidden", `not permitted: supply.export at site ${code}`, "site");
  return { scope, site: s };
}

// ---- Row against entry ----

type Payload = Record<string, unknown>;
export interface EntryInfo {
  kind: string;
  payload: Payload | null;
  /** The stored payload text still hashes to the entry's payload hash. */
  hashOk: boolean;
  seq: number | null;
  status: string;
  batch: number | null;
}
interface ActorRow {
  actorUserId: string | null;
  actorTokenId: string | null;
  actorTokenName: string | null;
}

export const NO_ENTRY = "no sealed entry";

const tokenOf = (p: Payload) => {
  const t = p.token as { id?: unknown; name?: unknown } | undefined;
  return t && typeof t === "object" ? { id: t.id ?? null, name: t.name ?? null } : null;
};
/** The payload's actor (and token) is the row's. */
export function actorMatches(p: Payload, row: ActorRow): boolean {
  const t = tokenOf(p);
  return (
    (p.actor ?? null) === (row.actorTokenId ? null : row.actorUserId) &&
    (t?.id ?? null) === (row.actorTokenId ?? null) &&
    (t?.name ?? null) === (row.actorTokenName ?? null)
  );
}
const hexOrNull = (b: Uint8Array | null | undefined) => (b ? toHex(b) : null);
const sameList = (a: unknown, b: string[]) =>
  Array.isArray(a) && a.length === b.length && [...a].sort().join(",") === [...b].sort().join(",");
const jsonList = (t: string) => {
  try {
    const v = JSON.parse(t) as unknown;
    return Array.isArray(v) ? v.map(String) : [];
  } catch {
    return ["(unreadable)"];
  }
};

/** The fields of a row that differ from its entry, in words (empty: it matches). */
function differences(e: EntryInfo | undefined, kind: EntryKind, checks: (p: Payload) => [string, boolean][]) {
  if (!e?.payload || e.kind !== kind) return [NO_ENTRY];
  const out = checks(e.payload)
    .filter(([, ok]) => !ok)
    .map(([w]) => w);
  return e.hashOk ? out : ["entry payload", ...out];
}

/** A dispensing row (with its kit number, subject and site codes through their joins) against its entry. */
export function dispensingDiff(
  e: EntryInfo | undefined,
  d: ActorRow & { id: string; kitId: string; visit: string | null },
  joined: { number: string; subject: string; site: string },
): string[] {
  return differences(e, "supply.kit_dispensed", (p) => [
    ["dispensing", p.dispensing === d.id],
    ["kit", p.kit === d.kitId],
    ["kit number", p.number === joined.number],
    ["subject", p.subject === joined.subject],
    ["site", p.site === joined.site],
    ["visit", (p.visit ?? null) === (d.visit ?? null)],
    ["dispensed by", actorMatches(p, d)],
  ]);
}

/** A return row (with its kit number and subject through their joins) against its entry. */
export function returnDiff(
  e: EntryInfo | undefined,
  r: ActorRow & {
    id: string;
    kitId: string;
    unitsReturned: number;
    unitsDispensed: number;
    compliancePercent: number | null;
    returnedOn: string;
  },
  joined: { number: string; subject: string },
): string[] {
  return differences(e, "supply.kit_returned", (p) => [
    ["return", p.return === r.id],
    ["kit", p.kit === r.kitId],
    ["kit number", p.number === joined.number],
    ["subject", p.subject === joined.subject],
    ["units returned", p.unitsReturned === r.unitsReturned],
    ["units dispensed", p.unitsDispensed === r.unitsDispensed],
    ["compliance", (p.compliancePercent ?? null) === r.compliancePercent],
    ["return date", p.returnedOn === r.returnedOn],
    ["recorded by", actorMatches(p, r)],
  ]);
}

// ---- The log ----

export type AccountabilityEvent =
  | "shipped"
  | "received"
  | "quarantine_released"
  | "quarantine_rejected"
  | "dispensed"
  | "returned"
  | "recalled"
  | "destroyed"
  | "destruction_witnessed"
  | "reconciled";

export const EVENT_WORDS: Record<AccountabilityEvent, string> = {
  shipped: "shipped to the site",
  received: "received at the site",
  quarantine_released: "released after a temperature excursion",
  quarantine_rejected: "rejected after a temperature excursion",
  dispensed: "dispensed",
  returned: "returned",
  recalled: "lot recalled",
  destroyed: "destroyed",
  destruction_witnessed: "destruction witnessed",
  reconciled: "reconciled",
};

export interface AccountabilityRow {
  /** YYYY-MM-DD on the site's clock (a return: the date it was returned). */
  date: string;
  /** When it was recorded (UTC, ISO 8601). */
  at: string;
  event: AccountabilityEvent;
  /** The ledger entry kind that records it. */
  kind: EntryKind;
  kit: string | null;
  /** Only when the principal may see it (`showLots`). */
  lot?: string | null;
  subject: string | null;
  units: number | null;
  by: string;
  /** The reason and other details, in words. */
  details: string;
  entryId: string;
  seq: number | null;
  seal: Seal;
  /** In words: sealed in batch B (seq N) / pending seal / does not match its sealed entry: fields. */
  sealWords: string;
  matchesSeal: boolean;
  differences: string[];
}

export interface AccountabilityLog {
  study: { id: string; code: string; title: string };
  site: { id: string; code: string; name: string; timeZone: string };
  showLots: boolean;
  rows: AccountabilityRow[];
  generatedAt: string;
  /** The latest signed checkpoint's size (batches), null before the first. */
  checkpointSize: number | null;
}

const tenths = (t: number | null) => (t === null ? "?" : (t / 10).toFixed(1));

/** The accountability log of one site (permission supply.export at that site). */
export async function accountabilityLog(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  siteCode: string,
): Promise<AccountabilityLog> {
  const { scope, site } = await exportSite(ctx, principal, studyCode, siteCode);
  const studyId = scope.study.id;
  const db = ctx.db;
  const kitCols = {
    kitId: supplyKits.id,
    number: supplyKits.number,
    units: supplyKits.units,
    lot: supplyLots.lotNumber,
  };

  const shipped = await db
    .select({ s: supplyShipments, ...kitCols, lotId: supplyKits.lotId })
    .from(supplyShipments)
    .innerJoin(supplyShipmentKits, eq(supplyShipmentKits.shipmentId, supplyShipments.id))
    .innerJoin(supplyKits, eq(supplyKits.id, supplyShipmentKits.kitId))
    .innerJoin(supplyLots, eq(supplyLots.id, supplyKits.lotId))
    .where(and(eq(supplyShipments.studyId, studyId), eq(supplyShipments.siteId, site.id)));
  const shipmentIds = [...new Set(shipped.map((r) => r.s.id))];
  const receipts = shipmentIds.length
    ? await db.select().from(supplyShipmentReceipts).where(inArray(supplyShipmentReceipts.shipmentId, shipmentIds))
    : [];
  const decisions = shipmentIds.length
    ? await db
        .select()
        .from(supplyQuarantineDecisions)
        .where(inArray(supplyQuarantineDecisions.shipmentId, shipmentIds))
    : [];
  const dispensed = await db
    .select({ d: supplyDispensings, subject: participants.subjectCode, ...kitCols })
    .from(supplyDispensings)
    .innerJoin(supplyKits, eq(supplyKits.id, supplyDispensings.kitId))
    .innerJoin(supplyLots, eq(supplyLots.id, supplyKits.lotId))
    .innerJoin(participants, eq(participants.id, supplyDispensings.participantId))
    .where(and(eq(supplyDispensings.studyId, studyId), eq(supplyDispensings.siteId, site.id)));
  const returned = await db
    .select({ r: supplyReturns, subject: participants.subjectCode, ...kitCols })
    .from(supplyReturns)
    .innerJoin(supplyDispensings, eq(supplyDispensings.id, supplyReturns.dispensingId))
    .innerJoin(supplyKits, eq(supplyKits.id, supplyReturns.kitId))
    .innerJoin(supplyLots, eq(supplyLots.id, supplyKits.lotId))
    .innerJoin(participants, eq(participants.id, supplyDispensings.participantId))
    .where(and(eq(supplyReturns.studyId, studyId), eq(supplyDispensings.siteId, site.id)));
  const destroyed = await db
    .select({ d: supplyDestructions, ...kitCols })
    .from(supplyDestructions)
    .innerJoin(supplyDestructionKits, eq(supplyDestructionKits.destructionId, supplyDestructions.id))
    .innerJoin(supplyKits, eq(supplyKits.id, supplyDestructionKits.kitId))
    .innerJoin(supplyLots, eq(supplyLots.id, supplyKits.lotId))
    .where(and(eq(supplyDestructions.studyId, studyId), eq(supplyDestructions.siteId, site.id)));
  const destructionIds = [...new Set(destroyed.map((r) => r.d.id))];
  const witnesses = destructionIds.length
    ? await db
        .select()
        .from(supplyDestructionWitnesses)
        .where(inArray(supplyDestructionWitnesses.destructionId, destructionIds))
    : [];
  const lotIds = [...new Set(shipped.map((r) => r.lotId))];
  const recalls = lotIds.length
    ? await db.select().from(supplyLotRecalls).where(inArray(supplyLotRecalls.lotId, lotIds))
    : [];
  const reconciliations = await db
    .select()
    .from(supplyReconciliations)
    .where(and(eq(supplyReconciliations.studyId, studyId), eq(supplyReconciliations.siteId, site.id)));

  // The entries and the people behind the rows.
  const entryIds = [
    ...new Set([
      ...shipped.map((r) => r.s.entryId),
      ...receipts.map((r) => r.entryId),
      ...decisions.map((r) => r.entryId),
      ...dispensed.map((r) => r.d.entryId),
      ...returned.map((r) => r.r.entryId),
      ...destroyed.map((r) => r.d.entryId),
      ...witnesses.map((r) => r.entryId),
      ...recalls.map((r) => r.entryId),
      ...reconciliations.map((r) => r.entryId),
    ]),
  ];
  const entries = await loadEntries(ctx, entryIds);
  const actorRows: ActorRow[] = [
    ...shipped.map((r) => r.s),
    ...receipts,
    ...decisions,
    ...dispensed.map((r) => r.d),
    ...returned.map((r) => r.r),
    ...destroyed.map((r) => r.d),
    ...witnesses,
    ...recalls,
    ...reconciliations,
  ];
  const userIds = [...new Set(actorRows.map((r) => r.actorUserId).filter((x): x is string => x !== null))];
  const names = new Map(
    userIds.length
      ? (await db.select({ id: users.id, name: users.fullName }).from(users).where(inArray(users.id, userIds))).map(
          (u) => [u.id, u.name],
        )
      : [],
  );
  const who = (r: ActorRow) =>
    r.actorTokenId
      ? tokenLabel({ id: r.actorTokenId, name: r.actorTokenName ?? "" })
      : r.actorUserId
        ? (names.get(r.actorUserId) ?? "unknown user")
        : "unknown";
  const anchored = new Map<number, string[]>();
  for (const b of new Set([...entries.values()].map((e) => e.batch).filter((x): x is number => x !== null)))
    anchored.set(
      b,
      (await firstFinalAnchorsCovering(db, b)).map((a) => a.ledger),
    );
  const day = (d: Date) => dateInZone(d, site.timeZone);
  const rows: AccountabilityRow[] = [];
  const push = (
    r: Omit<AccountabilityRow, "seq" | "seal" | "sealWords" | "matchesSeal" | "differences" | "by" | "at" | "date"> & {
      createdAt: Date;
      date?: string;
      actor: ActorRow;
      diff: string[];
    },
  ) => {
    const e = entries.get(r.entryId);
    const matches = r.diff.length === 0;
    const seal: Seal = {
      status: e?.status ?? "missing",
      seq: e?.seq ?? null,
      batch: e?.batch ?? null,
      anchoredOn: e?.batch == null ? [] : (anchored.get(e.batch) ?? []),
      matchesSeal: matches,
    };
    rows.push({
      date: r.date ?? day(r.createdAt),
      at: r.createdAt.toISOString(),
      event: r.event,
      kind: r.kind,
      kit: r.kit,
      ...(site.showLots ? { lot: r.lot ?? null } : {}),
      subject: r.subject,
      units: r.units,
      by: who(r.actor),
      details: r.details,
      entryId: r.entryId,
      seq: e?.seq ?? null,
      seal,
      sealWords: matches ? sealText(seal) : `${MISMATCH_TEXT}: ${r.diff.join(", ")}`,
      matchesSeal: matches,
      differences: r.diff,
    });
  };
  const crypto = ctx.crypto;

  for (const r of shipped) {
    const s = r.s;
    push({
      createdAt: s.createdAt,
      event: "shipped",
      kind: "supply.shipment_sent",
      kit: r.number,
      lot: r.lot,
      subject: null,
      units: r.units,
      details: `shipment ${s.number} from ${s.depot}`,
      entryId: s.entryId,
      actor: s,
      diff: differences(entries.get(s.entryId), "supply.shipment_sent", (p) => [
        ["shipment", p.shipment === s.id],
        ["shipment number", p.number === s.number],
        ["depot", p.depot === s.depot],
        ["site", p.site === site.code],
        ["kits of the shipment", Array.isArray(p.kits) && p.kits.includes(r.number)],
        ["sent by", actorMatches(p, s)],
      ]),
    });
  }
  const shipmentOf = new Map(shipped.map((r) => [r.s.id, r.s]));
  const kitsOf = (shipmentId: string) => shipped.filter((r) => r.s.id === shipmentId);
  for (const rc of receipts) {
    const s = shipmentOf.get(rc.shipmentId)!;
    const temps =
      rc.temperatureMinTenths !== null || rc.temperatureMaxTenths !== null
        ? `; in transit ${tenths(rc.temperatureMinTenths)} to ${tenths(rc.temperatureMaxTenths)} °C`
        : "";
    const logger = rc.loggerFileName ? `; logger file ${rc.loggerFileName}` : "";
    const details =
      `shipment ${s.number}${temps}${logger}` +
      (rc.excursion ? "; temperature excursion: quarantined until the sponsor decides" : "");
    const diff = differences(entries.get(rc.entryId), "supply.shipment_received", (p) => [
      ["receipt", p.receipt === rc.id],
      ["shipment", p.shipment === rc.shipmentId],
      ["minimum temperature", (p.temperatureMinTenths ?? null) === rc.temperatureMinTenths],
      ["maximum temperature", (p.temperatureMaxTenths ?? null) === rc.temperatureMaxTenths],
      ["logger file", (p.loggerSha256 ?? null) === hexOrNull(rc.loggerSha256)],
      ["excursion", p.excursion === rc.excursion],
      ["received by", actorMatches(p, rc)],
    ]);
    for (const k of kitsOf(rc.shipmentId))
      push({
        createdAt: rc.createdAt,
        event: "received",
        kind: "supply.shipment_received",
        kit: k.number,
        lot: k.lot,
        subject: null,
        units: k.units,
        details,
        entryId: rc.entryId,
        actor: rc,
        diff,
      });
  }
  for (const d of decisions) {
    const s = shipmentOf.get(d.shipmentId)!;
    const outcome = d.outcome === "release" ? "released by the sponsor" : "to be destroyed (the sponsor's decision)";
    const diff = differences(entries.get(d.entryId), "supply.quarantine_decided", (p) => [
      ["decision", p.decision === d.id],
      ["shipment", p.shipment === d.shipmentId],
      ["outcome", p.outcome === d.outcome],
      ["reason", textMatchesPayload(crypto, p, "reason", d.reason)],
      ["decided by", actorMatches(p, d)],
    ]);
    for (const k of kitsOf(d.shipmentId))
      push({
        createdAt: d.createdAt,
        event: d.outcome === "release" ? "quarantine_released" : "quarantine_rejected",
        kind: "supply.quarantine_decided",
        kit: k.number,
        lot: k.lot,
        subject: null,
        units: null,
        details: `shipment ${s.number}: ${outcome}; reason: ${d.reason}`,
        entryId: d.entryId,
        actor: d,
        diff,
      });
  }
  for (const r of dispensed) {
    const d = r.d;
    push({
      createdAt: d.createdAt,
      event: "dispensed",
      kind: "supply.kit_dispensed",
      kit: r.number,
      lot: r.lot,
      subject: r.subject,
      units: r.units,
      details: d.visit ? `visit ${d.visit}` : "",
      entryId: d.entryId,
      actor: d,
      diff: dispensingDiff(entries.get(d.entryId), d, { number: r.number, subject: r.subject, site: site.code }),
    });
  }
  for (const x of returned) {
    const r = x.r;
    const compliance = r.compliancePercent === null ? "not computed" : `${r.compliancePercent}%`;
    push({
      createdAt: r.createdAt,
      date: r.returnedOn,
      event: "returned",
      kind: "supply.kit_returned",
      kit: x.number,
      lot: x.lot,
      subject: x.subject,
      units: r.unitsReturned,
      details: `${r.unitsReturned} of ${r.unitsDispensed} units returned; compliance ${compliance}`,
      entryId: r.entryId,
      actor: r,
      diff: returnDiff(entries.get(r.entryId), r, { number: x.number, subject: x.subject }),
    });
  }
  for (const rc of recalls) {
    const diff = differences(entries.get(rc.entryId), "supply.lot_recalled", (p) => [
      ["recall", p.recall === rc.id],
      ["lot", p.lot === rc.lotId],
      ["reason", textMatchesPayload(crypto, p, "reason", rc.reason)],
      ["kits blocked", p.kitsBlocked === rc.kitsBlocked],
      ["participants affected", p.subjectsAffected === rc.subjectsAffected],
      ["sites notified", p.sitesNotified === rc.sitesNotified],
      ["recalled by", actorMatches(p, rc)],
    ]);
    for (const k of shipped.filter((s) => s.lotId === rc.lotId))
      push({
        createdAt: rc.createdAt,
        event: "recalled",
        kind: "supply.lot_recalled",
        kit: k.number,
        lot: k.lot,
        subject: null,
        units: null,
        details: `the kit's lot was recalled: it must not be dispensed; reason: ${rc.reason}`,
        entryId: rc.entryId,
        actor: rc,
        diff,
      });
  }
  const destructionOf = new Map(destroyed.map((r) => [r.d.id, r.d]));
  for (const r of destroyed) {
    const d = r.d;
    push({
      createdAt: d.createdAt,
      event: "destroyed",
      kind: "supply.destruction_recorded",
      kit: r.number,
      lot: r.lot,
      subject: null,
      units: null,
      details: `method: ${d.method}`,
      entryId: d.entryId,
      actor: d,
      diff: differences(entries.get(d.entryId), "supply.destruction_recorded", (p) => [
        ["destruction", p.destruction === d.id],
        ["site", p.site === site.code],
        ["kits of the destruction", Array.isArray(p.kits) && p.kits.includes(r.number)],
        ["method", textMatchesPayload(crypto, p, "method", d.method)],
        ["recorded by", actorMatches(p, d)],
      ]),
    });
  }
  for (const w of witnesses) {
    const d = destructionOf.get(w.destructionId)!;
    const diff = differences(entries.get(w.entryId), "supply.destruction_witnessed", (p) => [
      ["witness", p.witness === w.id],
      ["destruction", p.destruction === w.destructionId],
      ["witnessed by", actorMatches(p, w)],
    ]);
    for (const k of destroyed.filter((x) => x.d.id === d.id))
      push({
        createdAt: w.createdAt,
        event: "destruction_witnessed",
        kind: "supply.destruction_witnessed",
        kit: k.number,
        lot: k.lot,
        subject: null,
        units: null,
        details: `destruction recorded by ${who(d)}`,
        entryId: w.entryId,
        actor: w,
        diff,
      });
  }
  for (const rc of reconciliations) {
    const missing = jsonList(rc.missingText);
    const unexpected = jsonList(rc.unexpectedText);
    push({
      createdAt: rc.createdAt,
      event: "reconciled",
      kind: "supply.reconciled",
      kit: null,
      lot: null,
      subject: null,
      units: rc.counted,
      details:
        `expected ${rc.expected} on hand, counted ${rc.counted}` +
        (missing.length ? `; missing: ${missing.join(" ")}` : "") +
        (unexpected.length ? `; unexpected: ${unexpected.join(" ")}` : "") +
        (missing.length || unexpected.length ? "" : "; no discrepancy"),
      entryId: rc.entryId,
      actor: rc,
      diff: differences(entries.get(rc.entryId), "supply.reconciled", (p) => [
        ["reconciliation", p.reconciliation === rc.id],
        ["site", p.site === site.code],
        ["expected", p.expected === rc.expected],
        ["counted", p.counted === rc.counted],
        ["missing kits", sameList(p.missing, missing)],
        ["unexpected kits", sameList(p.unexpected, unexpected)],
        ["reconciled by", actorMatches(p, rc)],
      ]),
    });
  }
  const order = Object.keys(EVENT_WORDS);
  rows.sort(
    (a, b) =>
      a.at.localeCompare(b.at) ||
      order.indexOf(a.event) - order.indexOf(b.event) ||
      (a.kit ?? "").localeCompare(b.kit ?? ""),
  );
  const cp = await latestCheckpoint(ctx);
  return {
    study: { id: studyId, code: scope.study.code, title: scope.study.title },
    site: { id: site.id, code: site.code, name: site.name, timeZone: site.timeZone },
    showLots: site.showLots,
    rows,
    generatedAt: new Date().toISOString(),
    checkpointSize: cp?.treeSize ?? null,
  };
}

/** The ledger entries of rows by id: kind, parsed payload, whether its text still hashes to the payload hash. */
export async function loadEntries(ctx: AppContext, ids: string[]): Promise<Map<string, EntryInfo>> {
  const out = new Map<string, EntryInfo>();
  for (let i = 0; i < ids.length; i += 500) {
    const rows = await ctx.db
      .select({
        id: ledgerEntries.id,
        kind: ledgerEntries.kind,
        payloadText: ledgerEntries.payloadText,
        payloadHash: ledgerEntries.payloadHash,
        status: ledgerEntries.status,
        seq: ledgerEntries.seq,
        batch: ledgerEntries.batchNo,
      })
      .from(ledgerEntries)
      .where(inArray(ledgerEntries.id, ids.slice(i, i + 500)));
    for (const r of rows) out.set(r.id, entryInfo(ctx.crypto, r));
  }
  return out;
}

function entryInfo(
  crypto: Crypto,
  r: {
    kind: string;
    payloadText: string;
    payloadHash: Uint8Array;
    status: string;
    seq: number | null;
    batch: number | null;
  },
): EntryInfo {
  let payload: Payload | null = null;
  try {
    const v = JSON.parse(r.payloadText) as unknown;
    payload = v && typeof v === "object" && !Array.isArray(v) ? (v as Payload) : null;
  } catch {
    payload = null;
  }
  const hashOk = toHex(crypto.sha256(utf8(r.payloadText))) === toHex(r.payloadHash);
  return { kind: r.kind, payload, hashOk, seq: r.seq, status: r.status, batch: r.batch };
}

// ---- CSV and PDF ----

export const ACCOUNTABILITY_COLUMNS = [
  "date",
  "recorded_at",
  "event",
  "entry_kind",
  "kit",
  "lot",
  "subject",
  "units",
  "by",
  "details",
  "entry",
  "seq",
  "seal",
] as const;

/** The log as CSV (RFC 4180, defused cells); the `lot` column only when the principal may see lots. */
export function accountabilityCsvText(log: AccountabilityLog): string {
  const cols = ACCOUNTABILITY_COLUMNS.filter((c) => c !== "lot" || log.showLots);
  const cell = (r: AccountabilityRow, c: (typeof ACCOUNTABILITY_COLUMNS)[number]) => {
    switch (c) {
      case "date":
        return csvCell(r.date);
      case "recorded_at":
        return csvCell(r.at);
      case "event":
        return csvCell(r.event);
      case "entry_kind":
        return csvCell(r.kind);
      case "kit":
        return csvCell(r.kit);
      case "lot":
        return csvCell(r.lot ?? null);
      case "subject":
        return csvCell(r.subject);
      case "units":
        return csvValue(r.units);
      case "by":
        return csvCell(r.by);
      case "details":
        return csvCell(r.details);
      case "entry":
        return csvCell(r.entryId);
      case "seq":
        return csvValue(r.seq);
      case "seal":
        return csvCell(r.sealWords);
    }
  };
  const lines = [cols.map(csvCell).join(","), ...log.rows.map((r) => cols.map((c) => cell(r, c)).join(","))];
  return `${lines.join("\r\n")}\r\n`;
}

async function auditExport(ctx: AppContext, principal: Principal, log: AccountabilityLog, format: string) {
  await audit(ctx.db, {
    action: "export.supply_accountability",
    ...auditActor(principal),
    studyId: log.study.id,
    siteId: log.site.id,
    detail: {
      format,
      site: log.site.code,
      rows: log.rows.length,
      ...exportParticipantsDetail(
        await participantIdsOfSubjects(
          ctx,
          log.study.id,
          log.rows.map((r) => r.subject),
        ),
      ),
    },
  });
}

/** The accountability log of a site as CSV (an audited export). */
export async function accountabilityCsv(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  siteCode: string,
): Promise<{ name: string; text: string; rows: number }> {
  const log = await accountabilityLog(ctx, principal, studyCode, siteCode);
  const text = accountabilityCsvText(log);
  await auditExport(ctx, principal, log, "csv");
  return { name: `${log.study.code}-${log.site.code}-accountability.csv`, text, rows: log.rows.length };
}

/** The accountability log of a site as a landscape PDF table with page numbers (an audited export). */
export async function accountabilityPdf(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  siteCode: string,
  opts: { compress?: boolean } = {},
): Promise<{ name: string; data: Buffer }> {
  const log = await accountabilityLog(ctx, principal, studyCode, siteCode);
  const data = await accountabilityPdfBytes(ctx, principal, log, opts);
  await auditExport(ctx, principal, log, "pdf");
  return { name: `${log.study.code}-${log.site.code}-accountability.pdf`, data };
}

async function accountabilityPdfBytes(
  ctx: AppContext,
  principal: Principal,
  log: AccountabilityLog,
  opts: { compress?: boolean },
): Promise<Buffer> {
  const { regular: font, bold: boldFont } = ctx.env.pdfFont;
  if (!existsSync(font)) throw new Error(`the PDF font ${font} is missing (install fonts-dejavu-core)`);
  const doc = new PDFDocument({
    size: "A4",
    layout: "landscape",
    margin: 36,
    bufferPages: true,
    compress: opts.compress ?? true,
    info: { Title: `Drug accountability log: ${log.study.code} site ${log.site.code}`, Author: "TrialSeal" },
  });
  doc.registerFont("body", font);
  doc.registerFont("bold", existsSync(boldFont) ? boldFont : font);
  const chunks: Buffer[] = [];
  doc.on("data", (c: Buffer) => chunks.push(c));
  const done = new Promise<Buffer>((resolve) => doc.on("end", () => resolve(Buffer.concat(chunks))));
  const left = 36;
  const pageW = doc.page.width - 72;
  const bottom = doc.page.height - 48;
  const cols: { head: string; w: number; of: (r: AccountabilityRow) => string }[] = [
    { head: "Date", w: 56, of: (r) => r.date },
    { head: "Event", w: 78, of: (r) => EVENT_WORDS[r.event] },
    { head: "Kit", w: 46, of: (r) => r.kit ?? "" },
    ...(log.showLots ? [{ head: "Lot", w: 52, of: (r: AccountabilityRow) => r.lot ?? "" }] : []),
    { head: "Subject", w: 52, of: (r) => r.subject ?? "" },
    { head: "Units", w: 32, of: (r) => (r.units === null ? "" : String(r.units)) },
    { head: "By", w: 80, of: (r) => r.by },
    { head: "Details", w: 0, of: (r) => r.details },
    { head: "Seq", w: 36, of: (r) => (r.seq === null ? "" : String(r.seq)) },
    { head: "Seal", w: 110, of: (r) => r.sealWords },
  ];
  const fixed = cols.reduce((n, c) => n + c.w, 0);
  for (const c of cols) if (c.w === 0) c.w = pageW - fixed;
  const pad = 3;
  const header = () => {
    doc.font("bold").fontSize(7.5).fillColor("black");
    const y = doc.y;
    let x = left;
    const h = Math.max(...cols.map((c) => doc.heightOfString(c.head, { width: c.w - pad }))) + 4;
    doc
      .rect(left, y - 2, pageW, h)
      .fill("#e5e7eb")
      .fillColor("black");
    for (const c of cols) {
      doc.text(c.head, x, y, { width: c.w - pad, lineBreak: true });
      x += c.w;
    }
    doc.x = left;
    doc.y = y + h;
  };

  doc.font("bold").fontSize(14).text(`Drug accountability log: study ${log.study.code}, site ${log.site.code}`);
  doc
    .font("body")
    .fontSize(9)
    .text(
      `${log.study.title} · site ${log.site.code} (${log.site.name}), dates on the site's clock (${log.site.timeZone})`,
    )
    .text(
      `Generated at ${log.generatedAt.replace("T", " ").slice(0, 19)} UTC by ${auditActor(principal).actorLabel}; ` +
        `latest signed checkpoint: ${log.checkpointSize === null ? "none yet" : `size ${log.checkpointSize}`}; ` +
        `${log.rows.length} events. Each row names its ledger entry (seq) and its seal state, checked against the ` +
        "entry: a row that differs from its entry is marked and never shown as sealed.",
      { width: pageW },
    );
  doc.moveDown(0.6);
  header();
  doc.font("body").fontSize(7.5);
  for (const r of log.rows) {
    const cells = cols.map((c) => c.of(r));
    const h = Math.max(...cells.map((t, i) => doc.heightOfString(t || " ", { width: cols[i].w - pad }))) + 3;
    if (doc.y + h > bottom) {
      doc.addPage();
      header();
      doc.font("body").fontSize(7.5);
    }
    const y = doc.y;
    let x = left;
    doc.fillColor(r.matchesSeal ? "black" : "#b91c1c");
    for (const [i, c] of cols.entries()) {
      doc.text(cells[i], x, y, { width: c.w - pad });
      x += c.w;
    }
    doc
      .moveTo(left, y + h - 1)
      .lineTo(left + pageW, y + h - 1)
      .lineWidth(0.3)
      .strokeColor("#d1d5db")
      .stroke();
    doc.x = left;
    doc.y = y + h;
  }
  if (!log.rows.length) doc.fillColor("black").text("No supply events at this site yet.", left, doc.y);
  const range = doc.bufferedPageRange();
  for (let i = range.start; i < range.start + range.count; i++) {
    doc.switchToPage(i);
    // Writing below the bottom margin would add a page: lift it for the footer.
    const margin = doc.page.margins.bottom;
    doc.page.margins.bottom = 0;
    doc
      .font("body")
      .fontSize(7.5)
      .fillColor("#444444")
      .text(
        `${log.study.code} · site ${log.site.code} · drug accountability log · page ${i + 1} of ${range.count}`,
        left,
        doc.page.height - 30,
        { width: pageW, align: "center" },
      );
    doc.page.margins.bottom = margin;
  }
  doc.end();
  return done;
}
