/**
 * Running a study (issue 18): participant dispositions, the visit schedule, the history of every query, and imports
 * of existing data. Each sealed row names its ledger entry; the integrity audit checks each against it.
 */
import { boolean, date, index, integer, pgTable, text, timestamp, unique, uuid } from "drizzle-orm/pg-core";
import { DISPOSITIONS } from "../../anchoring/log/payloads.ts";
import { queries } from "./forms.ts";
import { studies } from "./organizations.ts";
import { participants } from "./participants.ts";
import { bytea } from "./types.ts";
import { apiTokens, users } from "./users.ts";

/** Every change of a participant's disposition, append-only; the latest is participants.disposition. */
export const participantDispositions = pgTable(
  "participant_dispositions",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    studyId: uuid("study_id")
      .notNull()
      .references(() => studies.id),
    participantId: uuid("participant_id")
      .notNull()
      .references(() => participants.id),
    status: text("status", { enum: DISPOSITIONS }).notNull(),
    previous: text("previous", { enum: DISPOSITIONS }),
    /** The date the change took effect (the screening, randomization or discontinuation date). */
    effectiveDate: date("effective_date", { mode: "string" }).notNull(),
    /** Why (required for a screen failure and a discontinuation); sealed as its salted hash. */
    reason: text("reason"),
    actorUserId: uuid("actor_user_id").references(() => users.id),
    actorTokenId: uuid("actor_token_id").references(() => apiTokens.id),
    actorTokenName: text("actor_token_name"),
    createdAt: timestamp("created_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
    entryId: uuid("entry_id").notNull(), // ledger entry id (no FK: ledger_entries is partitioned, ADR 0045)
  },
  (t) => [index("participant_dispositions_participant_idx").on(t.participantId)],
);

/**
 * A study's visit schedule, one append-only row per version (the highest is in force). `definitionText` is the
 * exact canonical JSON text of the definition (app/visit-schedule/schedule-definition.ts); its SHA-256 is sealed
 * in the version's `schedule.set` entry.
 */
export const visitSchedules = pgTable(
  "visit_schedules",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    studyId: uuid("study_id")
      .notNull()
      .references(() => studies.id),
    version: integer("version").notNull(),
    definitionText: text("definition_text").notNull(),
    definitionSha256: bytea("definition_sha256").notNull(),
    createdBy: uuid("created_by").references(() => users.id),
    actorTokenId: uuid("actor_token_id").references(() => apiTokens.id),
    actorTokenName: text("actor_token_name"),
    createdAt: timestamp("created_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
    entryId: uuid("entry_id").notNull(), // ledger entry id (no FK: ledger_entries is partitioned, ADR 0045)
  },
  (t) => [unique("visit_schedules_study_version_uq").on(t.studyId, t.version)],
);

export const QUERY_ACTIONS = ["opened", "answered", "closed", "reopened"] as const;

/** Each step of each query (raise, answer, close, re-open), append-only, with its ledger entry. */
export const queryEvents = pgTable(
  "query_events",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    queryId: uuid("query_id")
      .notNull()
      .references(() => queries.id),
    studyId: uuid("study_id")
      .notNull()
      .references(() => studies.id),
    action: text("action", { enum: QUERY_ACTIONS }).notNull(),
    /** The query's text (opened), the answer (answered), the reason (reopened); null for a close. */
    text: text("text"),
    actorUserId: uuid("actor_user_id").references(() => users.id),
    actorTokenId: uuid("actor_token_id").references(() => apiTokens.id),
    actorTokenName: text("actor_token_name"),
    at: timestamp("at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
    entryId: uuid("entry_id").notNull(), // ledger entry id (no FK: ledger_entries is partitioned, ADR 0045)
  },
  (t) => [index("query_events_query_idx").on(t.queryId), index("query_events_study_idx").on(t.studyId)],
);

export const IMPORT_STATUSES = ["queued", "running", "done", "problems", "failed"] as const;

/**
 * An import of existing data (CSV or ODM ClinicalData), run as a background job. A dry run lists the problems and
 * writes nothing; a real run is all or nothing per file, and ends with its `import.completed` entry. The file's
 * bytes are kept until the job ends.
 */
export const importJobs = pgTable(
  "import_jobs",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    studyId: uuid("study_id")
      .notNull()
      .references(() => studies.id),
    format: text("format", { enum: ["csv", "odm"] }).notNull(),
    /** The form a CSV file holds (ODM files name their forms). */
    formCode: text("form_code"),
    fileName: text("file_name").notNull(),
    fileSha256: bytea("file_sha256").notNull(),
    fileBytes: integer("file_bytes").notNull(),
    fileData: bytea("file_data"),
    /** The --map file's mappings (form and visit names to codes), as JSON text. */
    mapText: text("map_text"),
    dryRun: boolean("dry_run").notNull().default(false),
    status: text("status", { enum: IMPORT_STATUSES }).notNull().default("queued"),
    /** Rows (or ItemGroupData) to import, and how many are done: the progress shown. */
    total: integer("total").notNull().default(0),
    done: integer("done").notNull().default(0),
    records: integer("records").notNull().default(0),
    values: integer("values").notNull().default(0),
    problemCount: integer("problem_count").notNull().default(0),
    /** The problems found (row, column, message), as JSON text, the first 1,000. */
    problemsText: text("problems_text"),
    /** Why a job failed (an unusable file), in words. */
    error: text("error"),
    createdBy: uuid("created_by").references(() => users.id),
    actorTokenId: uuid("actor_token_id").references(() => apiTokens.id),
    actorTokenName: text("actor_token_name"),
    createdAt: timestamp("created_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
    startedAt: timestamp("started_at", { withTimezone: true, precision: 3 }),
    finishedAt: timestamp("finished_at", { withTimezone: true, precision: 3 }),
    entryId: uuid("entry_id"), // ledger entry id (no FK: partitioned log, ADR 0045)
  },
  (t) => [index("import_jobs_study_idx").on(t.studyId)],
);
