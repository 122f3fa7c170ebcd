-- Append-only ledger tables, enforced by the database itself (not only by the application).
-- Errors use SQLSTATE 'TS001'..'TS003' with messages that name the table and the rejected operation.

CREATE FUNCTION trialseal_reject_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'trialseal: % is append-only: % rejected', TG_TABLE_NAME, TG_OP USING ERRCODE = 'TS001';
END;
$$;
--> statement-breakpoint
CREATE FUNCTION trialseal_entry_insert_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.status <> 'pending' OR NEW.seq IS NOT NULL OR NEW.study_seq IS NOT NULL OR NEW.envelope_text IS NOT NULL
     OR NEW.leaf_hash IS NOT NULL OR NEW.batch_no IS NOT NULL THEN
    RAISE EXCEPTION 'trialseal: ledger_entries rows must be inserted pending, without seal fields' USING ERRCODE = 'TS002';
  END IF;
  RETURN NEW;
END;
$$;
--> statement-breakpoint
-- The one allowed transition: pending -> sealed, setting seq, study_seq, envelope_text, leaf_hash and batch_no
-- once, with every other column unchanged.
CREATE FUNCTION trialseal_entry_update_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.status = 'pending' AND NEW.status = 'sealed'
     AND NEW.id = OLD.id AND NEW.study_id = OLD.study_id AND NEW.study_code = OLD.study_code
     AND NEW.kind = OLD.kind AND NEW.payload_text = OLD.payload_text AND NEW.payload_hash = OLD.payload_hash
     AND NEW.at = OLD.at
     AND NEW.seq IS NOT NULL AND NEW.study_seq IS NOT NULL AND NEW.envelope_text IS NOT NULL
     AND NEW.leaf_hash IS NOT NULL AND NEW.batch_no IS NOT NULL THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'trialseal: ledger_entries is append-only: UPDATE rejected (only pending -> sealed by the sealer is allowed)'
    USING ERRCODE = 'TS003';
END;
$$;
--> statement-breakpoint
CREATE TRIGGER ledger_entries_insert_guard BEFORE INSERT ON ledger_entries FOR EACH ROW EXECUTE FUNCTION trialseal_entry_insert_guard();
--> statement-breakpoint
CREATE TRIGGER ledger_entries_update_guard BEFORE UPDATE ON ledger_entries FOR EACH ROW EXECUTE FUNCTION trialseal_entry_update_guard();
--> statement-breakpoint
CREATE TRIGGER ledger_entries_no_delete BEFORE DELETE ON ledger_entries FOR EACH ROW EXECUTE FUNCTION trialseal_reject_change();
--> statement-breakpoint
CREATE TRIGGER ledger_entries_no_truncate BEFORE TRUNCATE ON ledger_entries FOR EACH STATEMENT EXECUTE FUNCTION trialseal_reject_change();
--> statement-breakpoint
CREATE TRIGGER batches_no_update BEFORE UPDATE OR DELETE ON batches FOR EACH ROW EXECUTE FUNCTION trialseal_reject_change();
--> statement-breakpoint
CREATE TRIGGER batches_no_truncate BEFORE TRUNCATE ON batches FOR EACH STATEMENT EXECUTE FUNCTION trialseal_reject_change();
--> statement-breakpoint
CREATE TRIGGER checkpoints_no_update BEFORE UPDATE OR DELETE ON checkpoints FOR EACH ROW EXECUTE FUNCTION trialseal_reject_change();
--> statement-breakpoint
CREATE TRIGGER checkpoints_no_truncate BEFORE TRUNCATE ON checkpoints FOR EACH STATEMENT EXECUTE FUNCTION trialseal_reject_change();
--> statement-breakpoint
CREATE TRIGGER record_versions_no_update BEFORE UPDATE OR DELETE ON record_versions FOR EACH ROW EXECUTE FUNCTION trialseal_reject_change();
--> statement-breakpoint
CREATE TRIGGER record_versions_no_truncate BEFORE TRUNCATE ON record_versions FOR EACH STATEMENT EXECUTE FUNCTION trialseal_reject_change();
--> statement-breakpoint
CREATE TRIGGER audit_events_no_update BEFORE UPDATE OR DELETE ON audit_events FOR EACH ROW EXECUTE FUNCTION trialseal_reject_change();
--> statement-breakpoint
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events FOR EACH STATEMENT EXECUTE FUNCTION trialseal_reject_change();
