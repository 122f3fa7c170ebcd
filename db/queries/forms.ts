import { and, asc, eq } from "drizzle-orm";
import type { DbOrTx } from "../client.ts";
import { consentDocuments, forms } from "../schema/index.ts";

export async function insertForm(db: DbOrTx, v: typeof forms.$inferInsert) {
  const [row] = await db.insert(forms).values(v).returning();
  return row;
}

export async function listForms(db: DbOrTx, studyId: string) {
  return db.select().from(forms).where(eq(forms.studyId, studyId)).orderBy(asc(forms.code), asc(forms.version));
}

export async function findForm(db: DbOrTx, studyId: string, code: string, version: number) {
  const [row] = await db
    .select()
    .from(forms)
    .where(and(eq(forms.studyId, studyId), eq(forms.code, code), eq(forms.version, version)));
  return row ?? null;
}

export async function insertConsentDocument(db: DbOrTx, v: typeof consentDocuments.$inferInsert) {
  const [row] = await db.insert(consentDocuments).values(v).returning();
  return row;
}

export async function listConsentDocuments(db: DbOrTx, studyId: string) {
  return db
    .select()
    .from(consentDocuments)
    .where(eq(consentDocuments.studyId, studyId))
    .orderBy(asc(consentDocuments.code), asc(consentDocuments.version));
}
