/**
 * Export access events (issue 22, ADR 0071): every export's audit event names the participants whose data the file
 * holds, as `detail.participants` (their ids, sorted, each once), so a participant's access list (ADR 0067) can say
 * "the sponsor exported the study's data, yours among it" and the integrity audit covers it (the detail is sealed
 * as a salted hash of its canonical JSON, ADR 0016).
 *
 * Size: one id is 36 characters, so the list costs about 39 bytes per participant in the event's detail (jsonb):
 * 39 KB for 1,000 participants, 390 KB for 10,000. It never holds more than the study's participants
 * (MAX_EXPORT_PARTICIPANTS is the hard bound: a list above it is refused rather than truncated, since a truncated
 * list would hide an export from the participants left off). The sealed ledger payload holds only the hash.
 */
import { and, eq, inArray } from "drizzle-orm";
import { participants } from "../../db/schema/index.ts";
import type { AppContext } from "../platform/context.server.ts";

/** At most this many participants named by one export event (about 3.9 MB of detail). */
export const MAX_EXPORT_PARTICIPANTS = 100_000;

/** The detail member naming the participants: ids sorted, each once. */
export function exportParticipantsDetail(ids: Iterable<string>): { participants: string[] } {
  const list = [...new Set(ids)].sort();
  if (list.length > MAX_EXPORT_PARTICIPANTS)
    throw new Error(`an export event cannot name ${list.length} participants (at most ${MAX_EXPORT_PARTICIPANTS})`);
  return { participants: list };
}

/** The ids of the study's participants with these subject codes (unknown codes are ignored). */
export async function participantIdsOfSubjects(
  ctx: AppContext,
  studyId: string,
  subjects: Iterable<string | null | undefined>,
): Promise<string[]> {
  const codes = [...new Set([...subjects].filter((s): s is string => typeof s === "string" && s.length > 0))];
  const out: string[] = [];
  for (let i = 0; i < codes.length; i += 1000) {
    const rows = await ctx.db
      .select({ id: participants.id })
      .from(participants)
      .where(and(eq(participants.studyId, studyId), inArray(participants.subjectCode, codes.slice(i, i + 1000))));
    out.push(...rows.map((r) => r.id));
  }
  return out;
}
