CREATE TABLE "audit_runs" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"study_id" uuid NOT NULL,
	"requested_by" uuid,
	"started_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"finished_at" timestamp (3) with time zone,
	"status" text DEFAULT 'running' NOT NULL,
	"clean" boolean,
	"report_text" text,
	"error" text
);
--> statement-breakpoint
CREATE INDEX "audit_runs_study_idx" ON "audit_runs" USING btree ("study_id","started_at");