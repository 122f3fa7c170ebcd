/** The study's committed randomization list, its design and strata (ADR 0052): read by every randomization service. */
import { and, asc, eq, isNotNull, sql } from "drizzle-orm";
import { type Design, designSchema } from "../../anchoring/randomization/slots.ts";
import type { DbOrTx } from "../../db/client.ts";
import { randomizationLists, randomizationStrata } from "../../db/schema/index.ts";

/** A stored design (its canonical JSON) read back; a row that does not parse is a tampered row (the audit says so). */
export function designOf(designText: string): Design {
  return designSchema.parse(JSON.parse(designText));
}

export async function committedList(db: DbOrTx, studyId: string) {
  const [l] = await db
    .select()
    .from(randomizationLists)
    .where(and(eq(randomizationLists.studyId, studyId), isNotNull(randomizationLists.committedAt)))
    .limit(1);
  return l ?? null;
}

/** A committed list's strata in position order, each with how many allocations it holds. */
export async function strataWithCounts(db: DbOrTx, listId: string) {
  const rows = await db
    .select({
      id: randomizationStrata.id,
      key: randomizationStrata.key,
      position: randomizationStrata.position,
      siteId: randomizationStrata.siteId,
      size: randomizationStrata.size,
      root: randomizationStrata.root,
      allocated: sql<number>`(SELECT count(*)::int FROM randomization_allocations a
        WHERE a.stratum_id = "randomization_strata"."id")`,
    })
    .from(randomizationStrata)
    .where(eq(randomizationStrata.listId, listId))
    .orderBy(asc(randomizationStrata.position));
  return rows.map((r) => ({ ...r, allocated: Number(r.allocated) }));
}
