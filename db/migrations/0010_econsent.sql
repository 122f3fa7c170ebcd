CREATE TABLE "consent_invitations" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"study_id" uuid NOT NULL,
	"participant_id" uuid NOT NULL,
	"document_id" uuid NOT NULL,
	"signer_role" text DEFAULT 'participant' NOT NULL,
	"representative_name_enc" "bytea",
	"representative_contact_enc" "bytea",
	"assent" boolean DEFAULT false NOT NULL,
	"channel" text NOT NULL,
	"token_hash" "bytea" NOT NULL,
	"created_by" uuid,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"expires_at" timestamp (3) with time zone NOT NULL,
	"revoked_at" timestamp (3) with time zone,
	"used_at" timestamp (3) with time zone,
	"otp_hash" "bytea",
	"otp_expires_at" timestamp (3) with time zone,
	"otp_sends" integer DEFAULT 0 NOT NULL,
	"otp_failures" integer DEFAULT 0 NOT NULL,
	"verified_at" timestamp (3) with time zone,
	CONSTRAINT "consent_invitations_token_hash_unique" UNIQUE("token_hash")
);
--> statement-breakpoint
ALTER TABLE "consent_signatures" ADD COLUMN "invitation_id" uuid;--> statement-breakpoint
ALTER TABLE "consent_signatures" ADD COLUMN "countersigns" uuid;--> statement-breakpoint
ALTER TABLE "consent_signatures" ADD COLUMN "public_token_hash" "bytea";--> statement-breakpoint
ALTER TABLE "consent_signatures" ADD COLUMN "public_token_enc" "bytea";--> statement-breakpoint
ALTER TABLE "consent_withdrawals" ADD COLUMN "by_participant" boolean DEFAULT false NOT NULL;--> statement-breakpoint
ALTER TABLE "consent_invitations" ADD CONSTRAINT "consent_invitations_study_id_studies_id_fk" FOREIGN KEY ("study_id") REFERENCES "public"."studies"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "consent_invitations" ADD CONSTRAINT "consent_invitations_participant_id_participants_id_fk" FOREIGN KEY ("participant_id") REFERENCES "public"."participants"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "consent_invitations" ADD CONSTRAINT "consent_invitations_document_id_consent_documents_id_fk" FOREIGN KEY ("document_id") REFERENCES "public"."consent_documents"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "consent_invitations" ADD CONSTRAINT "consent_invitations_created_by_users_id_fk" FOREIGN KEY ("created_by") REFERENCES "public"."users"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "consent_invitations_participant_idx" ON "consent_invitations" USING btree ("participant_id");--> statement-breakpoint
ALTER TABLE "consent_signatures" ADD CONSTRAINT "consent_signatures_invitation_id_consent_invitations_id_fk" FOREIGN KEY ("invitation_id") REFERENCES "public"."consent_invitations"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "consent_signatures" ADD CONSTRAINT "consent_signatures_public_token_hash_unique" UNIQUE("public_token_hash");--> statement-breakpoint
-- Consent signatures and withdrawals are append-only, like e-signatures and record versions.
CREATE TRIGGER consent_signatures_no_update BEFORE UPDATE OR DELETE ON consent_signatures FOR EACH ROW EXECUTE FUNCTION trialseal_reject_change();
--> statement-breakpoint
CREATE TRIGGER consent_signatures_no_truncate BEFORE TRUNCATE ON consent_signatures FOR EACH STATEMENT EXECUTE FUNCTION trialseal_reject_change();
--> statement-breakpoint
CREATE TRIGGER consent_withdrawals_no_update BEFORE UPDATE OR DELETE ON consent_withdrawals FOR EACH ROW EXECUTE FUNCTION trialseal_reject_change();
--> statement-breakpoint
CREATE TRIGGER consent_withdrawals_no_truncate BEFORE TRUNCATE ON consent_withdrawals FOR EACH STATEMENT EXECUTE FUNCTION trialseal_reject_change();
