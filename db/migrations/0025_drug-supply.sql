CREATE TABLE "supply_destruction_kits" (
	"study_id" uuid NOT NULL,
	"destruction_id" uuid NOT NULL,
	"kit_id" uuid NOT NULL,
	CONSTRAINT "supply_destruction_kits_destruction_id_kit_id_pk" PRIMARY KEY("destruction_id","kit_id"),
	CONSTRAINT "supply_destruction_kits_kit_uq" UNIQUE("kit_id")
);
--> statement-breakpoint
CREATE TABLE "supply_destruction_witnesses" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"study_id" uuid NOT NULL,
	"destruction_id" uuid NOT NULL,
	"actor_user_id" uuid,
	"actor_token_id" uuid,
	"actor_token_name" text,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"entry_id" uuid NOT NULL,
	CONSTRAINT "supply_destruction_witnesses_destruction_uq" UNIQUE("destruction_id")
);
--> statement-breakpoint
CREATE TABLE "supply_destructions" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"study_id" uuid NOT NULL,
	"site_id" uuid,
	"method" text NOT NULL,
	"actor_user_id" uuid,
	"actor_token_id" uuid,
	"actor_token_name" text,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"entry_id" uuid NOT NULL
);
--> statement-breakpoint
CREATE TABLE "supply_dispensings" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"study_id" uuid NOT NULL,
	"kit_id" uuid NOT NULL,
	"participant_id" uuid NOT NULL,
	"allocation_id" uuid NOT NULL,
	"site_id" uuid NOT NULL,
	"visit" text,
	"actor_user_id" uuid,
	"actor_token_id" uuid,
	"actor_token_name" text,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"entry_id" uuid NOT NULL,
	CONSTRAINT "supply_dispensings_kit_uq" UNIQUE("kit_id")
);
--> statement-breakpoint
CREATE TABLE "supply_kit_assignments" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"study_id" uuid NOT NULL,
	"kit_id" uuid NOT NULL,
	"participant_id" uuid NOT NULL,
	"site_id" uuid NOT NULL,
	"visit" text,
	"actor_user_id" uuid,
	"actor_token_id" uuid,
	"actor_token_name" text,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"entry_id" uuid NOT NULL
);
--> statement-breakpoint
CREATE TABLE "supply_kits" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"study_id" uuid NOT NULL,
	"lot_id" uuid NOT NULL,
	"number" text NOT NULL,
	"kit_type" text NOT NULL,
	"blind_nonce" "bytea" NOT NULL,
	"units" integer NOT NULL,
	"label_token" text NOT NULL,
	"actor_user_id" uuid,
	"actor_token_id" uuid,
	"actor_token_name" text,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"entry_id" uuid NOT NULL,
	CONSTRAINT "supply_kits_label_token_uq" UNIQUE("label_token"),
	CONSTRAINT "supply_kits_number_uq" UNIQUE("study_id","number")
);
--> statement-breakpoint
CREATE TABLE "supply_lot_recalls" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"study_id" uuid NOT NULL,
	"lot_id" uuid NOT NULL,
	"reason" text NOT NULL,
	"kits_blocked" integer NOT NULL,
	"subjects_affected" integer NOT NULL,
	"sites_notified" integer NOT NULL,
	"actor_user_id" uuid,
	"actor_token_id" uuid,
	"actor_token_name" text,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"entry_id" uuid NOT NULL,
	CONSTRAINT "supply_lot_recalls_lot_uq" UNIQUE("lot_id")
);
--> statement-breakpoint
CREATE TABLE "supply_lot_releases" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"study_id" uuid NOT NULL,
	"lot_id" uuid NOT NULL,
	"actor_user_id" uuid,
	"actor_token_id" uuid,
	"actor_token_name" text,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"entry_id" uuid NOT NULL,
	CONSTRAINT "supply_lot_releases_lot_uq" UNIQUE("lot_id")
);
--> statement-breakpoint
CREATE TABLE "supply_lots" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"study_id" uuid NOT NULL,
	"product" text NOT NULL,
	"lot_number" text NOT NULL,
	"kit_type" text NOT NULL,
	"blind_nonce" "bytea" NOT NULL,
	"manufactured_on" date NOT NULL,
	"expires_on" date NOT NULL,
	"storage_min_tenths" integer NOT NULL,
	"storage_max_tenths" integer NOT NULL,
	"daily_units" integer NOT NULL,
	"coa_file_name" text NOT NULL,
	"coa_sha256" "bytea" NOT NULL,
	"coa_bytes" integer NOT NULL,
	"coa_content" "bytea" NOT NULL,
	"actor_user_id" uuid,
	"actor_token_id" uuid,
	"actor_token_name" text,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"entry_id" uuid NOT NULL,
	CONSTRAINT "supply_lots_number_uq" UNIQUE("study_id","lot_number")
);
--> statement-breakpoint
CREATE TABLE "supply_quarantine_decisions" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"study_id" uuid NOT NULL,
	"shipment_id" uuid NOT NULL,
	"outcome" text NOT NULL,
	"reason" text NOT NULL,
	"actor_user_id" uuid,
	"actor_token_id" uuid,
	"actor_token_name" text,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"entry_id" uuid NOT NULL,
	CONSTRAINT "supply_quarantine_decisions_shipment_uq" UNIQUE("shipment_id")
);
--> statement-breakpoint
CREATE TABLE "supply_reconciliations" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"study_id" uuid NOT NULL,
	"site_id" uuid NOT NULL,
	"expected" integer NOT NULL,
	"counted" integer NOT NULL,
	"counted_text" text NOT NULL,
	"missing_text" text NOT NULL,
	"unexpected_text" text NOT NULL,
	"actor_user_id" uuid,
	"actor_token_id" uuid,
	"actor_token_name" text,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"entry_id" uuid NOT NULL
);
--> statement-breakpoint
CREATE TABLE "supply_returns" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"study_id" uuid NOT NULL,
	"kit_id" uuid NOT NULL,
	"dispensing_id" uuid NOT NULL,
	"units_returned" integer NOT NULL,
	"units_dispensed" integer NOT NULL,
	"compliance_percent" integer,
	"returned_on" date NOT NULL,
	"actor_user_id" uuid,
	"actor_token_id" uuid,
	"actor_token_name" text,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"entry_id" uuid NOT NULL,
	CONSTRAINT "supply_returns_kit_uq" UNIQUE("kit_id")
);
--> statement-breakpoint
CREATE TABLE "supply_shipment_kits" (
	"study_id" uuid NOT NULL,
	"shipment_id" uuid NOT NULL,
	"kit_id" uuid NOT NULL,
	CONSTRAINT "supply_shipment_kits_shipment_id_kit_id_pk" PRIMARY KEY("shipment_id","kit_id"),
	CONSTRAINT "supply_shipment_kits_kit_uq" UNIQUE("kit_id")
);
--> statement-breakpoint
CREATE TABLE "supply_shipment_receipts" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"study_id" uuid NOT NULL,
	"shipment_id" uuid NOT NULL,
	"temperature_min_tenths" integer,
	"temperature_max_tenths" integer,
	"logger_file_name" text,
	"logger_sha256" "bytea",
	"logger_bytes" integer,
	"logger_content" "bytea",
	"excursion" boolean NOT NULL,
	"actor_user_id" uuid,
	"actor_token_id" uuid,
	"actor_token_name" text,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"entry_id" uuid NOT NULL,
	CONSTRAINT "supply_shipment_receipts_shipment_uq" UNIQUE("shipment_id")
);
--> statement-breakpoint
CREATE TABLE "supply_shipments" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"study_id" uuid NOT NULL,
	"number" text NOT NULL,
	"depot" text NOT NULL,
	"site_id" uuid NOT NULL,
	"actor_user_id" uuid,
	"actor_token_id" uuid,
	"actor_token_name" text,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"entry_id" uuid NOT NULL,
	CONSTRAINT "supply_shipments_number_uq" UNIQUE("study_id","number")
);
--> statement-breakpoint
ALTER TABLE "supply_destruction_kits" ADD CONSTRAINT "supply_destruction_kits_study_id_studies_id_fk" FOREIGN KEY ("study_id") REFERENCES "public"."studies"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "supply_destruction_kits" ADD CONSTRAINT "supply_destruction_kits_destruction_id_supply_destructions_id_fk" FOREIGN KEY ("destruction_id") REFERENCES "public"."supply_destructions"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "supply_destruction_kits" ADD CONSTRAINT "supply_destruction_kits_kit_id_supply_kits_id_fk" FOREIGN KEY ("kit_id") REFERENCES "public"."supply_kits"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "supply_destruction_witnesses" ADD CONSTRAINT "supply_destruction_witnesses_study_id_studies_id_fk" FOREIGN KEY ("study_id") REFERENCES "public"."studies"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "supply_destruction_witnesses" ADD CONSTRAINT "supply_destruction_witnesses_destruction_id_supply_destructions_id_fk" FOREIGN KEY ("destruction_id") REFERENCES "public"."supply_destructions"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "supply_destruction_witnesses" ADD CONSTRAINT "supply_destruction_witnesses_actor_user_id_users_id_fk" FOREIGN KEY ("actor_user_id") REFERENCES "public"."users"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "supply_destruction_witnesses" ADD CONSTRAINT "supply_destruction_witnesses_actor_token_id_api_tokens_id_fk" FOREIGN KEY ("actor_token_id") REFERENCES "public"."api_tokens"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "supply_destructions" ADD CONSTRAINT "supply_destructions_study_id_studies_id_fk" FOREIGN KEY ("study_id") REFERENCES "public"."studies"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "supply_destructions" ADD CONSTRAINT "supply_destructions_site_id_sites_id_fk" FOREIGN KEY ("site_id") REFERENCES "public"."sites"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "supply_destructions" ADD CONSTRAINT "supply_destructions_actor_user_id_users_id_fk" FOREIGN KEY ("actor_user_id") REFERENCES "public"."users"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "supply_destructions" ADD CONSTRAINT "supply_destructions_actor_token_id_api_tokens_id_fk" FOREIGN KEY ("actor_token_id") REFERENCES "public"."api_tokens"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "supply_dispensings" ADD CONSTRAINT "supply_dispensings_study_id_studies_id_fk" FOREIGN KEY ("study_id") REFERENCES "public"."studies"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "supply_dispensings" ADD CONSTRAINT "supply_dispensings_kit_id_supply_kits_id_fk" FOREIGN KEY ("kit_id") REFERENCES "public"."supply_kits"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "supply_dispensings" ADD CONSTRAINT "supply_dispensings_participant_id_participants_id_fk" FOREIGN KEY ("participant_id") REFERENCES "public"."participants"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "supply_dispensings" ADD CONSTRAINT "supply_dispensings_allocation_id_randomization_allocations_id_fk" FOREIGN KEY ("allocation_id") REFERENCES "public"."randomization_allocations"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "supply_dispensings" ADD CONSTRAINT "supply_dispensings_site_id_sites_id_fk" FOREIGN KEY ("site_id") REFERENCES "public"."sites"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "supply_dispensings" ADD CONSTRAINT "supply_dispensings_actor_user_id_users_id_fk" FOREIGN KEY ("actor_user_id") REFERENCES "public"."users"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "supply_dispensings" ADD CONSTRAINT "supply_dispensings_actor_token_id_api_tokens_id_fk" FOREIGN KEY ("actor_token_id") REFERENCES "public"."api_tokens"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "supply_kit_assignments" ADD CONSTRAINT "supply_kit_assignments_study_id_studies_id_fk" FOREIGN KEY ("study_id") REFERENCES "public"."studies"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "supply_kit_assignments" ADD CONSTRAINT "supply_kit_assignments_kit_id_supply_kits_id_fk" FOREIGN KEY ("kit_id") REFERENCES "public"."supply_kits"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "supply_kit_assignments" ADD CONSTRAINT "supply_kit_assignments_participant_id_participants_id_fk" FOREIGN KEY ("participant_id") REFERENCES "public"."participants"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "supply_kit_assignments" ADD CONSTRAINT "supply_kit_assignments_site_id_sites_id_fk" FOREIGN KEY ("site_id") REFERENCES "public"."sites"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "supply_kit_assignments" ADD CONSTRAINT "supply_kit_assignments_actor_user_id_users_id_fk" FOREIGN KEY ("actor_user_id") REFERENCES "public"."users"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "supply_kit_assignments" ADD CONSTRAINT "supply_kit_assignments_actor_token_id_api_tokens_id_fk" FOREIGN KEY ("actor_token_id") REFERENCES "public"."api_tokens"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "supply_kits" ADD CONSTRAINT "supply_kits_study_id_studies_id_fk" FOREIGN KEY ("study_id") REFERENCES "public"."studies"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "supply_kits" ADD CONSTRAINT "supply_kits_lot_id_supply_lots_id_fk" FOREIGN KEY ("lot_id") REFERENCES "public"."supply_lots"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "supply_kits" ADD CONSTRAINT "supply_kits_actor_user_id_users_id_fk" FOREIGN KEY ("actor_user_id") REFERENCES "public"."users"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "supply_kits" ADD CONSTRAINT "supply_kits_actor_token_id_api_tokens_id_fk" FOREIGN KEY ("actor_token_id") REFERENCES "public"."api_tokens"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "supply_lot_recalls" ADD CONSTRAINT "supply_lot_recalls_study_id_studies_id_fk" FOREIGN KEY ("study_id") REFERENCES "public"."studies"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "supply_lot_recalls" ADD CONSTRAINT "supply_lot_recalls_lot_id_supply_lots_id_fk" FOREIGN KEY ("lot_id") REFERENCES "public"."supply_lots"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "supply_lot_recalls" ADD CONSTRAINT "supply_lot_recalls_actor_user_id_users_id_fk" FOREIGN KEY ("actor_user_id") REFERENCES "public"."users"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "supply_lot_recalls" ADD CONSTRAINT "supply_lot_recalls_actor_token_id_api_tokens_id_fk" FOREIGN KEY ("actor_token_id") REFERENCES "public"."api_tokens"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "supply_lot_releases" ADD CONSTRAINT "supply_lot_releases_study_id_studies_id_fk" FOREIGN KEY ("study_id") REFERENCES "public"."studies"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "supply_lot_releases" ADD CONSTRAINT "supply_lot_releases_lot_id_supply_lots_id_fk" FOREIGN KEY ("lot_id") REFERENCES "public"."supply_lots"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "supply_lot_releases" ADD CONSTRAINT "supply_lot_releases_actor_user_id_users_id_fk" FOREIGN KEY ("actor_user_id") REFERENCES "public"."users"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "supply_lot_releases" ADD CONSTRAINT "supply_lot_releases_actor_token_id_api_tokens_id_fk" FOREIGN KEY ("actor_token_id") REFERENCES "public"."api_tokens"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "supply_lots" ADD CONSTRAINT "supply_lots_study_id_studies_id_fk" FOREIGN KEY ("study_id") REFERENCES "public"."studies"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "supply_lots" ADD CONSTRAINT "supply_lots_actor_user_id_users_id_fk" FOREIGN KEY ("actor_user_id") REFERENCES "public"."users"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "supply_lots" ADD CONSTRAINT "supply_lots_actor_token_id_api_tokens_id_fk" FOREIGN KEY ("actor_token_id") REFERENCES "public"."api_tokens"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "supply_quarantine_decisions" ADD CONSTRAINT "supply_quarantine_decisions_study_id_studies_id_fk" FOREIGN KEY ("study_id") REFERENCES "public"."studies"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "supply_quarantine_decisions" ADD CONSTRAINT "supply_quarantine_decisions_shipment_id_supply_shipments_id_fk" FOREIGN KEY ("shipment_id") REFERENCES "public"."supply_shipments"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "supply_quarantine_decisions" ADD CONSTRAINT "supply_quarantine_decisions_actor_user_id_users_id_fk" FOREIGN KEY ("actor_user_id") REFERENCES "public"."users"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "supply_quarantine_decisions" ADD CONSTRAINT "supply_quarantine_decisions_actor_token_id_api_tokens_id_fk" FOREIGN KEY ("actor_token_id") REFERENCES "public"."api_tokens"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "supply_reconciliations" ADD CONSTRAINT "supply_reconciliations_study_id_studies_id_fk" FOREIGN KEY ("study_id") REFERENCES "public"."studies"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "supply_reconciliations" ADD CONSTRAINT "supply_reconciliations_site_id_sites_id_fk" FOREIGN KEY ("site_id") REFERENCES "public"."sites"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "supply_reconciliations" ADD CONSTRAINT "supply_reconciliations_actor_user_id_users_id_fk" FOREIGN KEY ("actor_user_id") REFERENCES "public"."users"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "supply_reconciliations" ADD CONSTRAINT "supply_reconciliations_actor_token_id_api_tokens_id_fk" FOREIGN KEY ("actor_token_id") REFERENCES "public"."api_tokens"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "supply_returns" ADD CONSTRAINT "supply_returns_study_id_studies_id_fk" FOREIGN KEY ("study_id") REFERENCES "public"."studies"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "supply_returns" ADD CONSTRAINT "supply_returns_kit_id_supply_kits_id_fk" FOREIGN KEY ("kit_id") REFERENCES "public"."supply_kits"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "supply_returns" ADD CONSTRAINT "supply_returns_dispensing_id_supply_dispensings_id_fk" FOREIGN KEY ("dispensing_id") REFERENCES "public"."supply_dispensings"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "supply_returns" ADD CONSTRAINT "supply_returns_actor_user_id_users_id_fk" FOREIGN KEY ("actor_user_id") REFERENCES "public"."users"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "supply_returns" ADD CONSTRAINT "supply_returns_actor_token_id_api_tokens_id_fk" FOREIGN KEY ("actor_token_id") REFERENCES "public"."api_tokens"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "supply_shipment_kits" ADD CONSTRAINT "supply_shipment_kits_study_id_studies_id_fk" FOREIGN KEY ("study_id") REFERENCES "public"."studies"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "supply_shipment_kits" ADD CONSTRAINT "supply_shipment_kits_shipment_id_supply_shipments_id_fk" FOREIGN KEY ("shipment_id") REFERENCES "public"."supply_shipments"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "supply_shipment_kits" ADD CONSTRAINT "supply_shipment_kits_kit_id_supply_kits_id_fk" FOREIGN KEY ("kit_id") REFERENCES "public"."supply_kits"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "supply_shipment_receipts" ADD CONSTRAINT "supply_shipment_receipts_study_id_studies_id_fk" FOREIGN KEY ("study_id") REFERENCES "public"."studies"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "supply_shipment_receipts" ADD CONSTRAINT "supply_shipment_receipts_shipment_id_supply_shipments_id_fk" FOREIGN KEY ("shipment_id") REFERENCES "public"."supply_shipments"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "supply_shipment_receipts" ADD CONSTRAINT "supply_shipment_receipts_actor_user_id_users_id_fk" FOREIGN KEY ("actor_user_id") REFERENCES "public"."users"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "supply_shipment_receipts" ADD CONSTRAINT "supply_shipment_receipts_actor_token_id_api_tokens_id_fk" FOREIGN KEY ("actor_token_id") REFERENCES "public"."api_tokens"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "supply_shipments" ADD CONSTRAINT "supply_shipments_study_id_studies_id_fk" FOREIGN KEY ("study_id") REFERENCES "public"."studies"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "supply_shipments" ADD CONSTRAINT "supply_shipments_site_id_sites_id_fk" FOREIGN KEY ("site_id") REFERENCES "public"."sites"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "supply_shipments" ADD CONSTRAINT "supply_shipments_actor_user_id_users_id_fk" FOREIGN KEY ("actor_user_id") REFERENCES "public"."users"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "supply_shipments" ADD CONSTRAINT "supply_shipments_actor_token_id_api_tokens_id_fk" FOREIGN KEY ("actor_token_id") REFERENCES "public"."api_tokens"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "supply_dispensings_participant_idx" ON "supply_dispensings" USING btree ("participant_id");--> statement-breakpoint
CREATE INDEX "supply_kit_assignments_participant_idx" ON "supply_kit_assignments" USING btree ("participant_id");--> statement-breakpoint
CREATE INDEX "supply_kit_assignments_kit_idx" ON "supply_kit_assignments" USING btree ("kit_id");--> statement-breakpoint
CREATE INDEX "supply_kits_lot_idx" ON "supply_kits" USING btree ("lot_id");--> statement-breakpoint
-- Issue 21: every supply table is append-only (a kit's state is read from the rows that name it).
CREATE TRIGGER supply_lots_no_update BEFORE UPDATE OR DELETE ON supply_lots FOR EACH ROW EXECUTE FUNCTION trialseal_reject_change();--> statement-breakpoint
CREATE TRIGGER supply_lots_no_truncate BEFORE TRUNCATE ON supply_lots FOR EACH STATEMENT EXECUTE FUNCTION trialseal_reject_change();--> statement-breakpoint
CREATE TRIGGER supply_lot_releases_no_update BEFORE UPDATE OR DELETE ON supply_lot_releases FOR EACH ROW EXECUTE FUNCTION trialseal_reject_change();--> statement-breakpoint
CREATE TRIGGER supply_lot_releases_no_truncate BEFORE TRUNCATE ON supply_lot_releases FOR EACH STATEMENT EXECUTE FUNCTION trialseal_reject_change();--> statement-breakpoint
CREATE TRIGGER supply_lot_recalls_no_update BEFORE UPDATE OR DELETE ON supply_lot_recalls FOR EACH ROW EXECUTE FUNCTION trialseal_reject_change();--> statement-breakpoint
CREATE TRIGGER supply_lot_recalls_no_truncate BEFORE TRUNCATE ON supply_lot_recalls FOR EACH STATEMENT EXECUTE FUNCTION trialseal_reject_change();--> statement-breakpoint
CREATE TRIGGER supply_kits_no_update BEFORE UPDATE OR DELETE ON supply_kits FOR EACH ROW EXECUTE FUNCTION trialseal_reject_change();--> statement-breakpoint
CREATE TRIGGER supply_kits_no_truncate BEFORE TRUNCATE ON supply_kits FOR EACH STATEMENT EXECUTE FUNCTION trialseal_reject_change();--> statement-breakpoint
CREATE TRIGGER supply_shipments_no_update BEFORE UPDATE OR DELETE ON supply_shipments FOR EACH ROW EXECUTE FUNCTION trialseal_reject_change();--> statement-breakpoint
CREATE TRIGGER supply_shipments_no_truncate BEFORE TRUNCATE ON supply_shipments FOR EACH STATEMENT EXECUTE FUNCTION trialseal_reject_change();--> statement-breakpoint
CREATE TRIGGER supply_shipment_kits_no_update BEFORE UPDATE OR DELETE ON supply_shipment_kits FOR EACH ROW EXECUTE FUNCTION trialseal_reject_change();--> statement-breakpoint
CREATE TRIGGER supply_shipment_kits_no_truncate BEFORE TRUNCATE ON supply_shipment_kits FOR EACH STATEMENT EXECUTE FUNCTION trialseal_reject_change();--> statement-breakpoint
CREATE TRIGGER supply_shipment_receipts_no_update BEFORE UPDATE OR DELETE ON supply_shipment_receipts FOR EACH ROW EXECUTE FUNCTION trialseal_reject_change();--> statement-breakpoint
CREATE TRIGGER supply_shipment_receipts_no_truncate BEFORE TRUNCATE ON supply_shipment_receipts FOR EACH STATEMENT EXECUTE FUNCTION trialseal_reject_change();--> statement-breakpoint
CREATE TRIGGER supply_quarantine_decisions_no_update BEFORE UPDATE OR DELETE ON supply_quarantine_decisions FOR EACH ROW EXECUTE FUNCTION trialseal_reject_change();--> statement-breakpoint
CREATE TRIGGER supply_quarantine_decisions_no_truncate BEFORE TRUNCATE ON supply_quarantine_decisions FOR EACH STATEMENT EXECUTE FUNCTION trialseal_reject_change();--> statement-breakpoint
CREATE TRIGGER supply_kit_assignments_no_update BEFORE UPDATE OR DELETE ON supply_kit_assignments FOR EACH ROW EXECUTE FUNCTION trialseal_reject_change();--> statement-breakpoint
CREATE TRIGGER supply_kit_assignments_no_truncate BEFORE TRUNCATE ON supply_kit_assignments FOR EACH STATEMENT EXECUTE FUNCTION trialseal_reject_change();--> statement-breakpoint
CREATE TRIGGER supply_dispensings_no_update BEFORE UPDATE OR DELETE ON supply_dispensings FOR EACH ROW EXECUTE FUNCTION trialseal_reject_change();--> statement-breakpoint
CREATE TRIGGER supply_dispensings_no_truncate BEFORE TRUNCATE ON supply_dispensings FOR EACH STATEMENT EXECUTE FUNCTION trialseal_reject_change();--> statement-breakpoint
CREATE TRIGGER supply_returns_no_update BEFORE UPDATE OR DELETE ON supply_returns FOR EACH ROW EXECUTE FUNCTION trialseal_reject_change();--> statement-breakpoint
CREATE TRIGGER supply_returns_no_truncate BEFORE TRUNCATE ON supply_returns FOR EACH STATEMENT EXECUTE FUNCTION trialseal_reject_change();--> statement-breakpoint
CREATE TRIGGER supply_destructions_no_update BEFORE UPDATE OR DELETE ON supply_destructions FOR EACH ROW EXECUTE FUNCTION trialseal_reject_change();--> statement-breakpoint
CREATE TRIGGER supply_destructions_no_truncate BEFORE TRUNCATE ON supply_destructions FOR EACH STATEMENT EXECUTE FUNCTION trialseal_reject_change();--> statement-breakpoint
CREATE TRIGGER supply_destruction_kits_no_update BEFORE UPDATE OR DELETE ON supply_destruction_kits FOR EACH ROW EXECUTE FUNCTION trialseal_reject_change();--> statement-breakpoint
CREATE TRIGGER supply_destruction_kits_no_truncate BEFORE TRUNCATE ON supply_destruction_kits FOR EACH STATEMENT EXECUTE FUNCTION trialseal_reject_change();--> statement-breakpoint
CREATE TRIGGER supply_destruction_witnesses_no_update BEFORE UPDATE OR DELETE ON supply_destruction_witnesses FOR EACH ROW EXECUTE FUNCTION trialseal_reject_change();--> statement-breakpoint
CREATE TRIGGER supply_destruction_witnesses_no_truncate BEFORE TRUNCATE ON supply_destruction_witnesses FOR EACH STATEMENT EXECUTE FUNCTION trialseal_reject_change();--> statement-breakpoint
CREATE TRIGGER supply_reconciliations_no_update BEFORE UPDATE OR DELETE ON supply_reconciliations FOR EACH ROW EXECUTE FUNCTION trialseal_reject_change();--> statement-breakpoint
CREATE TRIGGER supply_reconciliations_no_truncate BEFORE TRUNCATE ON supply_reconciliations FOR EACH STATEMENT EXECUTE FUNCTION trialseal_reject_change();
