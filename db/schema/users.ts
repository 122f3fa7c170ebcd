import { sql } from "drizzle-orm";
import {
  bigint,
  boolean,
  doublePrecision,
  index,
  integer,
  jsonb,
  pgTable,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from "drizzle-orm/pg-core";
import { studies, sites } from "./organizations.ts";
import { bytea } from "./types.ts";

/** Staff and participant accounts. Passwords are argon2id hashes; never stored in clear. */
export const users = pgTable("users", {
  id: uuid("id").primaryKey().defaultRandom(),
  email: text("email").notNull().unique(), // stored lower-cased
  fullName: text("full_name").notNull(),
  passwordHash: text("password_hash").notNull(),
  platformAdmin: boolean("platform_admin").notNull().default(false),
  status: text("status", { enum: ["active", "disabled"] })
    .notNull()
    .default("active"),
  /** Consecutive wrong passwords (all sources), counted in SQL before the check; notifies, never locks. */
  failedLogins: integer("failed_logins").notNull().default(0),
  /** Unused since ADR 0022 (the password step no longer locks; see `lockedAt`). */
  lockedUntil: timestamp("locked_until", { withTimezone: true, precision: 3 }),
  /** Consecutive wrong second-factor codes across sign-in attempts, counted in SQL before the check. */
  mfaFailures: integer("mfa_failures").notNull().default(0),
  /** Hard lock after too many wrong second-factor codes (ADR 0022): lifted only by an admin or a password reset. */
  lockedAt: timestamp("locked_at", { withTimezone: true, precision: 3 }),
  totpSecretEnc: bytea("totp_secret_enc"),
  totpEnabledAt: timestamp("totp_enabled_at", { withTimezone: true, precision: 3 }),
  /** The last TOTP time step accepted: a code is never accepted twice. */
  totpLastStep: bigint("totp_last_step", { mode: "number" }),
  passwordChangedAt: timestamp("password_changed_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
  createdAt: timestamp("created_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
});

export const ROLES = [
  "admin",
  "investigator",
  "coordinator",
  "monitor",
  "data_manager",
  "regulator",
  "participant",
  /** Issue 20: the only roles that see arms before unblinding (ADR 0053). */
  "unblinded_statistician",
  "unblinded_pharmacist",
  /** Issue 21: the depot (registers lots and kits, ships; sees kit types) and the blinded site pharmacist. */
  "depot_manager",
  "site_pharmacist",
  /**
   * Issue 22 (ADR 0069): an external researcher (outside the study team: sees only their own data-use requests and
   * deliveries) and the sponsor's data access committee (decides on requests).
   */
  "external_researcher",
  "data_access_committee",
] as const;
export type Role = (typeof ROLES)[number];

/** A user's role in one study, optionally limited to one site (coordinators, investigators). */
export const memberships = pgTable(
  "memberships",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    userId: uuid("user_id")
      .notNull()
      .references(() => users.id),
    studyId: uuid("study_id")
      .notNull()
      .references(() => studies.id),
    siteId: uuid("site_id").references(() => sites.id),
    role: text("role", { enum: ROLES }).notNull(),
    /** For investigators: principal or sub-investigator. */
    qualifier: text("qualifier"),
    grantedBy: uuid("granted_by").references(() => users.id),
    grantedAt: timestamp("granted_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
    revokedAt: timestamp("revoked_at", { withTimezone: true, precision: 3 }),
  },
  (t) => [index("memberships_user_idx").on(t.userId), index("memberships_study_idx").on(t.studyId)],
);

/** Delegation of authority log (ICH E6(R3)): tasks an investigator delegates to site staff. */
export const delegations = pgTable(
  "delegations",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    studyId: uuid("study_id")
      .notNull()
      .references(() => studies.id),
    siteId: uuid("site_id")
      .notNull()
      .references(() => sites.id),
    delegatorId: uuid("delegator_id")
      .notNull()
      .references(() => users.id),
    delegateId: uuid("delegate_id")
      .notNull()
      .references(() => users.id),
    task: text("task").notNull(),
    startsOn: text("starts_on").notNull(), // ISO date
    endsOn: text("ends_on"), // ISO date, inclusive; null = open-ended
    training: jsonb("training").notNull().default([]),
    entryId: uuid("entry_id"),
    createdAt: timestamp("created_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
    revokedAt: timestamp("revoked_at", { withTimezone: true, precision: 3 }),
    /** Why it was revoked: kept here, its salted hash in the delegation.revoked entry (ADR 0020). */
    revokeReason: text("revoke_reason"),
  },
  (t) => [index("delegations_delegate_idx").on(t.delegateId, t.studyId)],
);

/** Server-side sessions. The cookie carries a random token; only its SHA-256 is stored. */
export const sessions = pgTable(
  "sessions",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    tokenHash: bytea("token_hash").notNull().unique(),
    userId: uuid("user_id")
      .notNull()
      .references(() => users.id),
    createdAt: timestamp("created_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
    lastSeenAt: timestamp("last_seen_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
    expiresAt: timestamp("expires_at", { withTimezone: true, precision: 3 }).notNull(),
    ip: text("ip"),
    userAgent: text("user_agent"),
    revokedAt: timestamp("revoked_at", { withTimezone: true, precision: 3 }),
    /** full: signed in; mfa: password checked, TOTP code pending; enroll: must enrol TOTP before anything else. */
    stage: text("stage", { enum: ["full", "mfa", "enroll"] })
      .notNull()
      .default("full"),
    mfaAttempts: integer("mfa_attempts").notNull().default(0),
  },
  (t) => [index("sessions_user_idx").on(t.userId)],
);

/** Password reset links: only the SHA-256 of the token is stored; single use, short-lived. */
export const passwordResets = pgTable("password_resets", {
  id: uuid("id").primaryKey().defaultRandom(),
  userId: uuid("user_id")
    .notNull()
    .references(() => users.id),
  tokenHash: bytea("token_hash").notNull().unique(),
  expiresAt: timestamp("expires_at", { withTimezone: true, precision: 3 }).notNull(),
  usedAt: timestamp("used_at", { withTimezone: true, precision: 3 }),
  createdAt: timestamp("created_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
});

/** Outgoing mail and SMS. Delivery is pluggable; in development this table is the mailbox. */
export const outbox = pgTable("outbox", {
  id: uuid("id").primaryKey().defaultRandom(),
  channel: text("channel", { enum: ["email", "sms"] })
    .notNull()
    .default("email"),
  toAddress: text("to_address").notNull(),
  subject: text("subject").notNull(),
  body: text("body").notNull(),
  kind: text("kind").notNull(),
  createdAt: timestamp("created_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
  sentAt: timestamp("sent_at", { withTimezone: true, precision: 3 }),
  /** The study a notification is about (issue 18); null for account mail. */
  studyId: uuid("study_id").references(() => studies.id),
  /** Delivery attempts so far, the last failure in words, and when the next attempt is due. */
  attempts: integer("attempts").notNull().default(0),
  lastError: text("last_error"),
  nextAttemptAt: timestamp("next_attempt_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
  /** Set when the sender gave up after its retries: shown on the outbox page, and sent again on request. */
  failedAt: timestamp("failed_at", { withTimezone: true, precision: 3 }),
});

/**
 * Sign-in back-off counters (ADR 0022), one row per key: an account and source, or a source alone. Counted in
 * SQL before a password is checked, so parallel attempts cannot slip past; shared by every portal process.
 */
export const signInThrottle = pgTable("sign_in_throttle", {
  key: text("key").primaryKey(),
  failures: integer("failures").notNull().default(0),
  blockedUntil: timestamp("blocked_until", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
  updatedAt: timestamp("updated_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
});

/** The API's per-token rate limit (token buckets), in the database so that every portal process shares it. */
export const apiRateBuckets = pgTable("api_rate_buckets", {
  key: text("key").primaryKey(),
  tokens: doublePrecision("tokens").notNull(),
  at: timestamp("at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
});

/** Study-scoped API tokens for integrations. Only the SHA-256 of the token is stored. */
export const apiTokens = pgTable(
  "api_tokens",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    studyId: uuid("study_id")
      .notNull()
      .references(() => studies.id),
    name: text("name").notNull(),
    tokenHash: bytea("token_hash").notNull().unique(),
    tokenPrefix: text("token_prefix").notNull(),
    /** Extra actions beyond the integration roles (coordinator + monitor), e.g. "forms.manage". */
    scopes: text("scopes").array().notNull().default([]),
    createdBy: uuid("created_by").references(() => users.id),
    createdAt: timestamp("created_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
    lastUsedAt: timestamp("last_used_at", { withTimezone: true, precision: 3 }),
    revokedAt: timestamp("revoked_at", { withTimezone: true, precision: 3 }),
  },
  /** Token names are unique per study (case-insensitive): every write is attributed to a token by name too. */
  (t) => [uniqueIndex("api_tokens_study_name_uq").on(t.studyId, sql`lower(${t.name})`)],
);
