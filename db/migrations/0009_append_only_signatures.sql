-- E-signatures and SDV marks are append-only, like record versions: no UPDATE, DELETE or TRUNCATE.
CREATE TRIGGER signatures_no_update BEFORE UPDATE OR DELETE ON signatures FOR EACH ROW EXECUTE FUNCTION trialseal_reject_change();
--> statement-breakpoint
CREATE TRIGGER signatures_no_truncate BEFORE TRUNCATE ON signatures FOR EACH STATEMENT EXECUTE FUNCTION trialseal_reject_change();
--> statement-breakpoint
CREATE TRIGGER sdv_marks_no_update BEFORE UPDATE OR DELETE ON sdv_marks FOR EACH ROW EXECUTE FUNCTION trialseal_reject_change();
--> statement-breakpoint
CREATE TRIGGER sdv_marks_no_truncate BEFORE TRUNCATE ON sdv_marks FOR EACH STATEMENT EXECUTE FUNCTION trialseal_reject_change();
