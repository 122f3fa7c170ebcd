import { and, asc, eq, sql } from "drizzle-orm";
import type { DbOrTx } from "../client.ts";
import { ledgerEntries } from "../schema/index.ts";

export interface NewEntry {
  studyId: string;
  studyCode: string;
  kind: string;
  payloadText: string;
  payloadHash: Uint8Array;
  at?: Date;
}

/** Insert a pending ledger entry (call inside the transaction that writes the data it records). */
export async function insertPendingEntry(db: DbOrTx, e: NewEntry) {
  const [row] = await db
    .insert(ledgerEntries)
    .values({ ...e, at: e.at ?? new Date() })
    .returning({ id: ledgerEntries.id, at: ledgerEntries.at });
  return row;
}

export async function getEntry(db: DbOrTx, id: string) {
  const [row] = await db.select().from(ledgerEntries).where(eq(ledgerEntries.id, id));
  return row ?? null;
}

export async function countEntries(db: DbOrTx, studyId?: string) {
  const [row] = await db
    .select({ n: sql<number>`count(*)::int` })
    .from(ledgerEntries)
    .where(studyId ? eq(ledgerEntries.studyId, studyId) : undefined);
  return row.n;
}

export async function listStudyEntries(db: DbOrTx, studyId: string, limit = 100) {
  return db.select().from(ledgerEntries).where(and(eq(ledgerEntries.studyId, studyId))).orderBy(asc(ledgerEntries.at)).limit(limit);
}
