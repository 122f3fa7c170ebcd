import { sql } from "drizzle-orm";
import {
  type AnyPgColumn,
  index,
  integer,
  pgTable,
  text,
  timestamp,
  unique,
  uniqueIndex,
  uuid,
} from "drizzle-orm/pg-core";
import { sites, studies } from "./organizations.ts";
import { participants } from "./participants.ts";
import { apiTokens, users } from "./users.ts";
import { bytea } from "./types.ts";

/** CRF form definitions, versioned. `definitionText` is the exact JCS text of the definition. */
export const forms = pgTable(
  "forms",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    studyId: uuid("study_id")
      .notNull()
      .references(() => studies.id),
    code: text("code").notNull(),
    version: integer("version").notNull(),
    title: text("title").notNull(),
    definitionText: text("definition_text").notNull(),
    definitionSha256: bytea("definition_sha256").notNull(),
    status: text("status", { enum: ["draft", "approved", "retired"] })
      .notNull()
      .default("draft"),
    createdBy: uuid("created_by").references(() => users.id),
    createdAt: timestamp("created_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
    approvedBy: uuid("approved_by").references(() => users.id),
    approvedAt: timestamp("approved_at", { withTimezone: true, precision: 3 }),
    approvalEntryId: uuid("approval_entry_id"),
  },
  (t) => [unique("forms_study_code_version_uq").on(t.studyId, t.code, t.version)],
);

/** One CRF instance: a form filled for a subject at a visit. Its versions live in record_versions. */
export const records = pgTable(
  "records",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    studyId: uuid("study_id")
      .notNull()
      .references(() => studies.id),
    siteId: uuid("site_id")
      .notNull()
      .references(() => sites.id),
    participantId: uuid("participant_id")
      .notNull()
      .references(() => participants.id),
    formCode: text("form_code").notNull(),
    visit: text("visit").notNull(),
    /** The row of a repeating form (1, 2, ...: ADR 0026); 1 for every other form. */
    instance: integer("instance").notNull().default(1),
    currentVersion: integer("current_version").notNull().default(1),
    status: text("status", { enum: ["open", "locked"] })
      .notNull()
      .default("open"),
    createdAt: timestamp("created_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
    updatedAt: timestamp("updated_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
  },
  (t) => [
    unique("records_subject_form_visit_instance_uq").on(t.participantId, t.formCode, t.visit, t.instance),
    index("records_study_idx").on(t.studyId),
  ],
);

/** Every version of every record, append-only. `dataText` is the exact JCS text of the entered values. */
export const recordVersions = pgTable(
  "record_versions",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    recordId: uuid("record_id")
      .notNull()
      .references(() => records.id),
    studyId: uuid("study_id")
      .notNull()
      .references(() => studies.id),
    version: integer("version").notNull(),
    formId: uuid("form_id")
      .notNull()
      .references(() => forms.id),
    formVersion: integer("form_version").notNull(),
    dataText: text("data_text").notNull(),
    /**
     * The missing-data codes with their reasons, as JCS text of {field: {code, reason}}, and the calculated values as
     * JCS text of {field: number | null} (ADR 0025); null on versions written before (record.saved v1 and v2).
     */
    missingText: text("missing_text"),
    calculatedText: text("calculated_text"),
    reason: text("reason"),
    /**
     * An imported version's source (record.saved v4, issue 18), as JCS text of {job, fileSha256, row, claims}, the
     * claims holding the source system's user, time and reason in clear; null for a version entered here.
     */
    sourceText: text("source_text"),
    actorUserId: uuid("actor_user_id").references(() => users.id),
    /** The API token a write was made with (else null), and its name at the time (as in the payload's `token`). */
    actorTokenId: uuid("actor_token_id").references(() => apiTokens.id),
    actorTokenName: text("actor_token_name"),
    createdAt: timestamp("created_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
    entryId: uuid("entry_id").notNull(), // ledger entry id (no FK: ledger_entries is partitioned, ADR 0045)
  },
  (t) => [unique("record_versions_record_version_uq").on(t.recordId, t.version)],
);

/**
 * Idempotency keys of the integration API: the first response to (principal, key) is stored in the same
 * transaction as the write, so a retry gets exactly that response and nothing is written twice.
 */
export const idempotencyKeys = pgTable(
  "idempotency_keys",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    scope: text("scope").notNull(),
    key: text("key").notNull(),
    requestHash: bytea("request_hash").notNull(),
    status: integer("status").notNull(),
    responseText: text("response_text").notNull(),
    createdAt: timestamp("created_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
  },
  (t) => [unique("idempotency_keys_scope_key_uq").on(t.scope, t.key)],
);

/** Locks of a record, a subject's casebook or the whole study; released by a logged unlock. */
export const locks = pgTable(
  "locks",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    studyId: uuid("study_id")
      .notNull()
      .references(() => studies.id),
    scope: text("scope", { enum: ["record", "subject", "study"] }).notNull(),
    /** record id, participant id, or null for the study. */
    targetId: uuid("target_id"),
    reason: text("reason").notNull(),
    lockedBy: uuid("locked_by").references(() => users.id),
    lockedAt: timestamp("locked_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
    releasedBy: uuid("released_by").references(() => users.id),
    releasedAt: timestamp("released_at", { withTimezone: true, precision: 3 }),
    releaseReason: text("release_reason"),
  },
  (t) => [index("locks_study_idx").on(t.studyId)],
);

/** Part 11 e-signatures over one record version (manifestation: printed name, UTC time, meaning). */
export const signatures = pgTable(
  "signatures",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    studyId: uuid("study_id")
      .notNull()
      .references(() => studies.id),
    recordId: uuid("record_id")
      .notNull()
      .references(() => records.id),
    version: integer("version").notNull(),
    signedPayloadHash: bytea("signed_payload_hash").notNull(),
    meaning: text("meaning", { enum: ["authored", "reviewed", "approved"] }).notNull(),
    signerId: uuid("signer_id")
      .notNull()
      .references(() => users.id),
    printedName: text("printed_name").notNull(),
    signedAt: timestamp("signed_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
    entryId: uuid("entry_id").notNull(), // ledger entry id (no FK: ledger_entries is partitioned, ADR 0045)
    /**
     * The earlier signature this one repeats (same record, version, signer and meaning): set by migration 0021 on
     * the repeats signed before it, when the portal still allowed them; NULL on every other signature.
     */
    repeats: uuid("repeats").references((): AnyPgColumn => signatures.id),
  },
  (t) => [
    index("signatures_record_idx").on(t.recordId),
    // One signature per signer, version and meaning (issue 17): two at once cannot both land.
    uniqueIndex("signatures_once_idx").on(t.recordId, t.version, t.signerId, t.meaning).where(sql`repeats IS NULL`),
  ],
);

/** Monitoring queries on a field of a record: open -> answered -> closed. */
export const queries = pgTable(
  "queries",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    studyId: uuid("study_id")
      .notNull()
      .references(() => studies.id),
    recordId: uuid("record_id")
      .notNull()
      .references(() => records.id),
    field: text("field").notNull(),
    text: text("text").notNull(),
    answer: text("answer"),
    status: text("status", { enum: ["open", "answered", "closed"] })
      .notNull()
      .default("open"),
    openedBy: uuid("opened_by").references(() => users.id),
    openedAt: timestamp("opened_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
    answeredBy: uuid("answered_by").references(() => users.id),
    answeredAt: timestamp("answered_at", { withTimezone: true, precision: 3 }),
    closedBy: uuid("closed_by").references(() => users.id),
    closedAt: timestamp("closed_at", { withTimezone: true, precision: 3 }),
  },
  (t) => [index("queries_record_idx").on(t.recordId)],
);

/** Source data verification marks (per record version). */
export const sdvMarks = pgTable("sdv_marks", {
  id: uuid("id").primaryKey().defaultRandom(),
  recordId: uuid("record_id")
    .notNull()
    .references(() => records.id),
  version: integer("version").notNull(),
  markedBy: uuid("marked_by").references(() => users.id),
  markedAt: timestamp("marked_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
  entryId: uuid("entry_id").notNull(), // ledger entry id (no FK: ledger_entries is partitioned, ADR 0045)
});
