CREATE TABLE "import_jobs" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"study_id" uuid NOT NULL,
	"format" text NOT NULL,
	"form_code" text,
	"file_name" text NOT NULL,
	"file_sha256" "bytea" NOT NULL,
	"file_bytes" integer NOT NULL,
	"file_data" "bytea",
	"map_text" text,
	"dry_run" boolean DEFAULT false NOT NULL,
	"status" text DEFAULT 'queued' NOT NULL,
	"total" integer DEFAULT 0 NOT NULL,
	"done" integer DEFAULT 0 NOT NULL,
	"records" integer DEFAULT 0 NOT NULL,
	"values" integer DEFAULT 0 NOT NULL,
	"problem_count" integer DEFAULT 0 NOT NULL,
	"problems_text" text,
	"error" text,
	"created_by" uuid,
	"actor_token_id" uuid,
	"actor_token_name" text,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"started_at" timestamp (3) with time zone,
	"finished_at" timestamp (3) with time zone,
	"entry_id" uuid
);
--> statement-breakpoint
CREATE TABLE "participant_dispositions" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"study_id" uuid NOT NULL,
	"participant_id" uuid NOT NULL,
	"status" text NOT NULL,
	"previous" text,
	"effective_date" date NOT NULL,
	"reason" text,
	"actor_user_id" uuid,
	"actor_token_id" uuid,
	"actor_token_name" text,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"entry_id" uuid NOT NULL
);
--> statement-breakpoint
CREATE TABLE "query_events" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"query_id" uuid NOT NULL,
	"study_id" uuid NOT NULL,
	"action" text NOT NULL,
	"text" text,
	"actor_user_id" uuid,
	"actor_token_id" uuid,
	"actor_token_name" text,
	"at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"entry_id" uuid NOT NULL
);
--> statement-breakpoint
CREATE TABLE "visit_schedules" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"study_id" uuid NOT NULL,
	"version" integer NOT NULL,
	"definition_text" text NOT NULL,
	"definition_sha256" "bytea" NOT NULL,
	"created_by" uuid,
	"actor_token_id" uuid,
	"actor_token_name" text,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"entry_id" uuid NOT NULL,
	CONSTRAINT "visit_schedules_study_version_uq" UNIQUE("study_id","version")
);
--> statement-breakpoint
ALTER TABLE "outbox" ADD COLUMN "study_id" uuid;--> statement-breakpoint
ALTER TABLE "outbox" ADD COLUMN "attempts" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "outbox" ADD COLUMN "last_error" text;--> statement-breakpoint
ALTER TABLE "outbox" ADD COLUMN "next_attempt_at" timestamp (3) with time zone DEFAULT now() NOT NULL;--> statement-breakpoint
ALTER TABLE "outbox" ADD COLUMN "failed_at" timestamp (3) with time zone;--> statement-breakpoint
ALTER TABLE "participants" ADD COLUMN "disposition" text DEFAULT 'enrolled' NOT NULL;--> statement-breakpoint
ALTER TABLE "record_versions" ADD COLUMN "source_text" text;--> statement-breakpoint
ALTER TABLE "study_settings" ADD COLUMN "enrolment_targets" jsonb;--> statement-breakpoint
ALTER TABLE "import_jobs" ADD CONSTRAINT "import_jobs_study_id_studies_id_fk" FOREIGN KEY ("study_id") REFERENCES "public"."studies"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "import_jobs" ADD CONSTRAINT "import_jobs_created_by_users_id_fk" FOREIGN KEY ("created_by") REFERENCES "public"."users"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "import_jobs" ADD CONSTRAINT "import_jobs_actor_token_id_api_tokens_id_fk" FOREIGN KEY ("actor_token_id") REFERENCES "public"."api_tokens"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "import_jobs" ADD CONSTRAINT "import_jobs_entry_id_ledger_entries_id_fk" FOREIGN KEY ("entry_id") REFERENCES "public"."ledger_entries"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "participant_dispositions" ADD CONSTRAINT "participant_dispositions_study_id_studies_id_fk" FOREIGN KEY ("study_id") REFERENCES "public"."studies"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "participant_dispositions" ADD CONSTRAINT "participant_dispositions_participant_id_participants_id_fk" FOREIGN KEY ("participant_id") REFERENCES "public"."participants"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "participant_dispositions" ADD CONSTRAINT "participant_dispositions_actor_user_id_users_id_fk" FOREIGN KEY ("actor_user_id") REFERENCES "public"."users"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "participant_dispositions" ADD CONSTRAINT "participant_dispositions_actor_token_id_api_tokens_id_fk" FOREIGN KEY ("actor_token_id") REFERENCES "public"."api_tokens"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "participant_dispositions" ADD CONSTRAINT "participant_dispositions_entry_id_ledger_entries_id_fk" FOREIGN KEY ("entry_id") REFERENCES "public"."ledger_entries"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "query_events" ADD CONSTRAINT "query_events_query_id_queries_id_fk" FOREIGN KEY ("query_id") REFERENCES "public"."queries"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "query_events" ADD CONSTRAINT "query_events_study_id_studies_id_fk" FOREIGN KEY ("study_id") REFERENCES "public"."studies"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "query_events" ADD CONSTRAINT "query_events_actor_user_id_users_id_fk" FOREIGN KEY ("actor_user_id") REFERENCES "public"."users"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "query_events" ADD CONSTRAINT "query_events_actor_token_id_api_tokens_id_fk" FOREIGN KEY ("actor_token_id") REFERENCES "public"."api_tokens"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "query_events" ADD CONSTRAINT "query_events_entry_id_ledger_entries_id_fk" FOREIGN KEY ("entry_id") REFERENCES "public"."ledger_entries"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "visit_schedules" ADD CONSTRAINT "visit_schedules_study_id_studies_id_fk" FOREIGN KEY ("study_id") REFERENCES "public"."studies"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "visit_schedules" ADD CONSTRAINT "visit_schedules_created_by_users_id_fk" FOREIGN KEY ("created_by") REFERENCES "public"."users"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "visit_schedules" ADD CONSTRAINT "visit_schedules_actor_token_id_api_tokens_id_fk" FOREIGN KEY ("actor_token_id") REFERENCES "public"."api_tokens"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "visit_schedules" ADD CONSTRAINT "visit_schedules_entry_id_ledger_entries_id_fk" FOREIGN KEY ("entry_id") REFERENCES "public"."ledger_entries"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "import_jobs_study_idx" ON "import_jobs" USING btree ("study_id");--> statement-breakpoint
CREATE INDEX "participant_dispositions_participant_idx" ON "participant_dispositions" USING btree ("participant_id");--> statement-breakpoint
CREATE INDEX "query_events_query_idx" ON "query_events" USING btree ("query_id");--> statement-breakpoint
CREATE INDEX "query_events_study_idx" ON "query_events" USING btree ("study_id");--> statement-breakpoint
ALTER TABLE "outbox" ADD CONSTRAINT "outbox_study_id_studies_id_fk" FOREIGN KEY ("study_id") REFERENCES "public"."studies"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
-- Sealed history tables are append-only (issue 18), as the ledger's other data tables.
CREATE TRIGGER participant_dispositions_no_update BEFORE UPDATE OR DELETE ON participant_dispositions FOR EACH ROW EXECUTE FUNCTION trialseal_reject_change();--> statement-breakpoint
CREATE TRIGGER participant_dispositions_no_truncate BEFORE TRUNCATE ON participant_dispositions FOR EACH STATEMENT EXECUTE FUNCTION trialseal_reject_change();--> statement-breakpoint
CREATE TRIGGER visit_schedules_no_update BEFORE UPDATE OR DELETE ON visit_schedules FOR EACH ROW EXECUTE FUNCTION trialseal_reject_change();--> statement-breakpoint
CREATE TRIGGER visit_schedules_no_truncate BEFORE TRUNCATE ON visit_schedules FOR EACH STATEMENT EXECUTE FUNCTION trialseal_reject_change();--> statement-breakpoint
CREATE TRIGGER query_events_no_update BEFORE UPDATE OR DELETE ON query_events FOR EACH ROW EXECUTE FUNCTION trialseal_reject_change();--> statement-breakpoint
CREATE TRIGGER query_events_no_truncate BEFORE TRUNCATE ON query_events FOR EACH STATEMENT EXECUTE FUNCTION trialseal_reject_change();--> statement-breakpoint
-- The history of queries raised before this migration, from their ledger entries: who and when from the entry, the
-- texts from the query row (the entries hold them only as salted hashes).
INSERT INTO query_events (query_id, study_id, action, text, actor_user_id, actor_token_id, actor_token_name, at, entry_id)
SELECT q.id, q.study_id,
  CASE e.kind WHEN 'query.opened' THEN 'opened' WHEN 'query.answered' THEN 'answered' ELSE 'closed' END,
  CASE e.kind WHEN 'query.opened' THEN q.text WHEN 'query.answered' THEN q.answer ELSE NULL END,
  (e.payload_text::jsonb ->> 'actor')::uuid,
  (e.payload_text::jsonb -> 'token' ->> 'id')::uuid,
  e.payload_text::jsonb -> 'token' ->> 'name',
  e.at, e.id
FROM ledger_entries e
JOIN queries q ON q.id = (e.payload_text::jsonb ->> 'query')::uuid AND q.study_id = e.study_id
WHERE e.kind IN ('query.opened', 'query.answered', 'query.closed')
ORDER BY e.at, e.id;
