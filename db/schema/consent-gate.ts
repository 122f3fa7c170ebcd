import { boolean, integer, jsonb, pgTable, timestamp, unique, uuid, index } from "drizzle-orm/pg-core";
import { studies } from "./organizations.ts";
import { consentDocuments, participants } from "./participants.ts";
import { users } from "./users.ts";
import { bytea } from "./types.ts";

/**
 * A study's settings, one append-only row per change (the highest `version` is in force), each with its
 * `study.settings_changed` ledger entry. `formsBeforeConsent`: the CRF form codes that may be saved for a
 * participant before their consent is complete (pre-screening); empty by default.
 */
export const studySettings = pgTable(
  "study_settings",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    studyId: uuid("study_id")
      .notNull()
      .references(() => studies.id),
    version: integer("version").notNull(),
    formsBeforeConsent: jsonb("forms_before_consent").$type<string[]>().notNull().default([]),
    /** Enrolment targets (issue 18): for the study and per site code; null when none is set. */
    enrolmentTargets: jsonb("enrolment_targets").$type<{ total: number | null; sites: Record<string, number> }>(),
    /** Issue 22 (ADR 0067): participants see the names of the staff who used their data (default: role only). */
    staffNamesToParticipants: boolean("staff_names_to_participants").notNull().default(false),
    /** The user who changed them (null: the operator's CLI). */
    changedBy: uuid("changed_by").references(() => users.id),
    changedAt: timestamp("changed_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
    entryId: uuid("entry_id").notNull(), // ledger entry id (no FK: ledger_entries is partitioned, ADR 0045)
  },
  (t) => [unique("study_settings_version_uq").on(t.studyId, t.version)],
);

/**
 * A consent obtained on paper: the scan's SHA-256 (sealed in `consent.paper_scanned`; the scan itself stays in the
 * investigator site file, never in the portal) and an investigator's attestation (`consent.paper_attested`),
 * set once. Attested, it counts as a complete consent to its document version.
 */
export const paperConsents = pgTable(
  "paper_consents",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    studyId: uuid("study_id")
      .notNull()
      .references(() => studies.id),
    participantId: uuid("participant_id")
      .notNull()
      .references(() => participants.id),
    documentId: uuid("document_id")
      .notNull()
      .references(() => consentDocuments.id),
    scanSha256: bytea("scan_sha256").notNull(),
    scanBytes: integer("scan_bytes").notNull(),
    uploadedBy: uuid("uploaded_by")
      .notNull()
      .references(() => users.id),
    uploadedAt: timestamp("uploaded_at", { withTimezone: true, precision: 3 }).notNull(),
    entryId: uuid("entry_id").notNull(), // ledger entry id (no FK: ledger_entries is partitioned, ADR 0045)
    attestedBy: uuid("attested_by").references(() => users.id),
    attestedAt: timestamp("attested_at", { withTimezone: true, precision: 3 }),
    attestEntryId: uuid("attest_entry_id"), // ledger entry id (no FK: partitioned log, ADR 0045)
  },
  (t) => [index("paper_consents_participant_idx").on(t.participantId)],
);
