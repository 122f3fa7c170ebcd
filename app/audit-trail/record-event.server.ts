/** The audit trail: security and data events. Never pass personal data or secrets in `detail`. */
import type { DbOrTx } from "../../db/client.ts";
import { insertAuditEvent, type NewAuditEvent } from "../../db/queries/audit.ts";

export async function audit(db: DbOrTx, e: NewAuditEvent): Promise<void> {
  await insertAuditEvent(db, e);
}
