/**
 * Visit windows (issue 18, ADR 0032): for each visit of the schedule in force, its planned date and window from the
 * participant's baseline (the enrolment date on the site's clock, or the baseline form's date field), the visit's
 * actual date (its date field) and its state. A date outside its window is allowed (soft) and opens an automatic
 * query on the date field, in the transaction of the save, unless the schedule does not match its seal.
 */
import { and, eq } from "drizzle-orm";
import type { FormDefinition } from "../../anchoring/forms/definition.ts";
import type { DbOrTx } from "../../db/client.ts";
import { participants, records, recordVersions, sites } from "../../db/schema/index.ts";
import { openAutomaticQuery } from "../clinical-monitoring/automatic-queries.server.ts";
import type { AppContext } from "../platform/context.server.ts";
import type { Principal } from "../platform/permissions.server.ts";
import { todayIn } from "../records/records.server.ts";
import type { ScheduleDefinition, Visit } from "./schedule-definition.ts";
import { visitWindow } from "./schedule-definition.ts";
import { currentSchedule } from "./schedule.server.ts";

export type WindowState = "not_due" | "due" | "overdue" | "in_window" | "out_of_window";

export interface VisitWindow {
  visit: string;
  name: string;
  planned: string | null;
  from: string | null;
  to: string | null;
  actual: string | null;
  state: WindowState;
}

/** The state in words, for the portal (shown with the state, never colour alone). */
export const WINDOW_STATE_LABELS: Record<WindowState, string> = {
  not_due: "Not due",
  due: "Due",
  overdue: "Overdue",
  in_window: "In window",
  out_of_window: "Out of window",
};

const isoDate = (v: unknown) => (typeof v === "string" && /^\d{4}-\d{2}-\d{2}$/.test(v) ? v : null);

/** The value of a date field in the current version of a subject's form at a visit (first row), or null. */
async function fieldDate(db: DbOrTx, participantId: string, form: string, visit: string, field: string) {
  const [row] = await db
    .select({ dataText: recordVersions.dataText })
    .from(records)
    .innerJoin(
      recordVersions,
      and(eq(recordVersions.recordId, records.id), eq(recordVersions.version, records.currentVersion)),
    )
    .where(
      and(
        eq(records.participantId, participantId),
        eq(records.formCode, form.toUpperCase()),
        eq(records.visit, visit.toUpperCase()),
        eq(records.instance, 1),
      ),
    );
  if (!row) return null;
  return isoDate((JSON.parse(row.dataText) as Record<string, unknown>)[field]);
}

/** The participant's baseline date, and today at their site. */
async function baselineOf(db: DbOrTx, d: ScheduleDefinition, participantId: string) {
  const [p] = await db
    .select({ enrolledAt: participants.enrolledAt, timeZone: sites.timeZone })
    .from(participants)
    .innerJoin(sites, eq(sites.id, participants.siteId))
    .where(eq(participants.id, participantId));
  if (!p) return { baseline: null, today: todayIn() };
  const b = d.baseline;
  const baseline =
    b.kind === "enrolment"
      ? todayIn(p.timeZone, p.enrolledAt)
      : await fieldDate(db, participantId, b.form, b.visit, b.field);
  return { baseline, today: todayIn(p.timeZone) };
}

function stateOf(w: { from: string; to: string } | null, actual: string | null, today: string): WindowState {
  if (!w) return "not_due";
  if (actual !== null) return actual >= w.from && actual <= w.to ? "in_window" : "out_of_window";
  if (today < w.from) return "not_due";
  return today <= w.to ? "due" : "overdue";
}

/** Each visit's window and state for a participant; empty when the study has no schedule. */
export async function participantVisitWindows(
  db: DbOrTx,
  studyId: string,
  participantId: string,
): Promise<VisitWindow[]> {
  const s = await currentSchedule(db, studyId);
  if (!s) return [];
  const { baseline, today } = await baselineOf(db, s.definition, participantId);
  const out: VisitWindow[] = [];
  for (const v of s.definition.visits) {
    const w = visitWindow(v, baseline);
    const actual = v.dateField ? await fieldDate(db, participantId, v.dateField.form, v.code, v.dateField.field) : null;
    out.push({
      visit: v.code,
      name: v.name,
      planned: w?.planned ?? null,
      from: w?.from ?? null,
      to: w?.to ?? null,
      actual,
      state: stateOf(w, actual, today),
    });
  }
  return out;
}

/** "Visit date 2026-03-20 is outside the Week 4 window 2026-03-10 to 2026-03-16". */
export function windowQueryText(label: string, date: string, v: Visit, w: { from: string; to: string }): string {
  return `${label} ${date} is outside the ${v.name} window ${w.from} to ${w.to}`;
}

/**
 * Inside a save's transaction (after the version is written): when the saved form at its visit holds the visit's
 * date field and that date lies outside the window, open an automatic query on the field. `unchanged` fields (a
 * correction that kept the date) open none. Returns the query's id, or null.
 */
export async function openWindowQuery(
  tx: DbOrTx,
  ctx: AppContext,
  principal: Principal,
  study: { id: string; code: string },
  record: { id: string; siteId: string; participantId: string; visit: string },
  def: FormDefinition,
  values: Record<string, unknown>,
  unchanged: string[] = [],
): Promise<string | null> {
  const s = await currentSchedule(tx, study.id);
  if (s?.sealMismatch) return null; // a schedule that does not match its seal is not relied on
  const v = s?.definition.visits.find((x) => x.code.toUpperCase() === record.visit.toUpperCase());
  if (!s || !v?.dateField || v.dateField.form.toUpperCase() !== def.code.toUpperCase()) return null;
  const field = v.dateField.field;
  const date = isoDate(values[field]);
  if (date === null || unchanged.includes(field)) return null;
  const { baseline } = await baselineOf(tx, s.definition, record.participantId);
  const w = visitWindow(v, baseline);
  if (!w || (date >= w.from && date <= w.to)) return null;
  const label = def.fields.find((f) => f.name === field)?.label ?? field;
  return openAutomaticQuery(tx, ctx, principal, study, record, field, windowQueryText(label, date, v, w));
}
