/** The visit schedule in words, for the page, the CLI and the download (ADR 0032). */
import { desc, eq } from "drizzle-orm";
import type { DbOrTx } from "../../db/client.ts";
import { visitSchedules } from "../../db/schema/index.ts";
import type { AppContext } from "../platform/context.server.ts";
import type { ScheduleDefinition } from "./schedule-definition.ts";
import { currentSchedule } from "./schedule.server.ts";

export interface ScheduleRow {
  visit: string;
  name: string;
  /** "Day 28" (negative before the baseline). */
  day: string;
  /** "-2/+3 days", or "on the day". */
  window: string;
  forms: string;
  /** "VISIT.visdat", or "none". */
  dateField: string;
}

export function baselineWords(d: ScheduleDefinition): string {
  const b = d.baseline;
  return b.kind === "enrolment" ? "the enrolment date" : `${b.form}.${b.field} at visit ${b.visit}`;
}

export function windowWords(before: number, after: number): string {
  return before === 0 && after === 0 ? "on the day" : `-${before}/+${after} days`;
}

export function scheduleRows(d: ScheduleDefinition): ScheduleRow[] {
  return d.visits.map((v) => ({
    visit: v.code,
    name: v.name,
    day: `Day ${v.day}`,
    window: windowWords(v.windowBefore, v.windowAfter),
    forms: v.forms.join(", "),
    dateField: v.dateField ? `${v.dateField.form}.${v.dateField.field}` : "none",
  }));
}

/** The schedule in force as rows, with its version and baseline in words; null when none was set. */
export async function scheduleTable(db: DbOrTx, studyId: string) {
  const s = await currentSchedule(db, studyId);
  if (!s) return null;
  return {
    version: s.version,
    createdAt: s.createdAt,
    baseline: baselineWords(s.definition),
    rows: scheduleRows(s.definition),
    definition: s.definition,
    /** Null when the schedule matches its seal; else the warning, in words. */
    sealMismatch: s.sealMismatch,
  };
}

/** The stored text of the schedule in force (the bytes whose SHA-256 is sealed), with its version. */
export async function scheduleDefinitionText(db: DbOrTx, studyId: string) {
  const [row] = await db
    .select({ text: visitSchedules.definitionText, version: visitSchedules.version })
    .from(visitSchedules)
    .where(eq(visitSchedules.studyId, studyId))
    .orderBy(desc(visitSchedules.version))
    .limit(1);
  return row ?? null;
}

/** The schedule page's table (scheduleTable on the application's database). */
export const studyScheduleTable = (ctx: AppContext, studyId: string) => scheduleTable(ctx.db, studyId);

/** The schedule download's text (scheduleDefinitionText on the application's database). */
export const studyScheduleText = (ctx: AppContext, studyId: string) => scheduleDefinitionText(ctx.db, studyId);
