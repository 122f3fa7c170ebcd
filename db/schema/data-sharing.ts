/**
 * Participant-controlled sharing (issue 22, ADR 0066-0072): optional consent choices changed after signing, external
 * researchers' data-use requests, the data access committee's decisions, and the deliveries made for approved
 * requests with the participants each holds. Every row that is sealed names its ledger entry (no FK: ledger_entries
 * is partitioned, ADR 0045); the integrity audit compares each with it. All are append-only (migration 0026).
 * Reads of a participant's data are audit-trail events (audit_events, ADR 0016), not rows here.
 */
import {
  boolean,
  date,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
  unique,
  uuid,
} from "drizzle-orm/pg-core";
import { studies } from "./organizations.ts";
import { participants } from "./participants.ts";
import { bytea } from "./types.ts";
import { apiTokens, users } from "./users.ts";

const studyId = () =>
  uuid("study_id")
    .notNull()
    .references(() => studies.id);

/** A change of optional consent choices after signing: the items changed, key -> agreed now. */
export const consentChoiceChanges = pgTable(
  "consent_choice_changes",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    studyId: studyId(),
    participantId: uuid("participant_id")
      .notNull()
      .references(() => participants.id),
    choices: jsonb("choices").$type<Record<string, boolean>>().notNull(),
    /** Made by the participant through their verified link (no actor), or recorded by staff (actor). */
    byParticipant: boolean("by_participant").notNull(),
    actorUserId: uuid("actor_user_id").references(() => users.id),
    actorTokenId: uuid("actor_token_id").references(() => apiTokens.id),
    actorTokenName: text("actor_token_name"),
    createdAt: timestamp("created_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
    entryId: uuid("entry_id").notNull(),
  },
  (t) => [index("consent_choice_changes_participant_idx").on(t.participantId, t.createdAt)],
);

/** An external researcher's request for data: purpose (code list), fields, period, institution, justification. */
export const dataUseRequests = pgTable(
  "data_use_requests",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    studyId: studyId(),
    /** A code of the purpose list (app/data-sharing/purposes.ts: HL7 v3 PurposeOfUse). */
    purpose: text("purpose").notNull(),
    /** CRF fields as FORM.field, sorted. */
    fields: jsonb("fields").$type<string[]>().notNull(),
    periodFrom: date("period_from", { mode: "string" }).notNull(),
    periodTo: date("period_to", { mode: "string" }).notNull(),
    institution: text("institution").notNull(),
    justification: text("justification").notNull(),
    actorUserId: uuid("actor_user_id")
      .notNull()
      .references(() => users.id),
    createdAt: timestamp("created_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
    entryId: uuid("entry_id").notNull(),
  },
  (t) => [index("data_use_requests_study_idx").on(t.studyId, t.createdAt)],
);

/** The data access committee's decision on a request (once). */
export const dataUseDecisions = pgTable(
  "data_use_decisions",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    studyId: studyId(),
    requestId: uuid("request_id")
      .notNull()
      .references(() => dataUseRequests.id),
    outcome: text("outcome", { enum: ["approved", "declined"] }).notNull(),
    reason: text("reason").notNull(),
    /** Days a delivery can be downloaded after it is made; null when declined. */
    expiresInDays: integer("expires_in_days"),
    actorUserId: uuid("actor_user_id")
      .notNull()
      .references(() => users.id),
    createdAt: timestamp("created_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
    entryId: uuid("entry_id").notNull(),
  },
  (t) => [unique("data_use_decisions_request_uq").on(t.requestId)],
);

/**
 * A delivery of an approved request: the package (pseudonymised with a key of its own, kept only encrypted), its
 * manifest and the manifest's SHA-256 (sealed), how many participants it holds and why the others were left out,
 * and when it stops being downloadable.
 */
export const dataUseDeliveries = pgTable(
  "data_use_deliveries",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    studyId: studyId(),
    requestId: uuid("request_id")
      .notNull()
      .references(() => dataUseRequests.id),
    manifest: text("manifest").notNull(),
    manifestSha256: bytea("manifest_sha256").notNull(),
    /** The package's bytes (a ZIP of the manifest and the data); downloadable until `expiresAt`. */
    content: bytea("content").notNull(),
    /** The delivery's pseudonym key, encrypted under the deployment's data key (re-identification by the sponsor). */
    pseudonymKeyEnc: bytea("pseudonym_key_enc").notNull(),
    participantCount: integer("participant_count").notNull(),
    excluded: jsonb("excluded").$type<{ declined: number; withdrawn: number; notAsked: number }>().notNull(),
    expiresAt: timestamp("expires_at", { withTimezone: true, precision: 3 }).notNull(),
    actorUserId: uuid("actor_user_id")
      .notNull()
      .references(() => users.id),
    createdAt: timestamp("created_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
    entryId: uuid("entry_id").notNull(),
  },
  (t) => [index("data_use_deliveries_request_idx").on(t.requestId)],
);

/** The participants a delivery holds (its sealed `membersHash` covers them); shown on each participant's pages. */
export const dataUseDeliveryParticipants = pgTable(
  "data_use_delivery_participants",
  {
    deliveryId: uuid("delivery_id")
      .notNull()
      .references(() => dataUseDeliveries.id),
    studyId: studyId(),
    participantId: uuid("participant_id")
      .notNull()
      .references(() => participants.id),
  },
  (t) => [
    primaryKey({ columns: [t.deliveryId, t.participantId] }),
    index("data_use_delivery_participants_participant_idx").on(t.participantId),
  ],
);
