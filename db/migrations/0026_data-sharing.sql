CREATE TABLE "consent_choice_changes" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"study_id" uuid NOT NULL,
	"participant_id" uuid NOT NULL,
	"choices" jsonb NOT NULL,
	"by_participant" boolean NOT NULL,
	"actor_user_id" uuid,
	"actor_token_id" uuid,
	"actor_token_name" text,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"entry_id" uuid NOT NULL
);
--> statement-breakpoint
CREATE TABLE "data_use_decisions" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"study_id" uuid NOT NULL,
	"request_id" uuid NOT NULL,
	"outcome" text NOT NULL,
	"reason" text NOT NULL,
	"expires_in_days" integer,
	"actor_user_id" uuid NOT NULL,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"entry_id" uuid NOT NULL,
	CONSTRAINT "data_use_decisions_request_uq" UNIQUE("request_id")
);
--> statement-breakpoint
CREATE TABLE "data_use_deliveries" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"study_id" uuid NOT NULL,
	"request_id" uuid NOT NULL,
	"manifest" text NOT NULL,
	"manifest_sha256" "bytea" NOT NULL,
	"content" "bytea" NOT NULL,
	"pseudonym_key_enc" "bytea" NOT NULL,
	"participant_count" integer NOT NULL,
	"excluded" jsonb NOT NULL,
	"expires_at" timestamp (3) with time zone NOT NULL,
	"actor_user_id" uuid NOT NULL,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"entry_id" uuid NOT NULL
);
--> statement-breakpoint
CREATE TABLE "data_use_delivery_participants" (
	"delivery_id" uuid NOT NULL,
	"study_id" uuid NOT NULL,
	"participant_id" uuid NOT NULL,
	CONSTRAINT "data_use_delivery_participants_delivery_id_participant_id_pk" PRIMARY KEY("delivery_id","participant_id")
);
--> statement-breakpoint
CREATE TABLE "data_use_requests" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"study_id" uuid NOT NULL,
	"purpose" text NOT NULL,
	"fields" jsonb NOT NULL,
	"period_from" date NOT NULL,
	"period_to" date NOT NULL,
	"institution" text NOT NULL,
	"justification" text NOT NULL,
	"actor_user_id" uuid NOT NULL,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"entry_id" uuid NOT NULL
);
--> statement-breakpoint
ALTER TABLE "study_settings" ADD COLUMN "staff_names_to_participants" boolean DEFAULT false NOT NULL;--> statement-breakpoint
ALTER TABLE "consent_choice_changes" ADD CONSTRAINT "consent_choice_changes_study_id_studies_id_fk" FOREIGN KEY ("study_id") REFERENCES "public"."studies"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "consent_choice_changes" ADD CONSTRAINT "consent_choice_changes_participant_id_participants_id_fk" FOREIGN KEY ("participant_id") REFERENCES "public"."participants"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "consent_choice_changes" ADD CONSTRAINT "consent_choice_changes_actor_user_id_users_id_fk" FOREIGN KEY ("actor_user_id") REFERENCES "public"."users"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "consent_choice_changes" ADD CONSTRAINT "consent_choice_changes_actor_token_id_api_tokens_id_fk" FOREIGN KEY ("actor_token_id") REFERENCES "public"."api_tokens"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "data_use_decisions" ADD CONSTRAINT "data_use_decisions_study_id_studies_id_fk" FOREIGN KEY ("study_id") REFERENCES "public"."studies"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "data_use_decisions" ADD CONSTRAINT "data_use_decisions_request_id_data_use_requests_id_fk" FOREIGN KEY ("request_id") REFERENCES "public"."data_use_requests"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "data_use_decisions" ADD CONSTRAINT "data_use_decisions_actor_user_id_users_id_fk" FOREIGN KEY ("actor_user_id") REFERENCES "public"."users"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "data_use_deliveries" ADD CONSTRAINT "data_use_deliveries_study_id_studies_id_fk" FOREIGN KEY ("study_id") REFERENCES "public"."studies"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "data_use_deliveries" ADD CONSTRAINT "data_use_deliveries_request_id_data_use_requests_id_fk" FOREIGN KEY ("request_id") REFERENCES "public"."data_use_requests"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "data_use_deliveries" ADD CONSTRAINT "data_use_deliveries_actor_user_id_users_id_fk" FOREIGN KEY ("actor_user_id") REFERENCES "public"."users"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "data_use_delivery_participants" ADD CONSTRAINT "data_use_delivery_participants_delivery_id_data_use_deliveries_id_fk" FOREIGN KEY ("delivery_id") REFERENCES "public"."data_use_deliveries"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "data_use_delivery_participants" ADD CONSTRAINT "data_use_delivery_participants_study_id_studies_id_fk" FOREIGN KEY ("study_id") REFERENCES "public"."studies"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "data_use_delivery_participants" ADD CONSTRAINT "data_use_delivery_participants_participant_id_participants_id_fk" FOREIGN KEY ("participant_id") REFERENCES "public"."participants"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "data_use_requests" ADD CONSTRAINT "data_use_requests_study_id_studies_id_fk" FOREIGN KEY ("study_id") REFERENCES "public"."studies"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "data_use_requests" ADD CONSTRAINT "data_use_requests_actor_user_id_users_id_fk" FOREIGN KEY ("actor_user_id") REFERENCES "public"."users"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "consent_choice_changes_participant_idx" ON "consent_choice_changes" USING btree ("participant_id","created_at");--> statement-breakpoint
CREATE INDEX "data_use_deliveries_request_idx" ON "data_use_deliveries" USING btree ("request_id");--> statement-breakpoint
CREATE INDEX "data_use_delivery_participants_participant_idx" ON "data_use_delivery_participants" USING btree ("participant_id");--> statement-breakpoint
CREATE INDEX "data_use_requests_study_idx" ON "data_use_requests" USING btree ("study_id","created_at");--> statement-breakpoint
CREATE TRIGGER consent_choice_changes_no_update BEFORE UPDATE OR DELETE ON consent_choice_changes FOR EACH ROW EXECUTE FUNCTION trialseal_reject_change();--> statement-breakpoint
CREATE TRIGGER consent_choice_changes_no_truncate BEFORE TRUNCATE ON consent_choice_changes FOR EACH STATEMENT EXECUTE FUNCTION trialseal_reject_change();--> statement-breakpoint
CREATE TRIGGER data_use_requests_no_update BEFORE UPDATE OR DELETE ON data_use_requests FOR EACH ROW EXECUTE FUNCTION trialseal_reject_change();--> statement-breakpoint
CREATE TRIGGER data_use_requests_no_truncate BEFORE TRUNCATE ON data_use_requests FOR EACH STATEMENT EXECUTE FUNCTION trialseal_reject_change();--> statement-breakpoint
CREATE TRIGGER data_use_decisions_no_update BEFORE UPDATE OR DELETE ON data_use_decisions FOR EACH ROW EXECUTE FUNCTION trialseal_reject_change();--> statement-breakpoint
CREATE TRIGGER data_use_decisions_no_truncate BEFORE TRUNCATE ON data_use_decisions FOR EACH STATEMENT EXECUTE FUNCTION trialseal_reject_change();--> statement-breakpoint
CREATE TRIGGER data_use_deliveries_no_update BEFORE UPDATE OR DELETE ON data_use_deliveries FOR EACH ROW EXECUTE FUNCTION trialseal_reject_change();--> statement-breakpoint
CREATE TRIGGER data_use_deliveries_no_truncate BEFORE TRUNCATE ON data_use_deliveries FOR EACH STATEMENT EXECUTE FUNCTION trialseal_reject_change();--> statement-breakpoint
CREATE TRIGGER data_use_delivery_participants_no_update BEFORE UPDATE OR DELETE ON data_use_delivery_participants FOR EACH ROW EXECUTE FUNCTION trialseal_reject_change();--> statement-breakpoint
CREATE TRIGGER data_use_delivery_participants_no_truncate BEFORE TRUNCATE ON data_use_delivery_participants FOR EACH STATEMENT EXECUTE FUNCTION trialseal_reject_change();
