/** Reading a study's visit schedule in force (the highest version). Writing it: schedule-setup.server.ts. */
import { desc, eq } from "drizzle-orm";
import type { DbOrTx } from "../../db/client.ts";
import { visitSchedules } from "../../db/schema/index.ts";
import { type ScheduleDefinition, ScheduleDefinitionSchema } from "./schedule-definition.ts";

export interface StudySchedule {
  version: number;
  definition: ScheduleDefinition;
  entryId: string;
  createdAt: Date;
}

/** The schedule in force for a study, or null when none was set. The stored text was checked when it was set. */
export async function currentSchedule(db: DbOrTx, studyId: string): Promise<StudySchedule | null> {
  const [row] = await db
    .select()
    .from(visitSchedules)
    .where(eq(visitSchedules.studyId, studyId))
    .orderBy(desc(visitSchedules.version))
    .limit(1);
  if (!row) return null;
  return {
    version: row.version,
    definition: ScheduleDefinitionSchema.parse(JSON.parse(row.definitionText)),
    entryId: row.entryId,
    createdAt: row.createdAt,
  };
}
