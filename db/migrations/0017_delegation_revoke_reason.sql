ALTER TABLE "delegations" ADD COLUMN "revoke_reason" text;--> statement-breakpoint
-- Backfill (ADR 0020): revocations made before this column existed have their reason in clear in their
-- version 1 delegation.revoked payload; copy it into the row, so that every revocation's reason is in its row.
UPDATE "delegations" AS d SET "revoke_reason" = (e."payload_text"::jsonb ->> 'reason')
FROM "ledger_entries" AS e
WHERE e."kind" = 'delegation.revoked' AND (e."payload_text"::jsonb ->> 'delegation') = d."id"::text
  AND d."revoked_at" IS NOT NULL AND d."revoke_reason" IS NULL AND (e."payload_text"::jsonb ->> 'v') = '1';
