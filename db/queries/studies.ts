import { asc, eq, inArray } from "drizzle-orm";
import type { DbOrTx } from "../client.ts";
import { sites, studies } from "../schema/index.ts";

export async function findStudyByCode(db: DbOrTx, code: string) {
  const [row] = await db.select().from(studies).where(eq(studies.code, code));
  return row ?? null;
}

export async function findStudyById(db: DbOrTx, id: string) {
  const [row] = await db.select().from(studies).where(eq(studies.id, id));
  return row ?? null;
}

export async function listStudies(db: DbOrTx, ids?: string[]) {
  if (ids && ids.length === 0) return [];
  return db
    .select()
    .from(studies)
    .where(ids ? inArray(studies.id, ids) : undefined)
    .orderBy(asc(studies.code));
}

export async function insertStudy(db: DbOrTx, v: { code: string; title: string }) {
  const [row] = await db.insert(studies).values(v).returning();
  return row;
}

export async function insertSite(db: DbOrTx, v: { studyId: string; code: string; name: string }) {
  const [row] = await db.insert(sites).values(v).returning();
  return row;
}

export async function listSites(db: DbOrTx, studyId: string) {
  return db.select().from(sites).where(eq(sites.studyId, studyId)).orderBy(asc(sites.code));
}
