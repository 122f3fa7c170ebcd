ALTER TABLE "records" DROP CONSTRAINT "records_subject_form_visit_uq";--> statement-breakpoint
ALTER TABLE "record_versions" ADD COLUMN "missing_text" text;--> statement-breakpoint
ALTER TABLE "record_versions" ADD COLUMN "calculated_text" text;--> statement-breakpoint
ALTER TABLE "records" ADD COLUMN "instance" integer DEFAULT 1 NOT NULL;--> statement-breakpoint
ALTER TABLE "records" ADD CONSTRAINT "records_subject_form_visit_instance_uq" UNIQUE("participant_id","form_code","visit","instance");