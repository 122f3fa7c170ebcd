ALTER TABLE "participants" ADD COLUMN "actor_token_id" uuid;--> statement-breakpoint
ALTER TABLE "participants" ADD COLUMN "actor_token_name" text;--> statement-breakpoint
ALTER TABLE "record_versions" ADD COLUMN "actor_token_id" uuid;--> statement-breakpoint
ALTER TABLE "record_versions" ADD COLUMN "actor_token_name" text;--> statement-breakpoint
ALTER TABLE "participants" ADD CONSTRAINT "participants_actor_token_id_api_tokens_id_fk" FOREIGN KEY ("actor_token_id") REFERENCES "public"."api_tokens"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "record_versions" ADD CONSTRAINT "record_versions_actor_token_id_api_tokens_id_fk" FOREIGN KEY ("actor_token_id") REFERENCES "public"."api_tokens"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
-- Token names become unique per study (case-insensitive), so that a write's token is named unambiguously. A database
-- from before may hold two tokens of one name in a study: each after the first (by creation) is renamed
-- "<name> (2)", "(3)", ... (the first free one), and the rename is recorded in the audit trail.
DO $$
DECLARE
  t record;
  n integer;
  candidate text;
BEGIN
  FOR t IN
    SELECT a.id, a.study_id, a.name FROM api_tokens a
    WHERE EXISTS (
      SELECT 1 FROM api_tokens b
      WHERE b.study_id = a.study_id AND lower(b.name) = lower(a.name) AND (b.created_at, b.id) < (a.created_at, a.id)
    )
    ORDER BY a.created_at, a.id
  LOOP
    n := 2;
    LOOP
      candidate := t.name || ' (' || n || ')';
      EXIT WHEN NOT EXISTS (
        SELECT 1 FROM api_tokens WHERE study_id = t.study_id AND lower(name) = lower(candidate)
      );
      n := n + 1;
    END LOOP;
    UPDATE api_tokens SET name = candidate WHERE id = t.id;
    INSERT INTO audit_events (actor_label, action, study_id, detail)
    VALUES (
      'migration 0012', 'token.rename', t.study_id,
      jsonb_build_object('token', t.id, 'from', t.name, 'to', candidate, 'why', 'token names are unique per study')
    );
  END LOOP;
END $$;
--> statement-breakpoint
CREATE UNIQUE INDEX "api_tokens_study_name_uq" ON "api_tokens" USING btree ("study_id",lower("name"));