CREATE TABLE "signer_contacts" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"study_id" uuid NOT NULL,
	"site_id" uuid NOT NULL,
	"participant_id" uuid NOT NULL,
	"role" text NOT NULL,
	"channel" text NOT NULL,
	"contact_hmac" "bytea" NOT NULL,
	"name_enc" "bytea",
	"contact_enc" "bytea",
	"entered_by" uuid,
	"entered_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"entry_id" uuid,
	"confirmed_by" uuid,
	"confirmed_at" timestamp (3) with time zone,
	"method" text,
	"confirm_entry_id" uuid
);
--> statement-breakpoint
ALTER TABLE "signer_contacts" ADD CONSTRAINT "signer_contacts_study_id_studies_id_fk" FOREIGN KEY ("study_id") REFERENCES "public"."studies"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "signer_contacts" ADD CONSTRAINT "signer_contacts_site_id_sites_id_fk" FOREIGN KEY ("site_id") REFERENCES "public"."sites"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "signer_contacts" ADD CONSTRAINT "signer_contacts_participant_id_participants_id_fk" FOREIGN KEY ("participant_id") REFERENCES "public"."participants"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "signer_contacts" ADD CONSTRAINT "signer_contacts_entered_by_users_id_fk" FOREIGN KEY ("entered_by") REFERENCES "public"."users"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "signer_contacts" ADD CONSTRAINT "signer_contacts_confirmed_by_users_id_fk" FOREIGN KEY ("confirmed_by") REFERENCES "public"."users"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "signer_contacts_participant_idx" ON "signer_contacts" USING btree ("participant_id");--> statement-breakpoint
CREATE INDEX "signer_contacts_hmac_idx" ON "signer_contacts" USING btree ("study_id","contact_hmac");