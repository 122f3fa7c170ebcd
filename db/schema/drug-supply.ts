/**
 * Investigational product accountability (issue 21, ADR 0056-0065): lots with their certificate of analysis, kits
 * with a blinded kit type and a random label token, shipments from a depot to a site and their receipt (temperatures,
 * logger file, excursion), the sponsor's quarantine decisions, dispensing by allocation, returns, destructions with a
 * witness, the monitor's reconciliations, lot releases and recalls. Every row that is sealed names its ledger entry
 * (no FK: ledger_entries is partitioned, ADR 0045); the integrity audit compares each with it. All are append-only
 * (migration 0025): a kit's state is read from the rows that name it (app/drug-supply/kit-state.ts).
 */
import { boolean, date, index, integer, pgTable, primaryKey, text, timestamp, unique, uuid } from "drizzle-orm/pg-core";
import { sites, studies } from "./organizations.ts";
import { participants } from "./participants.ts";
import { randomizationAllocations } from "./pre-commitment.ts";
import { bytea } from "./types.ts";
import { apiTokens, users } from "./users.ts";

const actorColumns = () => ({
  actorUserId: uuid("actor_user_id").references(() => users.id),
  actorTokenId: uuid("actor_token_id").references(() => apiTokens.id),
  actorTokenName: text("actor_token_name"),
  createdAt: timestamp("created_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
});
const studyId = () =>
  uuid("study_id")
    .notNull()
    .references(() => studies.id);

/** A manufactured lot of one kit type: dates, storage range, daily units (compliance), certificate of analysis. */
export const supplyLots = pgTable(
  "supply_lots",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    studyId: studyId(),
    /** The product's name as labelled ("BP-101 10 mg tablets or placebo"); in the payload as its salted hash. */
    product: text("product").notNull(),
    lotNumber: text("lot_number").notNull(),
    /** One of the committed randomization design's kit types (blinded: ADR 0057). */
    kitType: text("kit_type").notNull(),
    /** 16 random bytes behind the payload's blindHash; never shown to blinded roles. */
    blindNonce: bytea("blind_nonce").notNull(),
    manufacturedOn: date("manufactured_on", { mode: "string" }).notNull(),
    expiresOn: date("expires_on", { mode: "string" }).notNull(),
    /** The labelled storage range in tenths of a degree Celsius (20..80 is 2 °C to 8 °C). */
    storageMinTenths: integer("storage_min_tenths").notNull(),
    storageMaxTenths: integer("storage_max_tenths").notNull(),
    /** Units a participant takes a day (compliance of returns); 0: compliance is not computed. */
    dailyUnits: integer("daily_units").notNull(),
    coaFileName: text("coa_file_name").notNull(),
    coaSha256: bytea("coa_sha256").notNull(),
    coaBytes: integer("coa_bytes").notNull(),
    coaContent: bytea("coa_content").notNull(),
    ...actorColumns(),
    entryId: uuid("entry_id").notNull(),
  },
  (t) => [unique("supply_lots_number_uq").on(t.studyId, t.lotNumber)],
);

/** A lot released for use by the sponsor (once). */
export const supplyLotReleases = pgTable("supply_lot_releases", {
  id: uuid("id").primaryKey().defaultRandom(),
  studyId: studyId(),
  lotId: uuid("lot_id")
    .notNull()
    .unique("supply_lot_releases_lot_uq")
    .references(() => supplyLots.id),
  ...actorColumns(),
  entryId: uuid("entry_id").notNull(),
});

/** A lot recalled (once): every kit of it blocked; the counts at the recall. */
export const supplyLotRecalls = pgTable("supply_lot_recalls", {
  id: uuid("id").primaryKey().defaultRandom(),
  studyId: studyId(),
  lotId: uuid("lot_id")
    .notNull()
    .unique("supply_lot_recalls_lot_uq")
    .references(() => supplyLots.id),
  reason: text("reason").notNull(),
  kitsBlocked: integer("kits_blocked").notNull(),
  subjectsAffected: integer("subjects_affected").notNull(),
  sitesNotified: integer("sites_notified").notNull(),
  ...actorColumns(),
  entryId: uuid("entry_id").notNull(),
});

/** A kit: its random number and label token, its lot and (blinded) kit type, units. */
export const supplyKits = pgTable(
  "supply_kits",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    studyId: studyId(),
    lotId: uuid("lot_id")
      .notNull()
      .references(() => supplyLots.id),
    number: text("number").notNull(),
    /** The lot's kit type, copied (blinded: ADR 0057). */
    kitType: text("kit_type").notNull(),
    /** 16 random bytes behind the payload's blindHash. */
    blindNonce: bytea("blind_nonce").notNull(),
    units: integer("units").notNull(),
    /** 16 random bytes, base64url: the QR code's `/kits/<token>`; the payload holds its SHA-256. */
    labelToken: text("label_token").notNull().unique("supply_kits_label_token_uq"),
    ...actorColumns(),
    entryId: uuid("entry_id").notNull(),
  },
  (t) => [unique("supply_kits_number_uq").on(t.studyId, t.number), index("supply_kits_lot_idx").on(t.lotId)],
);

/** A shipment from a depot to a site (sent when made). */
export const supplyShipments = pgTable(
  "supply_shipments",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    studyId: studyId(),
    number: text("number").notNull(),
    /** The depot's code ("DEPOT-EU"). */
    depot: text("depot").notNull(),
    siteId: uuid("site_id")
      .notNull()
      .references(() => sites.id),
    ...actorColumns(),
    entryId: uuid("entry_id").notNull(),
  },
  (t) => [unique("supply_shipments_number_uq").on(t.studyId, t.number)],
);

/** The kits of a shipment (a kit ships once, from the depot to its site); sealed by the shipment's entry. */
export const supplyShipmentKits = pgTable(
  "supply_shipment_kits",
  {
    studyId: studyId(),
    shipmentId: uuid("shipment_id")
      .notNull()
      .references(() => supplyShipments.id),
    kitId: uuid("kit_id")
      .notNull()
      .unique("supply_shipment_kits_kit_uq")
      .references(() => supplyKits.id),
  },
  (t) => [primaryKey({ columns: [t.shipmentId, t.kitId] })],
);

/** A shipment received (once): temperatures in transit and/or the logger file, and whether it was an excursion. */
export const supplyShipmentReceipts = pgTable("supply_shipment_receipts", {
  id: uuid("id").primaryKey().defaultRandom(),
  studyId: studyId(),
  shipmentId: uuid("shipment_id")
    .notNull()
    .unique("supply_shipment_receipts_shipment_uq")
    .references(() => supplyShipments.id),
  temperatureMinTenths: integer("temperature_min_tenths"),
  temperatureMaxTenths: integer("temperature_max_tenths"),
  loggerFileName: text("logger_file_name"),
  loggerSha256: bytea("logger_sha256"),
  loggerBytes: integer("logger_bytes"),
  loggerContent: bytea("logger_content"),
  excursion: boolean("excursion").notNull(),
  ...actorColumns(),
  entryId: uuid("entry_id").notNull(),
});

/** The sponsor's decision on a quarantined shipment (once): release its kits, or have them destroyed. */
export const supplyQuarantineDecisions = pgTable("supply_quarantine_decisions", {
  id: uuid("id").primaryKey().defaultRandom(),
  studyId: studyId(),
  shipmentId: uuid("shipment_id")
    .notNull()
    .unique("supply_quarantine_decisions_shipment_uq")
    .references(() => supplyShipments.id),
  outcome: text("outcome", { enum: ["release", "destroy"] }).notNull(),
  reason: text("reason").notNull(),
  ...actorColumns(),
  entryId: uuid("entry_id").notNull(),
});

/**
 * A kit assigned to a randomized participant for a dispensing (ADR 0059): drawn at random among the site's dispensable
 * kits of the participant's kit type that no other open assignment holds, so no two participants are ever offered the
 * same kit and a proposal says nothing of who shares a kit type. Only the assigned kit can be dispensed to them.
 */
export const supplyKitAssignments = pgTable(
  "supply_kit_assignments",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    studyId: studyId(),
    kitId: uuid("kit_id")
      .notNull()
      .references(() => supplyKits.id),
    participantId: uuid("participant_id")
      .notNull()
      .references(() => participants.id),
    siteId: uuid("site_id")
      .notNull()
      .references(() => sites.id),
    /** The visit's code in the schedule, if given. */
    visit: text("visit"),
    ...actorColumns(),
    entryId: uuid("entry_id").notNull(),
  },
  (t) => [
    index("supply_kit_assignments_participant_idx").on(t.participantId),
    index("supply_kit_assignments_kit_idx").on(t.kitId),
  ],
);

/** A kit dispensed to a participant (once per kit), by the participant's allocation. */
export const supplyDispensings = pgTable(
  "supply_dispensings",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    studyId: studyId(),
    kitId: uuid("kit_id")
      .notNull()
      .unique("supply_dispensings_kit_uq")
      .references(() => supplyKits.id),
    participantId: uuid("participant_id")
      .notNull()
      .references(() => participants.id),
    allocationId: uuid("allocation_id")
      .notNull()
      .references(() => randomizationAllocations.id),
    siteId: uuid("site_id")
      .notNull()
      .references(() => sites.id),
    /** The visit's code in the schedule, if given. */
    visit: text("visit"),
    ...actorColumns(),
    entryId: uuid("entry_id").notNull(),
  },
  (t) => [index("supply_dispensings_participant_idx").on(t.participantId)],
);

/** A dispensed kit returned (once): units counted back and compliance. */
export const supplyReturns = pgTable("supply_returns", {
  id: uuid("id").primaryKey().defaultRandom(),
  studyId: studyId(),
  kitId: uuid("kit_id")
    .notNull()
    .unique("supply_returns_kit_uq")
    .references(() => supplyKits.id),
  dispensingId: uuid("dispensing_id")
    .notNull()
    .references(() => supplyDispensings.id),
  unitsReturned: integer("units_returned").notNull(),
  unitsDispensed: integer("units_dispensed").notNull(),
  compliancePercent: integer("compliance_percent"),
  returnedOn: date("returned_on", { mode: "string" }).notNull(),
  ...actorColumns(),
  entryId: uuid("entry_id").notNull(),
});

/** Kits destroyed at a site (or at the depot: site null), by a method; a witness confirms it. */
export const supplyDestructions = pgTable("supply_destructions", {
  id: uuid("id").primaryKey().defaultRandom(),
  studyId: studyId(),
  siteId: uuid("site_id").references(() => sites.id),
  method: text("method").notNull(),
  ...actorColumns(),
  entryId: uuid("entry_id").notNull(),
});

/** The kits of a destruction (a kit is destroyed once); sealed by the destruction's entry. */
export const supplyDestructionKits = pgTable(
  "supply_destruction_kits",
  {
    studyId: studyId(),
    destructionId: uuid("destruction_id")
      .notNull()
      .references(() => supplyDestructions.id),
    kitId: uuid("kit_id")
      .notNull()
      .unique("supply_destruction_kits_kit_uq")
      .references(() => supplyKits.id),
  },
  (t) => [primaryKey({ columns: [t.destructionId, t.kitId] })],
);

/** The witness of a destruction (once; never the person who recorded it). */
export const supplyDestructionWitnesses = pgTable("supply_destruction_witnesses", {
  id: uuid("id").primaryKey().defaultRandom(),
  studyId: studyId(),
  destructionId: uuid("destruction_id")
    .notNull()
    .unique("supply_destruction_witnesses_destruction_uq")
    .references(() => supplyDestructions.id),
  ...actorColumns(),
  entryId: uuid("entry_id").notNull(),
});

/** The monitor's reconciliation of a site's kits: expected on hand against counted; the lists as canonical JSON. */
export const supplyReconciliations = pgTable("supply_reconciliations", {
  id: uuid("id").primaryKey().defaultRandom(),
  studyId: studyId(),
  siteId: uuid("site_id")
    .notNull()
    .references(() => sites.id),
  expected: integer("expected").notNull(),
  counted: integer("counted").notNull(),
  /** Canonical JSON arrays of kit numbers. */
  countedText: text("counted_text").notNull(),
  missingText: text("missing_text").notNull(),
  unexpectedText: text("unexpected_text").notNull(),
  ...actorColumns(),
  entryId: uuid("entry_id").notNull(),
});
