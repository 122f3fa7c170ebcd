/**
 * Import files for tests and the bench (issue 18): a realistic CSV of one form, N rows, every value valid for its
 * field (inside hard and soft limits, so no automatic query is opened), fields hidden by branching left empty,
 * calculated fields left out. Deterministic: the same options give the same file.
 */
import { visibleFields } from "../../anchoring/forms/check-entry.ts";
import type { FieldDefinition, FormDefinition } from "../../anchoring/forms/definition.ts";

export interface CsvForFormOptions {
  /** Data rows (the header not counted). */
  rows: number;
  /** Subject codes, used in turn (row i is subjects[i % subjects.length]). */
  subjects: string[];
  /** The visit code written in every row (a REDCap unique event name works too, e.g. "screening_arm_1"). */
  visit: string;
  /**
   * REDCap's header (`record_id,redcap_event_name,redcap_repeat_instance`) instead of `subject,visit,instance`.
   * A repeating form's rows of one subject get instances 1, 2, ...; other forms get no instance column.
   */
  redcap?: boolean;
  /** The date values are before this day (YYYY-MM-DD; default 2025-06-30). */
  before?: string;
}

/** A small deterministic PRNG (mulberry32). */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WORDS = ["headache", "after", "the", "dose", "mild", "nausea", "resolved", "next", "day", "seen", "at", "visit"];

function quote(s: string): string {
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** One field's value as a person would have typed it (text), valid for the field. */
function valueFor(f: FieldDefinition, rnd: () => number, before: string): unknown {
  const day = (back: number) => {
    const d = new Date(`${before}T00:00:00Z`);
    d.setUTCDate(d.getUTCDate() - 1 - back);
    return d.toISOString().slice(0, 10);
  };
  switch (f.type) {
    case "number": {
      const lo = Math.max(f.min ?? 0, f.softMin ?? Number.NEGATIVE_INFINITY);
      const hi = Math.min(f.max ?? lo + 100, f.softMax ?? Number.POSITIVE_INFINITY);
      const n = lo + (hi - lo) * (0.2 + 0.6 * rnd());
      return f.integer ? Math.round(n) : Math.round(n * 10) / 10;
    }
    case "date":
      return day(Math.floor(rnd() * 300));
    case "datetime": {
      const hour = String(8 + Math.floor(rnd() * 9)).padStart(2, "0");
      return `${day(Math.floor(rnd() * 300))} ${hour}:${rnd() < 0.5 ? "00" : "30"}`;
    }
    case "choice":
      return f.options[Math.floor(rnd() * f.options.length)].value;
    case "multichoice":
      return f.options.filter(() => rnd() < 0.4).map((o) => o.value);
    case "boolean":
      return rnd() < 0.2;
    case "text": {
      const max = f.maxLength ?? 200;
      if (max <= 4) return ["AB", "CD", "EF", "GH", "JK"][Math.floor(rnd() * 5)].slice(0, max);
      const n = 2 + Math.floor(rnd() * 6);
      const s = Array.from({ length: n }, () => WORDS[Math.floor(rnd() * WORDS.length)]).join(" ");
      return s.charAt(0).toUpperCase() + s.slice(1, max);
    }
    case "calc":
      return undefined;
  }
}

/**
 * A CSV of `rows` rows of form `definition` at `visit`: columns subject, visit (and instance for a repeating form),
 * then every entered field of the form by name, a multiple choice as REDCap's checkbox columns `field___code`.
 */
export function csvForForm(definition: FormDefinition, opts: CsvForFormOptions): string {
  const before = opts.before ?? "2025-06-30";
  const fields = definition.fields.filter((f) => f.type !== "calc");
  const header = opts.redcap ? ["record_id", "redcap_event_name"] : ["subject", "visit"];
  if (definition.repeating) header.push(opts.redcap ? "redcap_repeat_instance" : "instance");
  for (const f of fields) {
    if (f.type === "multichoice") for (const o of f.options) header.push(`${f.name}___${o.value.toLowerCase()}`);
    else header.push(f.name);
  }
  const lines = [header.map(quote).join(",")];
  const rnd = random(opts.rows * 7919 + definition.code.length);
  for (let i = 0; i < opts.rows; i++) {
    const subject = opts.subjects[i % opts.subjects.length];
    const values: Record<string, unknown> = {};
    for (const f of fields) values[f.name] = valueFor(f, rnd, before);
    const shown = visibleFields(definition, values);
    const cells = [subject, opts.visit];
    if (definition.repeating) cells.push(String(Math.floor(i / opts.subjects.length) + 1));
    for (const f of fields) {
      const v = shown.has(f.name) ? values[f.name] : undefined;
      if (f.type === "multichoice") {
        const ticked = Array.isArray(v) ? v : [];
        for (const o of f.options) cells.push(ticked.includes(o.value) ? "1" : "0");
      } else if (f.type === "boolean") cells.push(v === undefined ? "" : v ? "1" : "0");
      else cells.push(v === undefined ? "" : String(v));
    }
    lines.push(cells.map(quote).join(","));
  }
  return `${lines.join("\r\n")}\r\n`;
}
