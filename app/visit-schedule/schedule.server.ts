/**
 * Reading a study's visit schedule in force (the highest version). Writing it: schedule-setup.server.ts.
 * The stored text is checked against its seal on every read: its SHA-256 must be the row's definition_sha256 and the
 * schedule.set entry's sealed sha256; a schedule that does not match carries `sealMismatch` in words.
 */
import { desc, eq } from "drizzle-orm";
import { nodeCrypto } from "../../anchoring/adapters/crypto-node.ts";
import { toHex, utf8 } from "../../anchoring/log/bytes.ts";
import type { DbOrTx } from "../../db/client.ts";
import { ledgerEntries, visitSchedules } from "../../db/schema/index.ts";
import { MISMATCH_TEXT } from "../log/seal-text.ts";
import { type ScheduleDefinition, ScheduleDefinitionSchema } from "./schedule-definition.ts";

export interface StudySchedule {
  version: number;
  definition: ScheduleDefinition;
  entryId: string;
  createdAt: Date;
  /** Null when the stored text matches its seal; else why not, in words (the schedule must not be relied on). */
  sealMismatch: string | null;
}

/** The sealed sha256 of a schedule.set entry's payload, or null when it holds none. */
function sealedSha256(payloadText: string | null): string | null {
  if (payloadText === null) return null;
  try {
    const sha = (JSON.parse(payloadText) as { sha256?: unknown }).sha256;
    return typeof sha === "string" ? sha.toLowerCase() : null;
  } catch {
    return null;
  }
}

/** The schedule in force for a study, or null when none was set; checked against its seal (see `sealMismatch`). */
export async function currentSchedule(db: DbOrTx, studyId: string): Promise<StudySchedule | null> {
  const [row] = await db
    .select({ s: visitSchedules, kind: ledgerEntries.kind, payloadText: ledgerEntries.payloadText })
    .from(visitSchedules)
    .leftJoin(ledgerEntries, eq(ledgerEntries.id, visitSchedules.entryId))
    .where(eq(visitSchedules.studyId, studyId))
    .orderBy(desc(visitSchedules.version))
    .limit(1);
  if (!row) return null;
  const s = row.s;
  const textSha = toHex(nodeCrypto.sha256(utf8(s.definitionText)));
  const sealed = row.kind === "schedule.set" ? sealedSha256(row.payloadText) : null;
  const what = `The visit schedule (version ${s.version})`;
  let sealMismatch: string | null = null;
  if (textSha !== toHex(s.definitionSha256).toLowerCase())
    sealMismatch = `${what} ${MISMATCH_TEXT}: its stored text no longer hashes to its SHA-256`;
  else if (sealed === null) sealMismatch = `${what} ${MISMATCH_TEXT}: no schedule.set entry with its SHA-256 was found`;
  else if (textSha !== sealed) sealMismatch = `${what} ${MISMATCH_TEXT}: its SHA-256 differs from the sealed one`;
  let definition: ScheduleDefinition = { baseline: { kind: "enrolment" }, visits: [] };
  try {
    definition = ScheduleDefinitionSchema.parse(JSON.parse(s.definitionText));
  } catch {
    sealMismatch ??= `${what} ${MISMATCH_TEXT}: its stored text is no valid schedule`;
  }
  return { version: s.version, definition, entryId: s.entryId, createdAt: s.createdAt, sealMismatch };
}
