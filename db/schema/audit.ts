import { bigserial, boolean, index, jsonb, pgTable, text, timestamp, uuid } from "drizzle-orm/pg-core";

/**
 * The security and data audit trail (logins, failures, role changes, personal-data views, exports).
 * Append-only (trigger in migration 0001). Never holds personal data or secrets in `detail`.
 */
export const auditEvents = pgTable(
  "audit_events",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    at: timestamp("at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
    actorUserId: uuid("actor_user_id"),
    actorLabel: text("actor_label"),
    action: text("action").notNull(),
    outcome: text("outcome", { enum: ["success", "failure", "denied"] })
      .notNull()
      .default("success"),
    studyId: uuid("study_id"),
    siteId: uuid("site_id"),
    participantId: uuid("participant_id"),
    ip: text("ip"),
    detail: jsonb("detail").notNull().default({}),
    /**
     * Its `audit.event` ledger entry (ADR 0016), written in the same transaction. Null only for events written
     * before migration 0016.
     */
    entryId: uuid("entry_id").unique("audit_events_entry_uq"),
  },
  (t) => [index("audit_events_study_idx").on(t.studyId, t.at), index("audit_events_actor_idx").on(t.actorUserId, t.at)],
);

/** Whole-study audits started from the portal (they run in the background; the report is kept). */
export const auditRuns = pgTable(
  "audit_runs",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    studyId: uuid("study_id").notNull(),
    requestedBy: uuid("requested_by"),
    startedAt: timestamp("started_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
    finishedAt: timestamp("finished_at", { withTimezone: true, precision: 3 }),
    status: text("status", { enum: ["running", "done", "failed"] })
      .notNull()
      .default("running"),
    clean: boolean("clean"),
    reportText: text("report_text"),
    error: text("error"),
  },
  (t) => [index("audit_runs_study_idx").on(t.studyId, t.startedAt)],
);
