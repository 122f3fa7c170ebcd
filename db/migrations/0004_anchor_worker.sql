ALTER TABLE "anchors" ADD COLUMN "work_text" text;--> statement-breakpoint
ALTER TABLE "anchors" ADD COLUMN "lease_until" timestamp (3) with time zone;--> statement-breakpoint
ALTER TABLE "anchors" ADD COLUMN "final_at" timestamp (3) with time zone;--> statement-breakpoint
CREATE INDEX "anchors_status_idx" ON "anchors" USING btree ("status","ledger");