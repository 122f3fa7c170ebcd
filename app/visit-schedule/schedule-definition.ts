/**
 * A study's visit schedule (issue 18): its visits in order, each with a planned day relative to the baseline, a
 * window (days before and after the planned day that are still on time), the forms it has, and the field holding
 * the date the visit took place. The baseline is the participant's enrolment date, or a date field of a form.
 * Stored as the canonical JSON text of this shape (visit_schedules.definition_text) and sealed by its SHA-256.
 */
import { z } from "zod";

const code = z
  .string()
  .min(1, "is empty")
  .max(64, "is longer than 64 characters")
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, "may hold only letters, digits, dot, dash and underscore");
const fieldName = z.string().regex(/^[a-z][a-z0-9_]{0,63}$/, "is not a field name");
/** A form's date field: where a visit's date (or the baseline) is read from. */
const dateField = z.strictObject({ form: code, field: fieldName });
const days = z.number().int().min(0, "is negative").max(3650, "is more than 10 years");

export const VisitSchema = z.strictObject({
  code,
  name: z.string().min(1, "is empty").max(200, "is longer than 200 characters"),
  /** Planned day relative to the baseline (day 0 = baseline; negative for screening before it). */
  day: z.number().int().min(-3650).max(3650),
  /** Days before / after the planned day still within the window. */
  windowBefore: days,
  windowAfter: days,
  /** The forms collected at this visit, in the order shown. */
  forms: z.array(code).min(1, "lists no form").max(100),
  /** Where the visit's actual date is entered; without it the visit has no date to check against its window. */
  dateField: dateField.optional(),
});
export type Visit = z.infer<typeof VisitSchema>;

export const BaselineSchema = z.discriminatedUnion("kind", [
  z.strictObject({ kind: z.literal("enrolment") }),
  z.strictObject({ kind: z.literal("field"), visit: code, form: code, field: fieldName }),
]);
export type Baseline = z.infer<typeof BaselineSchema>;

export const ScheduleDefinitionSchema = z
  .strictObject({
    baseline: BaselineSchema,
    visits: z.array(VisitSchema).min(1, "lists no visit").max(500),
  })
  .superRefine((d, ctx) => {
    const seen = new Set<string>();
    d.visits.forEach((v, i) => {
      const key = v.code.toUpperCase();
      if (seen.has(key)) ctx.addIssue({ code: "custom", path: ["visits", i, "code"], message: `repeats ${v.code}` });
      seen.add(key);
      if (new Set(v.forms).size !== v.forms.length)
        ctx.addIssue({ code: "custom", path: ["visits", i, "forms"], message: "lists a form twice" });
      if (v.dateField && !v.forms.includes(v.dateField.form))
        ctx.addIssue({
          code: "custom",
          path: ["visits", i, "dateField", "form"],
          message: `${v.dateField.form} is not one of the visit's forms`,
        });
    });
    if (d.baseline.kind === "field" && !d.visits.some((v) => v.code === (d.baseline as { visit: string }).visit))
      ctx.addIssue({ code: "custom", path: ["baseline", "visit"], message: "is not a visit of the schedule" });
  });
export type ScheduleDefinition = z.infer<typeof ScheduleDefinitionSchema>;

/** The window of a visit, as ISO dates, given the baseline date (ISO); null without a baseline. */
export function visitWindow(
  v: Visit,
  baselineDate: string | null,
): { planned: string; from: string; to: string } | null {
  if (baselineDate === null) return null;
  const base = Date.parse(`${baselineDate}T00:00:00Z`);
  if (!Number.isFinite(base)) return null;
  const day = (n: number) => new Date(base + n * 86_400_000).toISOString().slice(0, 10);
  return { planned: day(v.day), from: day(v.day - v.windowBefore), to: day(v.day + v.windowAfter) };
}
