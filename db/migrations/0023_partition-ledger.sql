-- ADR 0045: ledger_entries partitioned by seq range (PostgreSQL declarative partitioning), rows moved over.
-- Pending rows (seq null) live in the DEFAULT partition ledger_entries_pending; sealed rows in ledger_entries_s<N>
-- (seqs [N*10M, (N+1)*10M)), made one range ahead by trialseal_ledger_partitions_ahead() (the sealer calls it before
-- each seal). A unique key of a partitioned table must include the partition key, and seq is null while pending: so
-- id has no primary key (a unique index on id in each partition, plus the insert guard's check across partitions)
-- and the ten foreign keys that named an entry are dropped (the integrity audit names a row whose entry is missing).
-- (study_id, study_seq) is no longer a unique constraint: the sealer assigns it under its lock, the audit checks it.
--> statement-breakpoint
ALTER TABLE "record_versions" DROP CONSTRAINT "record_versions_entry_id_ledger_entries_id_fk";
--> statement-breakpoint
ALTER TABLE "sdv_marks" DROP CONSTRAINT "sdv_marks_entry_id_ledger_entries_id_fk";
--> statement-breakpoint
ALTER TABLE "signatures" DROP CONSTRAINT "signatures_entry_id_ledger_entries_id_fk";
--> statement-breakpoint
ALTER TABLE "paper_consents" DROP CONSTRAINT "paper_consents_entry_id_ledger_entries_id_fk";
--> statement-breakpoint
ALTER TABLE "paper_consents" DROP CONSTRAINT "paper_consents_attest_entry_id_ledger_entries_id_fk";
--> statement-breakpoint
ALTER TABLE "study_settings" DROP CONSTRAINT "study_settings_entry_id_ledger_entries_id_fk";
--> statement-breakpoint
ALTER TABLE "import_jobs" DROP CONSTRAINT "import_jobs_entry_id_ledger_entries_id_fk";
--> statement-breakpoint
ALTER TABLE "participant_dispositions" DROP CONSTRAINT "participant_dispositions_entry_id_ledger_entries_id_fk";
--> statement-breakpoint
ALTER TABLE "query_events" DROP CONSTRAINT "query_events_entry_id_ledger_entries_id_fk";
--> statement-breakpoint
ALTER TABLE "visit_schedules" DROP CONSTRAINT "visit_schedules_entry_id_ledger_entries_id_fk";
--> statement-breakpoint
ALTER TABLE "ledger_entries" RENAME TO "ledger_entries_unpartitioned";
--> statement-breakpoint
CREATE TABLE "ledger_entries" (
	"id" uuid DEFAULT gen_random_uuid() NOT NULL,
	"study_id" uuid,
	"study_code" text NOT NULL,
	"kind" text NOT NULL,
	"payload_text" text NOT NULL,
	"payload_hash" "bytea" NOT NULL,
	"at" timestamp (3) with time zone NOT NULL,
	"status" text DEFAULT 'pending' NOT NULL,
	"seq" bigint,
	"study_seq" bigint,
	"envelope_text" text,
	"leaf_hash" "bytea",
	"batch_no" bigint,
	CONSTRAINT "ledger_entries_sealed_ck" CHECK ((status = 'pending') = (seq IS NULL))
) PARTITION BY RANGE ("seq");
--> statement-breakpoint
-- Pending entries. Its CHECK makes a seal into a range without a partition fail (nothing is lost: the seal's
-- transaction rolls back) instead of leaving a sealed row here, and spares a scan of it when a partition is added.
CREATE TABLE "ledger_entries_pending" PARTITION OF "ledger_entries" (
	CONSTRAINT "ledger_entries_pending_ck" CHECK (seq IS NULL)
) DEFAULT;
--> statement-breakpoint
CREATE UNIQUE INDEX "ledger_entries_pending_id_uq" ON "ledger_entries_pending" USING btree ("id");
--> statement-breakpoint
-- No DELETE statement and no INSERT statement aimed at a sealed partition, ever. The seal moves a row with an UPDATE
-- of ledger_entries, which fires only UPDATE statement triggers (on PostgreSQL 15 and PGlite: its row-level DELETE
-- and INSERT on the partitions fire none), so statement triggers tell the move from a DELETE or an INSERT, which the
-- row guards below cannot (they see the same row events for both).
CREATE FUNCTION trialseal_entry_statement_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    RAISE EXCEPTION 'trialseal: ledger_entries is append-only: DELETE rejected' USING ERRCODE = 'TS001';
  END IF;
  RAISE EXCEPTION 'trialseal: ledger_entries rows must be inserted pending, without seal fields' USING ERRCODE = 'TS002';
END;
$$;
--> statement-breakpoint
-- The partition of seqs [n*10M, (n+1)*10M), with its unique index on id, its TRUNCATE guard and its DELETE/INSERT
-- statement guard (statement triggers are not inherited; row triggers are). Returns whether it was made.
CREATE FUNCTION trialseal_ledger_partition(n bigint) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
  part text := 'ledger_entries_s' || n;
BEGIN
  IF to_regclass(quote_ident(part)) IS NOT NULL THEN
    RETURN false;
  END IF;
  EXECUTE format('CREATE TABLE %I PARTITION OF ledger_entries FOR VALUES FROM (%s) TO (%s)',
    part, n * 10000000, (n + 1) * 10000000);
  EXECUTE format('CREATE UNIQUE INDEX %I ON %I USING btree (id)', part || '_id_uq', part);
  EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON %I FOR EACH STATEMENT EXECUTE FUNCTION trialseal_reject_change()',
    part || '_no_truncate', part);
  EXECUTE format('CREATE TRIGGER %I BEFORE INSERT OR DELETE ON %I FOR EACH STATEMENT EXECUTE FUNCTION trialseal_entry_statement_guard()',
    part || '_no_insert_delete', part);
  RETURN true;
END;
$$;
--> statement-breakpoint
-- Partitions for every seq up to one whole range past the next one to seal (so a seal never lacks one, and a new
-- partition is made while the log is still inside the previous range). Idempotent; callers are serialised.
-- Returns how many partitions it made.
CREATE FUNCTION trialseal_ledger_partitions_ahead() RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
  next_seq bigint;
  made integer := 0;
BEGIN
  PERFORM pg_advisory_xact_lock(7424045);
  SELECT coalesce(max(seq), -1) + 1 INTO next_seq FROM ledger_entries;
  FOR n IN 0 .. (next_seq + 10000000) / 10000000 LOOP
    IF trialseal_ledger_partition(n) THEN
      made := made + 1;
    END IF;
  END LOOP;
  RETURN made;
END;
$$;
--> statement-breakpoint
SELECT trialseal_ledger_partition(n)
FROM generate_series(0, (SELECT (coalesce(max(seq), -1) + 1 + 10000000) / 10000000 FROM ledger_entries_unpartitioned)) AS n;
--> statement-breakpoint
-- Every row moves over as it is (no trigger on the new table yet, so sealed rows go straight to their partition).
INSERT INTO "ledger_entries" ("id", "study_id", "study_code", "kind", "payload_text", "payload_hash", "at", "status",
  "seq", "study_seq", "envelope_text", "leaf_hash", "batch_no")
SELECT "id", "study_id", "study_code", "kind", "payload_text", "payload_hash", "at", "status",
  "seq", "study_seq", "envelope_text", "leaf_hash", "batch_no"
FROM "ledger_entries_unpartitioned" ORDER BY "seq" NULLS LAST;
--> statement-breakpoint
DROP TABLE "ledger_entries_unpartitioned";
--> statement-breakpoint
ALTER TABLE "ledger_entries" ADD CONSTRAINT "ledger_entries_seq_uq" UNIQUE("seq");
--> statement-breakpoint
ALTER TABLE "ledger_entries" ADD CONSTRAINT "ledger_entries_study_id_studies_id_fk" FOREIGN KEY ("study_id") REFERENCES "public"."studies"("id") ON DELETE no action ON UPDATE no action;
--> statement-breakpoint
CREATE INDEX "ledger_entries_study_seq_idx" ON "ledger_entries" USING btree ("study_id","study_seq");
--> statement-breakpoint
CREATE INDEX "ledger_entries_status_idx" ON "ledger_entries" USING btree ("status");
--> statement-breakpoint
CREATE INDEX "ledger_entries_batch_idx" ON "ledger_entries" USING btree ("batch_no");
--> statement-breakpoint
CREATE INDEX "ledger_entries_legacy_sealed_idx" ON "ledger_entries" USING btree ("kind") WHERE kind = 'audit.legacy_sealed';
--> statement-breakpoint
-- The guards of migrations 0001/0016/0018, for a partitioned table. Sealing moves a row from ledger_entries_pending
-- to its seq's partition, which PostgreSQL runs as BEFORE UPDATE and BEFORE DELETE on the pending partition, then
-- BEFORE INSERT on the other, one row after another. The update guard, having allowed the one transition
-- pending -> sealed, names that row in a transaction-local setting; the delete guard lets only that pending row go,
-- the insert guard lets only that row in sealed, and clears the setting. Every other DELETE, every other UPDATE and
-- every row inserted with seal fields is refused as before. Any session can set that setting itself (set_config),
-- so it only serves the move: DELETE statements are refused whatever the rows, and an INSERT statement (or COPY,
-- MERGE) is checked once it has run, over all its rows, by a statement trigger the setting cannot reach.
CREATE OR REPLACE FUNCTION trialseal_entry_insert_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.status = 'sealed' AND current_setting('trialseal.sealing', true) = 'moved ' || NEW.id::text THEN
    PERFORM set_config('trialseal.sealing', '', true);
    RETURN NEW;
  END IF;
  IF NEW.status <> 'pending' OR NEW.seq IS NOT NULL OR NEW.study_seq IS NOT NULL OR NEW.envelope_text IS NOT NULL
     OR NEW.leaf_hash IS NOT NULL OR NEW.batch_no IS NOT NULL THEN
    RAISE EXCEPTION 'trialseal: ledger_entries rows must be inserted pending, without seal fields' USING ERRCODE = 'TS002';
  END IF;
  -- id is unique across partitions (the pending partition's unique index covers concurrent pending rows).
  IF EXISTS (SELECT 1 FROM ledger_entries WHERE id = NEW.id) THEN
    RAISE EXCEPTION 'duplicate key value violates unique constraint "ledger_entries_id_uq"'
      USING ERRCODE = 'unique_violation', DETAIL = format('Key (id)=(%s) already exists.', NEW.id);
  END IF;
  -- At most one entry sealing the pre-0016 audit-trail events (ADR 0016; was a partial unique index, 0018).
  IF NEW.kind = 'audit.legacy_sealed' AND EXISTS (SELECT 1 FROM ledger_entries WHERE kind = 'audit.legacy_sealed') THEN
    RAISE EXCEPTION 'duplicate key value violates unique constraint "ledger_entries_legacy_sealed_uq"'
      USING ERRCODE = 'unique_violation';
  END IF;
  RETURN NEW;
END;
$$;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION trialseal_entry_update_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.status = 'pending' AND NEW.status = 'sealed'
     AND NEW.id = OLD.id AND NEW.study_id IS NOT DISTINCT FROM OLD.study_id AND NEW.study_code = OLD.study_code
     AND NEW.kind = OLD.kind AND NEW.payload_text = OLD.payload_text AND NEW.payload_hash = OLD.payload_hash
     AND NEW.at = OLD.at
     AND NEW.seq IS NOT NULL AND NEW.study_seq IS NOT NULL AND NEW.envelope_text IS NOT NULL
     AND NEW.leaf_hash IS NOT NULL AND NEW.batch_no IS NOT NULL THEN
    PERFORM set_config('trialseal.sealing', NEW.id::text, true);
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'trialseal: ledger_entries is append-only: UPDATE rejected (only pending -> sealed by the sealer is allowed)'
    USING ERRCODE = 'TS003';
END;
$$;
--> statement-breakpoint
CREATE FUNCTION trialseal_entry_delete_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.status = 'pending' AND current_setting('trialseal.sealing', true) = OLD.id::text THEN
    PERFORM set_config('trialseal.sealing', 'moved ' || OLD.id::text, true);
    RETURN OLD;
  END IF;
  RAISE EXCEPTION 'trialseal: ledger_entries is append-only: DELETE rejected' USING ERRCODE = 'TS001';
END;
$$;
--> statement-breakpoint
CREATE TRIGGER ledger_entries_insert_guard BEFORE INSERT ON ledger_entries FOR EACH ROW EXECUTE FUNCTION trialseal_entry_insert_guard();
--> statement-breakpoint
CREATE TRIGGER ledger_entries_update_guard BEFORE UPDATE ON ledger_entries FOR EACH ROW EXECUTE FUNCTION trialseal_entry_update_guard();
--> statement-breakpoint
CREATE TRIGGER ledger_entries_no_delete BEFORE DELETE ON ledger_entries FOR EACH ROW EXECUTE FUNCTION trialseal_entry_delete_guard();
--> statement-breakpoint
CREATE TRIGGER ledger_entries_no_truncate BEFORE TRUNCATE ON ledger_entries FOR EACH STATEMENT EXECUTE FUNCTION trialseal_reject_change();
--> statement-breakpoint
CREATE TRIGGER ledger_entries_pending_no_truncate BEFORE TRUNCATE ON ledger_entries_pending FOR EACH STATEMENT EXECUTE FUNCTION trialseal_reject_change();
--> statement-breakpoint
CREATE TRIGGER ledger_entries_no_delete_statement BEFORE DELETE ON ledger_entries FOR EACH STATEMENT EXECUTE FUNCTION trialseal_entry_statement_guard();
--> statement-breakpoint
CREATE TRIGGER ledger_entries_pending_no_delete_statement BEFORE DELETE ON ledger_entries_pending FOR EACH STATEMENT EXECUTE FUNCTION trialseal_entry_statement_guard();
--> statement-breakpoint
CREATE FUNCTION trialseal_entry_inserted_check() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM inserted WHERE status <> 'pending') THEN
    RAISE EXCEPTION 'trialseal: ledger_entries rows must be inserted pending, without seal fields' USING ERRCODE = 'TS002';
  END IF;
  RETURN NULL;
END;
$$;
--> statement-breakpoint
CREATE TRIGGER ledger_entries_inserted_pending AFTER INSERT ON ledger_entries REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION trialseal_entry_inserted_check();
