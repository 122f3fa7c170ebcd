import { desc, eq } from "drizzle-orm";
import type { DbOrTx } from "../client.ts";
import { auditEvents } from "../schema/index.ts";

export type NewAuditEvent = typeof auditEvents.$inferInsert;

export async function insertAuditEvent(db: DbOrTx, e: NewAuditEvent) {
  await db.insert(auditEvents).values(e);
}

export async function listAuditEvents(db: DbOrTx, opts: { studyId?: string; limit?: number } = {}) {
  return db
    .select()
    .from(auditEvents)
    .where(opts.studyId ? eq(auditEvents.studyId, opts.studyId) : undefined)
    .orderBy(desc(auditEvents.id))
    .limit(opts.limit ?? 100);
}
