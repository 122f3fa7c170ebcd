import { and, eq } from "drizzle-orm";
import { participants } from "../../db/schema/index.ts";
import type { AppContext } from "../platform/context.server.ts";

/** The participant of a study by subject code (case-insensitive), or null. */
export async function participantBySubject(ctx: AppContext, studyId: string, subject: string) {
  const [p] = await ctx.db
    .select()
    .from(participants)
    .where(and(eq(participants.studyId, studyId), eq(participants.subjectCode, subject.toUpperCase())));
  return p ?? null;
}
