CREATE TABLE "database_locks" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"study_id" uuid NOT NULL,
	"lock_id" uuid NOT NULL,
	"analysis_file_name" text NOT NULL,
	"analysis_sha256" "bytea" NOT NULL,
	"analysis_bytes" integer NOT NULL,
	"analysis_data" "bytea" NOT NULL,
	"records" integer NOT NULL,
	"actor_user_id" uuid,
	"actor_token_id" uuid,
	"actor_token_name" text,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"entry_id" uuid NOT NULL
);
--> statement-breakpoint
CREATE TABLE "document_site_approvals" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"study_id" uuid NOT NULL,
	"document_id" uuid NOT NULL,
	"site_id" uuid NOT NULL,
	"approved_on" date NOT NULL,
	"actor_user_id" uuid,
	"actor_token_id" uuid,
	"actor_token_name" text,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"entry_id" uuid NOT NULL,
	CONSTRAINT "document_site_approvals_uq" UNIQUE("document_id","site_id")
);
--> statement-breakpoint
CREATE TABLE "emergency_unblindings" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"study_id" uuid NOT NULL,
	"allocation_id" uuid NOT NULL,
	"reason" text NOT NULL,
	"actor_user_id" uuid,
	"actor_token_id" uuid,
	"actor_token_name" text,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"entry_id" uuid NOT NULL
);
--> statement-breakpoint
CREATE TABLE "randomization_allocations" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"study_id" uuid NOT NULL,
	"list_id" uuid NOT NULL,
	"stratum_id" uuid NOT NULL,
	"slot_id" uuid NOT NULL,
	"participant_id" uuid NOT NULL,
	"seq" integer NOT NULL,
	"number" text NOT NULL,
	"actor_user_id" uuid,
	"actor_token_id" uuid,
	"actor_token_name" text,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"entry_id" uuid NOT NULL,
	CONSTRAINT "randomization_allocations_slot_uq" UNIQUE("slot_id"),
	CONSTRAINT "randomization_allocations_participant_uq" UNIQUE("participant_id")
);
--> statement-breakpoint
CREATE TABLE "randomization_lists" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"study_id" uuid NOT NULL,
	"source" text NOT NULL,
	"design_text" text NOT NULL,
	"seed" "bytea",
	"upload_text" text,
	"upload_sha256" "bytea",
	"slots_text" text,
	"design_nonce" "bytea" NOT NULL,
	"actor_user_id" uuid,
	"actor_token_id" uuid,
	"actor_token_name" text,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"draft_entry_id" uuid NOT NULL,
	"discarded_at" timestamp (3) with time zone,
	"discarded_by" uuid,
	"discard_entry_id" uuid,
	"committed_at" timestamp (3) with time zone,
	"committed_by" uuid,
	"entry_id" uuid
);
--> statement-breakpoint
CREATE TABLE "randomization_slots" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"study_id" uuid NOT NULL,
	"stratum_id" uuid NOT NULL,
	"seq" integer NOT NULL,
	"arm" text NOT NULL,
	"kit_type" text NOT NULL,
	"salt" text NOT NULL,
	"block" integer,
	"block_size" integer,
	"leaf" "bytea" NOT NULL,
	CONSTRAINT "randomization_slots_seq_uq" UNIQUE("stratum_id","seq")
);
--> statement-breakpoint
CREATE TABLE "randomization_strata" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"study_id" uuid NOT NULL,
	"list_id" uuid NOT NULL,
	"key" text NOT NULL,
	"position" integer NOT NULL,
	"site_id" uuid NOT NULL,
	"size" integer NOT NULL,
	"root" "bytea" NOT NULL,
	CONSTRAINT "randomization_strata_key_uq" UNIQUE("list_id","key"),
	CONSTRAINT "randomization_strata_pos_uq" UNIQUE("list_id","position")
);
--> statement-breakpoint
CREATE TABLE "randomization_unblindings" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"study_id" uuid NOT NULL,
	"list_id" uuid NOT NULL,
	"database_lock_id" uuid NOT NULL,
	"actor_user_id" uuid,
	"actor_token_id" uuid,
	"actor_token_name" text,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"entry_id" uuid NOT NULL,
	CONSTRAINT "randomization_unblindings_list_uq" UNIQUE("list_id")
);
--> statement-breakpoint
CREATE TABLE "sap_outcome_sets" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"study_id" uuid NOT NULL,
	"version" integer NOT NULL,
	"sap_document_id" uuid NOT NULL,
	"outcomes_text" text NOT NULL,
	"after_first_enrolment" boolean NOT NULL,
	"reason" text,
	"actor_user_id" uuid,
	"actor_token_id" uuid,
	"actor_token_name" text,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"entry_id" uuid NOT NULL,
	CONSTRAINT "sap_outcome_sets_version_uq" UNIQUE("study_id","version")
);
--> statement-breakpoint
CREATE TABLE "study_documents" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"study_id" uuid NOT NULL,
	"type" text NOT NULL,
	"version" text NOT NULL,
	"file_name" text NOT NULL,
	"sha256" "bytea" NOT NULL,
	"bytes" integer NOT NULL,
	"content" "bytea" NOT NULL,
	"approved_on" date NOT NULL,
	"approving_body" text NOT NULL,
	"replaces_id" uuid,
	"reason" text,
	"actor_user_id" uuid,
	"actor_token_id" uuid,
	"actor_token_name" text,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"entry_id" uuid NOT NULL,
	CONSTRAINT "study_documents_version_uq" UNIQUE("study_id","type","version"),
	CONSTRAINT "study_documents_sha256_uq" UNIQUE("study_id","sha256")
);
--> statement-breakpoint
CREATE TABLE "study_registrations" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"study_id" uuid NOT NULL,
	"published" boolean NOT NULL,
	"actor_user_id" uuid,
	"actor_token_id" uuid,
	"actor_token_name" text,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"entry_id" uuid NOT NULL
);
--> statement-breakpoint
ALTER TABLE "database_locks" ADD CONSTRAINT "database_locks_study_id_studies_id_fk" FOREIGN KEY ("study_id") REFERENCES "public"."studies"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "database_locks" ADD CONSTRAINT "database_locks_lock_id_locks_id_fk" FOREIGN KEY ("lock_id") REFERENCES "public"."locks"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "database_locks" ADD CONSTRAINT "database_locks_actor_user_id_users_id_fk" FOREIGN KEY ("actor_user_id") REFERENCES "public"."users"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "database_locks" ADD CONSTRAINT "database_locks_actor_token_id_api_tokens_id_fk" FOREIGN KEY ("actor_token_id") REFERENCES "public"."api_tokens"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "document_site_approvals" ADD CONSTRAINT "document_site_approvals_study_id_studies_id_fk" FOREIGN KEY ("study_id") REFERENCES "public"."studies"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "document_site_approvals" ADD CONSTRAINT "document_site_approvals_document_id_study_documents_id_fk" FOREIGN KEY ("document_id") REFERENCES "public"."study_documents"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "document_site_approvals" ADD CONSTRAINT "document_site_approvals_site_id_sites_id_fk" FOREIGN KEY ("site_id") REFERENCES "public"."sites"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "document_site_approvals" ADD CONSTRAINT "document_site_approvals_actor_user_id_users_id_fk" FOREIGN KEY ("actor_user_id") REFERENCES "public"."users"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "document_site_approvals" ADD CONSTRAINT "document_site_approvals_actor_token_id_api_tokens_id_fk" FOREIGN KEY ("actor_token_id") REFERENCES "public"."api_tokens"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "emergency_unblindings" ADD CONSTRAINT "emergency_unblindings_study_id_studies_id_fk" FOREIGN KEY ("study_id") REFERENCES "public"."studies"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "emergency_unblindings" ADD CONSTRAINT "emergency_unblindings_allocation_id_randomization_allocations_id_fk" FOREIGN KEY ("allocation_id") REFERENCES "public"."randomization_allocations"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "emergency_unblindings" ADD CONSTRAINT "emergency_unblindings_actor_user_id_users_id_fk" FOREIGN KEY ("actor_user_id") REFERENCES "public"."users"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "emergency_unblindings" ADD CONSTRAINT "emergency_unblindings_actor_token_id_api_tokens_id_fk" FOREIGN KEY ("actor_token_id") REFERENCES "public"."api_tokens"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "randomization_allocations" ADD CONSTRAINT "randomization_allocations_study_id_studies_id_fk" FOREIGN KEY ("study_id") REFERENCES "public"."studies"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "randomization_allocations" ADD CONSTRAINT "randomization_allocations_list_id_randomization_lists_id_fk" FOREIGN KEY ("list_id") REFERENCES "public"."randomization_lists"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "randomization_allocations" ADD CONSTRAINT "randomization_allocations_stratum_id_randomization_strata_id_fk" FOREIGN KEY ("stratum_id") REFERENCES "public"."randomization_strata"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "randomization_allocations" ADD CONSTRAINT "randomization_allocations_slot_id_randomization_slots_id_fk" FOREIGN KEY ("slot_id") REFERENCES "public"."randomization_slots"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "randomization_allocations" ADD CONSTRAINT "randomization_allocations_participant_id_participants_id_fk" FOREIGN KEY ("participant_id") REFERENCES "public"."participants"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "randomization_allocations" ADD CONSTRAINT "randomization_allocations_actor_user_id_users_id_fk" FOREIGN KEY ("actor_user_id") REFERENCES "public"."users"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "randomization_allocations" ADD CONSTRAINT "randomization_allocations_actor_token_id_api_tokens_id_fk" FOREIGN KEY ("actor_token_id") REFERENCES "public"."api_tokens"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "randomization_lists" ADD CONSTRAINT "randomization_lists_study_id_studies_id_fk" FOREIGN KEY ("study_id") REFERENCES "public"."studies"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "randomization_lists" ADD CONSTRAINT "randomization_lists_actor_user_id_users_id_fk" FOREIGN KEY ("actor_user_id") REFERENCES "public"."users"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "randomization_lists" ADD CONSTRAINT "randomization_lists_actor_token_id_api_tokens_id_fk" FOREIGN KEY ("actor_token_id") REFERENCES "public"."api_tokens"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "randomization_lists" ADD CONSTRAINT "randomization_lists_discarded_by_users_id_fk" FOREIGN KEY ("discarded_by") REFERENCES "public"."users"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "randomization_lists" ADD CONSTRAINT "randomization_lists_committed_by_users_id_fk" FOREIGN KEY ("committed_by") REFERENCES "public"."users"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "randomization_slots" ADD CONSTRAINT "randomization_slots_study_id_studies_id_fk" FOREIGN KEY ("study_id") REFERENCES "public"."studies"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "randomization_slots" ADD CONSTRAINT "randomization_slots_stratum_id_randomization_strata_id_fk" FOREIGN KEY ("stratum_id") REFERENCES "public"."randomization_strata"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "randomization_strata" ADD CONSTRAINT "randomization_strata_study_id_studies_id_fk" FOREIGN KEY ("study_id") REFERENCES "public"."studies"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "randomization_strata" ADD CONSTRAINT "randomization_strata_list_id_randomization_lists_id_fk" FOREIGN KEY ("list_id") REFERENCES "public"."randomization_lists"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "randomization_strata" ADD CONSTRAINT "randomization_strata_site_id_sites_id_fk" FOREIGN KEY ("site_id") REFERENCES "public"."sites"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "randomization_unblindings" ADD CONSTRAINT "randomization_unblindings_study_id_studies_id_fk" FOREIGN KEY ("study_id") REFERENCES "public"."studies"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "randomization_unblindings" ADD CONSTRAINT "randomization_unblindings_list_id_randomization_lists_id_fk" FOREIGN KEY ("list_id") REFERENCES "public"."randomization_lists"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "randomization_unblindings" ADD CONSTRAINT "randomization_unblindings_database_lock_id_database_locks_id_fk" FOREIGN KEY ("database_lock_id") REFERENCES "public"."database_locks"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "randomization_unblindings" ADD CONSTRAINT "randomization_unblindings_actor_user_id_users_id_fk" FOREIGN KEY ("actor_user_id") REFERENCES "public"."users"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "randomization_unblindings" ADD CONSTRAINT "randomization_unblindings_actor_token_id_api_tokens_id_fk" FOREIGN KEY ("actor_token_id") REFERENCES "public"."api_tokens"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "sap_outcome_sets" ADD CONSTRAINT "sap_outcome_sets_study_id_studies_id_fk" FOREIGN KEY ("study_id") REFERENCES "public"."studies"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "sap_outcome_sets" ADD CONSTRAINT "sap_outcome_sets_sap_document_id_study_documents_id_fk" FOREIGN KEY ("sap_document_id") REFERENCES "public"."study_documents"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "sap_outcome_sets" ADD CONSTRAINT "sap_outcome_sets_actor_user_id_users_id_fk" FOREIGN KEY ("actor_user_id") REFERENCES "public"."users"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "sap_outcome_sets" ADD CONSTRAINT "sap_outcome_sets_actor_token_id_api_tokens_id_fk" FOREIGN KEY ("actor_token_id") REFERENCES "public"."api_tokens"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "study_documents" ADD CONSTRAINT "study_documents_study_id_studies_id_fk" FOREIGN KEY ("study_id") REFERENCES "public"."studies"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "study_documents" ADD CONSTRAINT "study_documents_actor_user_id_users_id_fk" FOREIGN KEY ("actor_user_id") REFERENCES "public"."users"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "study_documents" ADD CONSTRAINT "study_documents_actor_token_id_api_tokens_id_fk" FOREIGN KEY ("actor_token_id") REFERENCES "public"."api_tokens"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "study_registrations" ADD CONSTRAINT "study_registrations_study_id_studies_id_fk" FOREIGN KEY ("study_id") REFERENCES "public"."studies"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "study_registrations" ADD CONSTRAINT "study_registrations_actor_user_id_users_id_fk" FOREIGN KEY ("actor_user_id") REFERENCES "public"."users"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "study_registrations" ADD CONSTRAINT "study_registrations_actor_token_id_api_tokens_id_fk" FOREIGN KEY ("actor_token_id") REFERENCES "public"."api_tokens"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "randomization_allocations_study_idx" ON "randomization_allocations" USING btree ("study_id");--> statement-breakpoint
CREATE UNIQUE INDEX "randomization_lists_one_committed" ON "randomization_lists" USING btree ("study_id") WHERE committed_at IS NOT NULL;--> statement-breakpoint
CREATE INDEX "randomization_lists_study_idx" ON "randomization_lists" USING btree ("study_id");--> statement-breakpoint
CREATE INDEX "study_documents_study_idx" ON "study_documents" USING btree ("study_id","type");--> statement-breakpoint
CREATE INDEX "study_registrations_study_idx" ON "study_registrations" USING btree ("study_id","created_at");--> statement-breakpoint
CREATE TRIGGER study_documents_no_update BEFORE UPDATE OR DELETE ON study_documents FOR EACH ROW EXECUTE FUNCTION trialseal_reject_change();--> statement-breakpoint
CREATE TRIGGER study_documents_no_truncate BEFORE TRUNCATE ON study_documents FOR EACH STATEMENT EXECUTE FUNCTION trialseal_reject_change();--> statement-breakpoint
CREATE TRIGGER document_site_approvals_no_update BEFORE UPDATE OR DELETE ON document_site_approvals FOR EACH ROW EXECUTE FUNCTION trialseal_reject_change();--> statement-breakpoint
CREATE TRIGGER document_site_approvals_no_truncate BEFORE TRUNCATE ON document_site_approvals FOR EACH STATEMENT EXECUTE FUNCTION trialseal_reject_change();--> statement-breakpoint
CREATE TRIGGER sap_outcome_sets_no_update BEFORE UPDATE OR DELETE ON sap_outcome_sets FOR EACH ROW EXECUTE FUNCTION trialseal_reject_change();--> statement-breakpoint
CREATE TRIGGER sap_outcome_sets_no_truncate BEFORE TRUNCATE ON sap_outcome_sets FOR EACH STATEMENT EXECUTE FUNCTION trialseal_reject_change();--> statement-breakpoint
CREATE TRIGGER study_registrations_no_update BEFORE UPDATE OR DELETE ON study_registrations FOR EACH ROW EXECUTE FUNCTION trialseal_reject_change();--> statement-breakpoint
CREATE TRIGGER study_registrations_no_truncate BEFORE TRUNCATE ON study_registrations FOR EACH STATEMENT EXECUTE FUNCTION trialseal_reject_change();--> statement-breakpoint
CREATE TRIGGER randomization_strata_no_update BEFORE UPDATE OR DELETE ON randomization_strata FOR EACH ROW EXECUTE FUNCTION trialseal_reject_change();--> statement-breakpoint
CREATE TRIGGER randomization_strata_no_truncate BEFORE TRUNCATE ON randomization_strata FOR EACH STATEMENT EXECUTE FUNCTION trialseal_reject_change();--> statement-breakpoint
CREATE TRIGGER randomization_slots_no_update BEFORE UPDATE OR DELETE ON randomization_slots FOR EACH ROW EXECUTE FUNCTION trialseal_reject_change();--> statement-breakpoint
CREATE TRIGGER randomization_slots_no_truncate BEFORE TRUNCATE ON randomization_slots FOR EACH STATEMENT EXECUTE FUNCTION trialseal_reject_change();--> statement-breakpoint
CREATE TRIGGER randomization_allocations_no_update BEFORE UPDATE OR DELETE ON randomization_allocations FOR EACH ROW EXECUTE FUNCTION trialseal_reject_change();--> statement-breakpoint
CREATE TRIGGER randomization_allocations_no_truncate BEFORE TRUNCATE ON randomization_allocations FOR EACH STATEMENT EXECUTE FUNCTION trialseal_reject_change();--> statement-breakpoint
CREATE TRIGGER emergency_unblindings_no_update BEFORE UPDATE OR DELETE ON emergency_unblindings FOR EACH ROW EXECUTE FUNCTION trialseal_reject_change();--> statement-breakpoint
CREATE TRIGGER emergency_unblindings_no_truncate BEFORE TRUNCATE ON emergency_unblindings FOR EACH STATEMENT EXECUTE FUNCTION trialseal_reject_change();--> statement-breakpoint
CREATE TRIGGER database_locks_no_update BEFORE UPDATE OR DELETE ON database_locks FOR EACH ROW EXECUTE FUNCTION trialseal_reject_change();--> statement-breakpoint
CREATE TRIGGER database_locks_no_truncate BEFORE TRUNCATE ON database_locks FOR EACH STATEMENT EXECUTE FUNCTION trialseal_reject_change();--> statement-breakpoint
CREATE TRIGGER randomization_unblindings_no_update BEFORE UPDATE OR DELETE ON randomization_unblindings FOR EACH ROW EXECUTE FUNCTION trialseal_reject_change();--> statement-breakpoint
CREATE TRIGGER randomization_unblindings_no_truncate BEFORE TRUNCATE ON randomization_unblindings FOR EACH STATEMENT EXECUTE FUNCTION trialseal_reject_change();--> statement-breakpoint
CREATE FUNCTION trialseal_reject_committed_list_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  -- A draft list may be discarded or committed once; it is never deleted, and a committed or discarded list never
  -- changes again (issue 20).
  IF TG_OP = 'DELETE' OR OLD.committed_at IS NOT NULL OR OLD.discarded_at IS NOT NULL THEN
    RAISE EXCEPTION 'trialseal: randomization_lists: a committed or discarded list cannot be changed, no list deleted: % rejected', TG_OP USING ERRCODE = 'TS001';
  END IF;
  RETURN NEW;
END $$;--> statement-breakpoint
CREATE TRIGGER randomization_lists_committed BEFORE UPDATE OR DELETE ON randomization_lists FOR EACH ROW EXECUTE FUNCTION trialseal_reject_committed_list_change();--> statement-breakpoint
CREATE TRIGGER randomization_lists_no_truncate BEFORE TRUNCATE ON randomization_lists FOR EACH STATEMENT EXECUTE FUNCTION trialseal_reject_change();
