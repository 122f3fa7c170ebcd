ALTER TABLE "ledger_entries" ALTER COLUMN "study_id" DROP NOT NULL;--> statement-breakpoint
ALTER TABLE "audit_events" ADD COLUMN "entry_id" uuid;--> statement-breakpoint
ALTER TABLE "audit_events" ADD CONSTRAINT "audit_events_entry_uq" UNIQUE("entry_id");--> statement-breakpoint
-- ADR 0016: entries of no study (the deployment scope) have a null study_id, so the one allowed transition
-- compares it with IS NOT DISTINCT FROM (= is never true for nulls). Otherwise unchanged from migration 0001.
CREATE OR REPLACE FUNCTION trialseal_entry_update_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.status = 'pending' AND NEW.status = 'sealed'
     AND NEW.id = OLD.id AND NEW.study_id IS NOT DISTINCT FROM OLD.study_id AND NEW.study_code = OLD.study_code
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
