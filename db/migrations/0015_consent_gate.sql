CREATE TABLE "paper_consents" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"study_id" uuid NOT NULL,
	"participant_id" uuid NOT NULL,
	"document_id" uuid NOT NULL,
	"scan_sha256" "bytea" NOT NULL,
	"scan_bytes" integer NOT NULL,
	"uploaded_by" uuid NOT NULL,
	"uploaded_at" timestamp (3) with time zone NOT NULL,
	"entry_id" uuid NOT NULL,
	"attested_by" uuid,
	"attested_at" timestamp (3) with time zone,
	"attest_entry_id" uuid
);
--> statement-breakpoint
CREATE TABLE "study_settings" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"study_id" uuid NOT NULL,
	"version" integer NOT NULL,
	"forms_before_consent" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"changed_by" uuid,
	"changed_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"entry_id" uuid NOT NULL,
	CONSTRAINT "study_settings_version_uq" UNIQUE("study_id","version")
);
--> statement-breakpoint
ALTER TABLE "paper_consents" ADD CONSTRAINT "paper_consents_study_id_studies_id_fk" FOREIGN KEY ("study_id") REFERENCES "public"."studies"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "paper_consents" ADD CONSTRAINT "paper_consents_participant_id_participants_id_fk" FOREIGN KEY ("participant_id") REFERENCES "public"."participants"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "paper_consents" ADD CONSTRAINT "paper_consents_document_id_consent_documents_id_fk" FOREIGN KEY ("document_id") REFERENCES "public"."consent_documents"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "paper_consents" ADD CONSTRAINT "paper_consents_uploaded_by_users_id_fk" FOREIGN KEY ("uploaded_by") REFERENCES "public"."users"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "paper_consents" ADD CONSTRAINT "paper_consents_entry_id_ledger_entries_id_fk" FOREIGN KEY ("entry_id") REFERENCES "public"."ledger_entries"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "paper_consents" ADD CONSTRAINT "paper_consents_attested_by_users_id_fk" FOREIGN KEY ("attested_by") REFERENCES "public"."users"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "paper_consents" ADD CONSTRAINT "paper_consents_attest_entry_id_ledger_entries_id_fk" FOREIGN KEY ("attest_entry_id") REFERENCES "public"."ledger_entries"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "study_settings" ADD CONSTRAINT "study_settings_study_id_studies_id_fk" FOREIGN KEY ("study_id") REFERENCES "public"."studies"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "study_settings" ADD CONSTRAINT "study_settings_changed_by_users_id_fk" FOREIGN KEY ("changed_by") REFERENCES "public"."users"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "study_settings" ADD CONSTRAINT "study_settings_entry_id_ledger_entries_id_fk" FOREIGN KEY ("entry_id") REFERENCES "public"."ledger_entries"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "paper_consents_participant_idx" ON "paper_consents" USING btree ("participant_id");--> statement-breakpoint
-- Study settings are append-only (a change is a new row); a paper consent's row changes once: its attestation.
CREATE TRIGGER study_settings_no_update BEFORE UPDATE OR DELETE ON study_settings FOR EACH ROW EXECUTE FUNCTION trialseal_reject_change();
--> statement-breakpoint
CREATE TRIGGER study_settings_no_truncate BEFORE TRUNCATE ON study_settings FOR EACH STATEMENT EXECUTE FUNCTION trialseal_reject_change();
--> statement-breakpoint
CREATE FUNCTION trialseal_paper_consent_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND OLD.attested_at IS NULL AND NEW.attested_at IS NOT NULL AND NEW.attested_by IS NOT NULL
     AND NEW.attest_entry_id IS NOT NULL AND NEW.id = OLD.id AND NEW.study_id = OLD.study_id
     AND NEW.participant_id = OLD.participant_id AND NEW.document_id = OLD.document_id
     AND NEW.scan_sha256 = OLD.scan_sha256 AND NEW.scan_bytes = OLD.scan_bytes AND NEW.uploaded_by = OLD.uploaded_by
     AND NEW.uploaded_at = OLD.uploaded_at AND NEW.entry_id = OLD.entry_id THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'trialseal: paper_consents is append-only: % rejected (only the attestation is set, once)', TG_OP
    USING ERRCODE = 'TS001';
END;
$$;
--> statement-breakpoint
CREATE TRIGGER paper_consents_guard BEFORE UPDATE OR DELETE ON paper_consents FOR EACH ROW EXECUTE FUNCTION trialseal_paper_consent_guard();
--> statement-breakpoint
CREATE TRIGGER paper_consents_no_truncate BEFORE TRUNCATE ON paper_consents FOR EACH STATEMENT EXECUTE FUNCTION trialseal_reject_change();
