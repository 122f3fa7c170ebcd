/**
 * The SAP's outcome list as data (issue 20, ADR 0049): its shape, its canonical text (what is sealed by salted
 * hash), the list read back from a plain HTML form (rows `o-N-field`, works without JavaScript), and what changed
 * between two versions, in words. Pure: used by the service, the pages and the public registration page.
 */
import { z } from "zod";
import { canonicalize } from "../../anchoring/log/canonical.ts";

export const OUTCOME_TYPES = ["primary", "secondary"] as const;
export type OutcomeType = (typeof OUTCOME_TYPES)[number];
export const MAX_OUTCOMES = 200;
/** Each field's words in messages, and its longest text. */
export const OUTCOME_FIELDS = {
  name: { words: "name", max: 200 },
  measure: { words: "measure", max: 1000 },
  timePoint: { words: "time point", max: 200 },
  analysis: { words: "analysis", max: 2000 },
} as const;
export type OutcomeField = keyof typeof OUTCOME_FIELDS;
/** The reason for a change, at most this long. */
export const MAX_REASON = 2000;

const text = (f: OutcomeField) =>
  z
    .string({ message: "is missing" })
    .trim()
    .min(1, "is empty")
    .max(OUTCOME_FIELDS[f].max, `is longer than ${OUTCOME_FIELDS[f].max} characters`);

export const OutcomeSchema = z.strictObject({
  type: z.enum(OUTCOME_TYPES, { message: "must be primary or secondary" }),
  name: text("name"),
  measure: text("measure"),
  timePoint: text("timePoint"),
  analysis: text("analysis"),
});
export type Outcome = z.infer<typeof OutcomeSchema>;

const nameKey = (name: string) => name.trim().toLowerCase();

export const OutcomeListSchema = z
  .array(OutcomeSchema, { message: "expected a list of outcomes" })
  .min(1, "name at least one outcome")
  .max(MAX_OUTCOMES, `at most ${MAX_OUTCOMES} outcomes`)
  .superRefine((list, c) => {
    if (!list.some((o) => o.type === "primary"))
      c.addIssue({ code: "custom", message: "name at least one primary outcome", path: [] });
    const seen = new Set<string>();
    list.forEach((o, i) => {
      if (seen.has(nameKey(o.name)))
        c.addIssue({ code: "custom", message: `the name "${o.name}" is used twice`, path: [i, "name"] });
      seen.add(nameKey(o.name));
    });
  });

/** A zod issue of the list in words: "outcome 3 time point: is empty". */
export function outcomeIssueWords(path: PropertyKey[], message: string): { field: string; message: string } {
  if (typeof path[0] !== "number") return { field: "outcomes", message: `outcomes: ${message}` };
  const f = path[1];
  const words = typeof f === "string" && f in OUTCOME_FIELDS ? OUTCOME_FIELDS[f as OutcomeField].words : f;
  return {
    field: `o-${path[0]}-${String(f ?? "name")}`,
    message: `outcome ${path[0] + 1}${words ? ` ${String(words)}` : ""}: ${message}`,
  };
}

/** The sealed text: the list as canonical JSON (RFC 8785), in the sponsor's order, each text trimmed. */
export function outcomesText(list: Outcome[]): string {
  return canonicalize(list.map((o) => OutcomeSchema.parse(o)));
}

/** A stored list back as outcomes (the row's outcomes_text); null when it does not parse. */
export function parseOutcomesText(text: string): Outcome[] | null {
  try {
    const r = OutcomeListSchema.safeParse(JSON.parse(text));
    return r.success ? r.data : null;
  } catch {
    return null;
  }
}

/**
 * The list from a form's fields `o-N-type`, `o-N-name`, ...; a row whose texts are all blank, or whose `o-N-remove`
 * is ticked, is left out (a blank row is how a new outcome is added without JavaScript).
 */
export function outcomesFromForm(entries: Iterable<[string, unknown]>): unknown[] {
  const rows = new Map<number, Record<string, string>>();
  for (const [k, v] of entries) {
    const m = /^o-(\d{1,3})-(type|name|measure|timePoint|analysis|remove)$/.exec(k);
    if (!m || typeof v !== "string") continue;
    const i = Number(m[1]);
    rows.set(i, { ...(rows.get(i) ?? {}), [m[2]]: v });
  }
  return [...rows.entries()]
    .sort(([a], [b]) => a - b)
    .map(([, r]) => r)
    .filter((r) => !r.remove && (["name", "measure", "timePoint", "analysis"] as const).some((f) => r[f]?.trim()))
    .map(({ remove: _, ...r }) => r);
}

export interface OutcomeChange {
  kind: "added" | "removed" | "changed";
  name: string;
  type: OutcomeType;
  /** For a change: the fields that differ (type, measure, time point, analysis). */
  fields: string[];
  words: string;
}

/** What changed from `before` to `after`, outcome by outcome (matched by name, case and spaces aside). */
export function outcomeChanges(before: Outcome[] | null, after: Outcome[]): OutcomeChange[] {
  const prev = new Map((before ?? []).map((o) => [nameKey(o.name), o]));
  const next = new Map(after.map((o) => [nameKey(o.name), o]));
  const out: OutcomeChange[] = [];
  for (const o of after) {
    const p = prev.get(nameKey(o.name));
    if (!p) {
      out.push({ kind: "added", name: o.name, type: o.type, fields: [], words: `added ${o.type} outcome "${o.name}"` });
      continue;
    }
    const fields = (["type", "name", "measure", "timePoint", "analysis"] as const)
      .filter((f) => p[f] !== o[f])
      .map((f) => (f === "type" ? "type" : OUTCOME_FIELDS[f].words));
    if (fields.length)
      out.push({
        kind: "changed",
        name: o.name,
        type: o.type,
        fields,
        words:
          p.type !== o.type
            ? `changed outcome "${o.name}" from ${p.type} to ${o.type}` +
              (fields.length > 1 ? ` (and its ${fields.filter((f) => f !== "type").join(", ")})` : "")
            : `changed ${o.type} outcome "${o.name}": ${fields.join(", ")}`,
      });
  }
  for (const p of before ?? [])
    if (!next.has(nameKey(p.name)))
      out.push({
        kind: "removed",
        name: p.name,
        type: p.type,
        fields: [],
        words: `removed ${p.type} outcome "${p.name}"`,
      });
  return out;
}
