import { and, asc, eq, inArray } from "drizzle-orm";
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

export async function insertSite(db: DbOrTx, v: { studyId: string; code: string; name: string; timeZone?: string }) {
  const [row] = await db.insert(sites).values(v).returning();
  return row;
}

/** Set a site's time zone (IANA name); the site row, or null when the study has no such site. */
export async function updateSiteTimeZone(db: DbOrTx, v: { studyId: string; code: string; timeZone: string }) {
  const [row] = await db
    .update(sites)
    .set({ timeZone: v.timeZone })
    .where(and(eq(sites.studyId, v.studyId), eq(sites.code, v.code)))
    .returning();
  return row ?? null;
}

/** A site by id (its time zone for the entry form). */
export async function findSiteById(db: DbOrTx, id: string) {
  const [row] = await db.select().from(sites).where(eq(sites.id, id));
  return row ?? null;
}

export async function listSites(db: DbOrTx, studyId: string) {
  return db.select().from(sites).where(eq(sites.studyId, studyId)).orderBy(asc(sites.code));
}
