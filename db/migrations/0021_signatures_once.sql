ALTER TABLE "signatures" ADD COLUMN "repeats" uuid;--> statement-breakpoint
ALTER TABLE "signatures" ADD CONSTRAINT "signatures_repeats_signatures_id_fk" FOREIGN KEY ("repeats") REFERENCES "public"."signatures"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
-- One signature per signer, version and meaning (issue 17). Signatures are append-only records, so repeats signed
-- before this migration (when the portal still allowed them) are kept; each is marked as a repeat of the earliest
-- signature with the same record, version, signer and meaning, and the unique index below leaves them out. Marking
-- them is the one change ever made to existing signature rows: the append-only trigger is off for this statement
-- only, inside the migration's transaction. The columns sealed in each signature's entry are not touched.
ALTER TABLE "signatures" DISABLE TRIGGER "signatures_no_update";--> statement-breakpoint
UPDATE "signatures" AS s SET "repeats" = first.id
FROM (
  SELECT DISTINCT ON ("record_id", "version", "signer_id", "meaning")
    "id", "record_id", "version", "signer_id", "meaning"
  FROM "signatures"
  ORDER BY "record_id", "version", "signer_id", "meaning", "signed_at", "id"
) AS first
WHERE s."record_id" = first."record_id" AND s."version" = first."version" AND s."signer_id" = first."signer_id"
  AND s."meaning" = first."meaning" AND s."id" <> first."id";--> statement-breakpoint
ALTER TABLE "signatures" ENABLE TRIGGER "signatures_no_update";--> statement-breakpoint
CREATE UNIQUE INDEX "signatures_once_idx" ON "signatures" USING btree ("record_id","version","signer_id","meaning") WHERE repeats IS NULL;