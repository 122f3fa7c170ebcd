/**
 * Pre-commitment (issue 20): study documents and their site approvals, the SAP's outcome list, the public
 * registration, the randomization list (committed before the first allocation), allocations, unblindings and the
 * database lock. Every row that is sealed names its ledger entry (no FK: ledger_entries is partitioned, ADR 0045);
 * the integrity audit compares each with it. All are append-only (migration 0024) except a draft list's row,
 * which its commitment completes once.
 */
import { sql } from "drizzle-orm";
import {
  boolean,
  date,
  index,
  integer,
  pgTable,
  text,
  timestamp,
  unique,
  uniqueIndex,
  uuid,
} from "drizzle-orm/pg-core";
import { STUDY_DOCUMENT_TYPES } from "../../anchoring/log/payloads.ts";
import { locks } from "./forms.ts";
import { sites, studies } from "./organizations.ts";
import { participants } from "./participants.ts";
import { bytea } from "./types.ts";
import { apiTokens, users } from "./users.ts";

const actorColumns = () => ({
  actorUserId: uuid("actor_user_id").references(() => users.id),
  actorTokenId: uuid("actor_token_id").references(() => apiTokens.id),
  actorTokenName: text("actor_token_name"),
  createdAt: timestamp("created_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
});

/** One version of a protocol, SAP, investigator's brochure or data management plan: the PDF and what is sealed. */
export const studyDocuments = pgTable(
  "study_documents",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    studyId: uuid("study_id")
      .notNull()
      .references(() => studies.id),
    type: text("type", { enum: STUDY_DOCUMENT_TYPES }).notNull(),
    /** The version label as the sponsor writes it ("1.0", "2.1 amendment 3"). */
    version: text("version").notNull(),
    fileName: text("file_name").notNull(),
    sha256: bytea("sha256").notNull(),
    bytes: integer("bytes").notNull(),
    /** The PDF itself (at most STUDY_DOCUMENT_MAX_BYTES). */
    content: bytea("content").notNull(),
    approvedOn: date("approved_on", { mode: "string" }).notNull(),
    /** The approving body (ethics committee, competent authority, sponsor's board). */
    approvingBody: text("approving_body").notNull(),
    /** The version this one amends (same type), and why; null for a first version. */
    replacesId: uuid("replaces_id"),
    reason: text("reason"),
    ...actorColumns(),
    entryId: uuid("entry_id").notNull(),
  },
  (t) => [
    unique("study_documents_version_uq").on(t.studyId, t.type, t.version),
    unique("study_documents_sha256_uq").on(t.studyId, t.sha256),
    index("study_documents_study_idx").on(t.studyId, t.type),
  ],
);

/** A site's approval date of one document version (protocol in force at a site: ADR 0048). */
export const documentSiteApprovals = pgTable(
  "document_site_approvals",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    studyId: uuid("study_id")
      .notNull()
      .references(() => studies.id),
    documentId: uuid("document_id")
      .notNull()
      .references(() => studyDocuments.id),
    siteId: uuid("site_id")
      .notNull()
      .references(() => sites.id),
    approvedOn: date("approved_on", { mode: "string" }).notNull(),
    ...actorColumns(),
    entryId: uuid("entry_id").notNull(),
  },
  (t) => [unique("document_site_approvals_uq").on(t.documentId, t.siteId)],
);

/** One version of the SAP's outcome list; `outcomesText` is the canonical JSON of the list, sealed by salted hash. */
export const sapOutcomeSets = pgTable(
  "sap_outcome_sets",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    studyId: uuid("study_id")
      .notNull()
      .references(() => studies.id),
    version: integer("version").notNull(),
    sapDocumentId: uuid("sap_document_id")
      .notNull()
      .references(() => studyDocuments.id),
    outcomesText: text("outcomes_text").notNull(),
    afterFirstEnrolment: boolean("after_first_enrolment").notNull(),
    reason: text("reason"),
    ...actorColumns(),
    entryId: uuid("entry_id").notNull(),
  },
  (t) => [unique("sap_outcome_sets_version_uq").on(t.studyId, t.version)],
);

/** The public registration page switched on or off; the latest row is in force. */
export const studyRegistrations = pgTable(
  "study_registrations",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    studyId: uuid("study_id")
      .notNull()
      .references(() => studies.id),
    published: boolean("published").notNull(),
    ...actorColumns(),
    entryId: uuid("entry_id").notNull(),
  },
  (t) => [index("study_registrations_study_idx").on(t.studyId, t.createdAt)],
);

/**
 * A randomization list. A draft (generated from a seed, or uploaded as CSV) is sealed when made
 * (`randomization.list_drafted`); it is discarded (discarded_at, its entry) or committed (committed_at, entry_id,
 * then its strata and slots) once, never deleted. At most one committed list per study.
 */
export const randomizationLists = pgTable(
  "randomization_lists",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    studyId: uuid("study_id")
      .notNull()
      .references(() => studies.id),
    source: text("source", { enum: ["generated", "uploaded"] }).notNull(),
    /** The design's canonical JSON (anchoring/randomization/slots.ts designSchema). */
    designText: text("design_text").notNull(),
    /** The CSPRNG seed of a generated list (32 bytes); revealed only with the list at unblinding. */
    seed: bytea("seed"),
    /** An uploaded list: the CSV as uploaded, and its SHA-256. */
    uploadText: text("upload_text"),
    uploadSha256: bytea("upload_sha256"),
    /** An uploaded list's slots with the salts the server drew for them (canonical JSON); null when generated. */
    slotsText: text("slots_text"),
    /** The secret nonce of the design hash (32 bytes); revealed only in the allocations file. */
    designNonce: bytea("design_nonce").notNull(),
    ...actorColumns(),
    /** The `randomization.list_drafted` entry written when the draft was made. */
    draftEntryId: uuid("draft_entry_id").notNull(),
    discardedAt: timestamp("discarded_at", { withTimezone: true, precision: 3 }),
    discardedBy: uuid("discarded_by").references(() => users.id),
    discardEntryId: uuid("discard_entry_id"),
    committedAt: timestamp("committed_at", { withTimezone: true, precision: 3 }),
    committedBy: uuid("committed_by").references(() => users.id),
    entryId: uuid("entry_id"),
  },
  (t) => [
    uniqueIndex("randomization_lists_one_committed").on(t.studyId).where(sql`committed_at IS NOT NULL`),
    index("randomization_lists_study_idx").on(t.studyId),
  ],
);

/** A stratum of a committed list: its key, position (1-based, in the randomization number), size and root. */
export const randomizationStrata = pgTable(
  "randomization_strata",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    studyId: uuid("study_id")
      .notNull()
      .references(() => studies.id),
    listId: uuid("list_id")
      .notNull()
      .references(() => randomizationLists.id),
    key: text("key").notNull(),
    position: integer("position").notNull(),
    siteId: uuid("site_id")
      .notNull()
      .references(() => sites.id),
    size: integer("size").notNull(),
    root: bytea("root").notNull(),
  },
  (t) => [
    unique("randomization_strata_key_uq").on(t.listId, t.key),
    unique("randomization_strata_pos_uq").on(t.listId, t.position),
  ],
);

/** A slot of a stratum (seq from 0): the arm and kit type behind its salt. Only unblinded roles read arm/kit_type. */
export const randomizationSlots = pgTable(
  "randomization_slots",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    studyId: uuid("study_id")
      .notNull()
      .references(() => studies.id),
    stratumId: uuid("stratum_id")
      .notNull()
      .references(() => randomizationStrata.id),
    seq: integer("seq").notNull(),
    arm: text("arm").notNull(),
    kitType: text("kit_type").notNull(),
    salt: text("salt").notNull(),
    /** The block (from 0) and its size, as generated; null for an uploaded list that does not say. */
    block: integer("block"),
    blockSize: integer("block_size"),
    leaf: bytea("leaf").notNull(),
  },
  (t) => [unique("randomization_slots_seq_uq").on(t.stratumId, t.seq)],
);

/** A participant's allocation: the slot taken (next of the stratum, under the stratum row's lock). */
export const randomizationAllocations = pgTable(
  "randomization_allocations",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    studyId: uuid("study_id")
      .notNull()
      .references(() => studies.id),
    listId: uuid("list_id")
      .notNull()
      .references(() => randomizationLists.id),
    stratumId: uuid("stratum_id")
      .notNull()
      .references(() => randomizationStrata.id),
    slotId: uuid("slot_id")
      .notNull()
      .references(() => randomizationSlots.id),
    participantId: uuid("participant_id")
      .notNull()
      .references(() => participants.id),
    seq: integer("seq").notNull(),
    number: text("number").notNull(),
    ...actorColumns(),
    entryId: uuid("entry_id").notNull(),
  },
  (t) => [
    unique("randomization_allocations_slot_uq").on(t.slotId),
    unique("randomization_allocations_participant_uq").on(t.participantId),
    index("randomization_allocations_study_idx").on(t.studyId),
  ],
);

/** One participant unblinded in an emergency by an investigator, with the reason. */
export const emergencyUnblindings = pgTable("emergency_unblindings", {
  id: uuid("id").primaryKey().defaultRandom(),
  studyId: uuid("study_id")
    .notNull()
    .references(() => studies.id),
  allocationId: uuid("allocation_id")
    .notNull()
    .references(() => randomizationAllocations.id),
  reason: text("reason").notNull(),
  ...actorColumns(),
  entryId: uuid("entry_id").notNull(),
});

/** The database lock: the study-wide lock it set and the analysis data set exported at lock (its hash sealed). */
export const databaseLocks = pgTable("database_locks", {
  id: uuid("id").primaryKey().defaultRandom(),
  studyId: uuid("study_id")
    .notNull()
    .references(() => studies.id),
  lockId: uuid("lock_id")
    .notNull()
    .references(() => locks.id),
  analysisFileName: text("analysis_file_name").notNull(),
  analysisSha256: bytea("analysis_sha256").notNull(),
  analysisBytes: integer("analysis_bytes").notNull(),
  analysisData: bytea("analysis_data").notNull(),
  records: integer("records").notNull(),
  ...actorColumns(),
  entryId: uuid("entry_id").notNull(),
});

/** The study unblinded: the list revealed while a database lock holds. */
export const randomizationUnblindings = pgTable(
  "randomization_unblindings",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    studyId: uuid("study_id")
      .notNull()
      .references(() => studies.id),
    listId: uuid("list_id")
      .notNull()
      .references(() => randomizationLists.id),
    databaseLockId: uuid("database_lock_id")
      .notNull()
      .references(() => databaseLocks.id),
    ...actorColumns(),
    entryId: uuid("entry_id").notNull(),
  },
  (t) => [unique("randomization_unblindings_list_uq").on(t.listId)],
);
