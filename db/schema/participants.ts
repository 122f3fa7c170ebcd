import { date, index, integer, jsonb, pgTable, text, timestamp, unique, uuid, boolean } from "drizzle-orm/pg-core";
import { sites, studies } from "./organizations.ts";
import { apiTokens, users } from "./users.ts";
import { bytea } from "./types.ts";
import { DISPOSITIONS } from "../../anchoring/log/payloads.ts";

/**
 * Participants are pseudonymous (subject code). Personal data sits in *_enc columns, each AES-256-GCM
 * under DATA_KEY. `subjectKeyEnc` is the per-subject HMAC key that binds personal data to ledger payloads;
 * destroying it (and the *_enc columns) is the erasure procedure. Trial data is retained.
 */
export const participants = pgTable(
  "participants",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    studyId: uuid("study_id")
      .notNull()
      .references(() => studies.id),
    siteId: uuid("site_id")
      .notNull()
      .references(() => sites.id),
    subjectCode: text("subject_code").notNull(),
    status: text("status", { enum: ["enrolled", "withdrawn", "completed", "screen_failed"] })
      .notNull()
      .default("enrolled"),
    /** The latest sealed disposition (participant_dispositions, issue 18); enrolled when none was set. */
    disposition: text("disposition", { enum: DISPOSITIONS }).notNull().default("enrolled"),
    nameEnc: bytea("name_enc"),
    emailEnc: bytea("email_enc"),
    phoneEnc: bytea("phone_enc"),
    birthDateEnc: bytea("birth_date_enc"),
    subjectKeyEnc: bytea("subject_key_enc"),
    userId: uuid("user_id").references(() => users.id),
    enrolledBy: uuid("enrolled_by").references(() => users.id),
    /** The API token that enrolled the participant (else null), and its name at the time. */
    actorTokenId: uuid("actor_token_id").references(() => apiTokens.id),
    actorTokenName: text("actor_token_name"),
    enrolledAt: timestamp("enrolled_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
    erasedAt: timestamp("erased_at", { withTimezone: true, precision: 3 }),
    entryId: uuid("entry_id"),
  },
  (t) => [
    unique("participants_study_subject_uq").on(t.studyId, t.subjectCode),
    index("participants_site_idx").on(t.siteId),
  ],
);

/** Versioned consent documents (Markdown), approved with IRB name and date. */
export const consentDocuments = pgTable(
  "consent_documents",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    studyId: uuid("study_id")
      .notNull()
      .references(() => studies.id),
    code: text("code").notNull(),
    version: text("version").notNull(),
    title: text("title").notNull(),
    language: text("language").notNull().default("en"),
    bodyMarkdown: text("body_markdown").notNull(),
    bodySha256: bytea("body_sha256").notNull(),
    status: text("status", { enum: ["draft", "approved", "retired"] })
      .notNull()
      .default("draft"),
    irbName: text("irb_name"),
    irbApprovedOn: date("irb_approved_on"),
    createdBy: uuid("created_by").references(() => users.id),
    createdAt: timestamp("created_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
    approvedBy: uuid("approved_by").references(() => users.id),
    approvedAt: timestamp("approved_at", { withTimezone: true, precision: 3 }),
    approvalEntryId: uuid("approval_entry_id"),
  },
  (t) => [unique("consent_documents_version_uq").on(t.studyId, t.code, t.version)],
);

export const SIGNER_ROLES = ["participant", "lar", "witness", "parent", "assent", "staff"] as const;
export type SignerRole = (typeof SIGNER_ROLES)[number];

/**
 * A one-time consent invitation (link + QR code) for an enrolled participant, or for their legally authorized
 * representative or parent. Only the token's SHA-256 is stored. Before signing, whoever opens the link must
 * enter a one-time code sent to the signer's own contact (email or SMS through the outbox): the code's hash,
 * expiry and attempts live here. `usedAt` is set once, by the signing transaction (single use).
 */
export const consentInvitations = pgTable(
  "consent_invitations",
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
    /**
     * Who signs through this link: the participant, a legally authorized representative, or a parent (with the
     * minor's assent).
     */
    signerRole: text("signer_role", { enum: ["participant", "lar", "parent"] })
      .notNull()
      .default("participant"),
    /** For lar/parent: the representative's name and contact, encrypted. */
    representativeNameEnc: bytea("representative_name_enc"),
    representativeContactEnc: bytea("representative_contact_enc"),
    /** A minor's assent is taken alongside the parent's permission. */
    assent: boolean("assent").notNull().default(false),
    channel: text("channel", { enum: ["email", "sms"] }).notNull(),
    tokenHash: bytea("token_hash").notNull().unique(),
    createdBy: uuid("created_by").references(() => users.id),
    createdAt: timestamp("created_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
    expiresAt: timestamp("expires_at", { withTimezone: true, precision: 3 }).notNull(),
    revokedAt: timestamp("revoked_at", { withTimezone: true, precision: 3 }),
    usedAt: timestamp("used_at", { withTimezone: true, precision: 3 }),
    otpHash: bytea("otp_hash"),
    otpExpiresAt: timestamp("otp_expires_at", { withTimezone: true, precision: 3 }),
    otpSends: integer("otp_sends").notNull().default(0),
    otpFailures: integer("otp_failures").notNull().default(0),
    verifiedAt: timestamp("verified_at", { withTimezone: true, precision: 3 }),
  },
  (t) => [index("consent_invitations_participant_idx").on(t.participantId)],
);

/** One signature on a consent document version (participant, representative, witness, staff countersign). */
export const consentSignatures = pgTable(
  "consent_signatures",
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
    signerRole: text("signer_role", { enum: SIGNER_ROLES }).notNull(),
    meaning: text("meaning").notNull(),
    printedNameEnc: bytea("printed_name_enc"),
    userId: uuid("user_id").references(() => users.id),
    fromStaffDevice: boolean("from_staff_device").notNull().default(false),
    options: jsonb("options").notNull().default({}),
    signedAt: timestamp("signed_at", { withTimezone: true, precision: 3 }).notNull(),
    entryId: uuid("entry_id").notNull(),
    invitationId: uuid("invitation_id").references(() => consentInvitations.id),
    /** The signature this one countersigns or witnesses (staff, witness) or accompanies (assent). */
    countersigns: uuid("countersigns"),
    /** The public verification page's random token (QR code): its hash to look it up, encrypted to show it again. */
    publicTokenHash: bytea("public_token_hash").unique(),
    publicTokenEnc: bytea("public_token_enc"),
  },
  (t) => [index("consent_signatures_participant_idx").on(t.participantId)],
);

/** Full or partial withdrawal of consent. Data collected before it is retained. */
export const consentWithdrawals = pgTable("consent_withdrawals", {
  id: uuid("id").primaryKey().defaultRandom(),
  studyId: uuid("study_id")
    .notNull()
    .references(() => studies.id),
  participantId: uuid("participant_id")
    .notNull()
    .references(() => participants.id),
  scope: text("scope", { enum: ["full", "partial"] }).notNull(),
  /** { followUp: boolean, optionalWithdrawn: string[] }: what the participant still allows. */
  allows: jsonb("allows").notNull().default({}),
  reason: text("reason"),
  /** Withdrawn by the participant through their link (null recordedBy) or recorded by site staff. */
  byParticipant: boolean("by_participant").notNull().default(false),
  recordedBy: uuid("recorded_by").references(() => users.id),
  withdrawnAt: timestamp("withdrawn_at", { withTimezone: true, precision: 3 }).notNull(),
  entryId: uuid("entry_id").notNull(),
});

/**
 * The contacts a consent identity check can go to (ADR 0018): the participant's own email/phone from enrolment and
 * each legally authorized representative's or parent's, with who entered it. `contactHmac` is the HMAC-SHA-256 of the
 * normalised contact under a per-deployment key (never in a ledger payload or bundle): the integrity audit finds one
 * contact used for several participants or equal to a staff account's. A contact is usable for an invitation only
 * once confirmed by a second member of staff (or the participant's identity verified in person): `confirmedBy`,
 * `confirmedAt`, `method`, and the sealed `consent.contact_confirmed` entry.
 */
export const signerContacts = pgTable(
  "signer_contacts",
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
    role: text("role", { enum: ["participant", "lar", "parent"] }).notNull(),
    channel: text("channel", { enum: ["email", "sms"] }).notNull(),
    contactHmac: bytea("contact_hmac").notNull(),
    /** Representatives only (the participant's own contact stays in participants): name and contact, encrypted. */
    nameEnc: bytea("name_enc"),
    contactEnc: bytea("contact_enc"),
    enteredBy: uuid("entered_by").references(() => users.id),
    enteredAt: timestamp("entered_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
    entryId: uuid("entry_id"),
    confirmedBy: uuid("confirmed_by").references(() => users.id),
    confirmedAt: timestamp("confirmed_at", { withTimezone: true, precision: 3 }),
    /** staff: a second member of staff confirmed the contact; in_person: the signer was checked at a visit. */
    method: text("method", { enum: ["staff", "in_person"] }),
    confirmEntryId: uuid("confirm_entry_id"),
  },
  (t) => [
    index("signer_contacts_participant_idx").on(t.participantId),
    index("signer_contacts_hmac_idx").on(t.studyId, t.contactHmac),
  ],
);
