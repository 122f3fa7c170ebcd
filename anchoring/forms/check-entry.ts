/**
 * The check of one entry of a form (a new record or a correction): every problem at once, in form order, in words
 * a coordinator understands ("Systolic BP must be between 50 and 250 mmHg"). It also resolves branching (which
 * fields are shown), computes the calculated fields and sorts out missing-data codes and soft limits.
 *
 * Browser-safe (the entry form runs it live, the server runs it authoritatively, the verifier recomputes
 * calculations with `computeCalculations`): no node: module, nothing from app/ or db/.
 */
import {
  type FieldDefinition,
  type FormDefinition,
  MISSING_CODES,
  type MissingCode,
  isRequired,
  validDate,
  validDateTime,
  xmlUnsafeCharacter,
} from "./definition.ts";
import {
  type CompiledExpression,
  compileExpression,
  evaluateCalculation,
  evaluateExpression,
  isTruthy,
} from "./expression.ts";
import { unitLabel } from "./units.ts";

/** What a person (or an EDC bridge) sent: values by field name; `null` or absent is no value. */
export interface EntryInput {
  values: Record<string, unknown>;
  /** Missing-data codes with a reason, by field name, instead of a value. */
  missing?: Record<string, { code: string; reason: string }>;
  /** Fields whose value outside the soft limits the person has checked and confirmed. */
  confirmed?: string[];
}

export interface EntryProblem {
  /** The field's name ("" when the problem is with the entry as a whole). */
  field: string;
  label: string;
  /** A whole sentence naming the field's label. */
  message: string;
  /** `error` refuses the entry; `confirm` asks the person to check the value and confirm it. */
  kind: "error" | "confirm";
}

export interface CheckedEntry {
  /** No problem of either kind: the entry may be saved. */
  ok: boolean;
  /** The entered values of the shown fields (blanks and hidden fields left out). */
  values: Record<string, unknown>;
  missing: Record<string, { code: MissingCode; reason: string }>;
  /** The shown calculated fields: a number, or null when an input is empty. */
  calculated: Record<string, number | null>;
  /** Hidden fields for which a value or a missing-data code was sent: dropped. */
  hidden: string[];
  /** Fields whose value lies outside the soft limits and was confirmed (each opens an automatic query). */
  outsideSoftLimits: string[];
  problems: EntryProblem[];
}

export interface CheckOptions {
  /** The site's date, YYYY-MM-DD: a date field that is `notFuture` may not be after it. */
  today: string;
  /** Now in ms since the epoch, for a datetime field that is `notFuture`; default Date.now(). */
  now?: number;
}

/** The longest reason a missing-data code may carry. */
export const MISSING_REASON_MAX = 2000;

// ---------------------------------------------------------------------------------------------------------------
// Compiled expressions, once per definition object (definitions are never mutated).

interface Compiled {
  showIf: Map<string, CompiledExpression>;
  sectionShowIf: Map<string, CompiledExpression>;
  /** Calculated fields in dependency order (a calculation after the calculations it reads). */
  calcs: { field: FieldDefinition & { type: "calc" }; expr: CompiledExpression }[];
  branching: boolean;
}

const compiled = new WeakMap<FormDefinition, Compiled>();

function compile(def: FormDefinition): Compiled {
  const cached = compiled.get(def);
  if (cached) return cached;
  const showIf = new Map<string, CompiledExpression>();
  const sectionShowIf = new Map<string, CompiledExpression>();
  for (const s of def.sections ?? [])
    if (s.showIf !== undefined) sectionShowIf.set(s.name, compileExpression(s.showIf));
  const calcs: Compiled["calcs"] = [];
  for (const f of def.fields) {
    if (f.showIf !== undefined) showIf.set(f.name, compileExpression(f.showIf));
    if (f.type === "calc") calcs.push({ field: f, expr: compileExpression(f.expression) });
  }
  const c: Compiled = {
    showIf,
    sectionShowIf,
    calcs: dependencyOrder(calcs),
    branching: showIf.size > 0 || sectionShowIf.size > 0,
  };
  compiled.set(def, c);
  return c;
}

/** Calculations ordered so each comes after those it reads; a cycle (refused by definition checks) keeps form order. */
function dependencyOrder(calcs: Compiled["calcs"]): Compiled["calcs"] {
  const byName = new Map(calcs.map((c) => [c.field.name, c]));
  const done = new Set<string>();
  const visiting = new Set<string>();
  const out: Compiled["calcs"] = [];
  const visit = (c: Compiled["calcs"][number]) => {
    if (done.has(c.field.name) || visiting.has(c.field.name)) return;
    visiting.add(c.field.name);
    for (const dep of c.expr.fields) {
      const d = byName.get(dep);
      if (d) visit(d);
    }
    visiting.delete(c.field.name);
    done.add(c.field.name);
    out.push(c);
  };
  for (const c of calcs) visit(c);
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Branching and calculations.

/** No value: absent, null, an empty (or blank) string, an empty list. */
function isBlank(v: unknown): boolean {
  return (
    v === undefined || v === null || (typeof v === "string" && v.trim() === "") || (Array.isArray(v) && v.length === 0)
  );
}

function own(o: Record<string, unknown>, key: string): unknown {
  return Object.hasOwn(o, key) ? o[key] : undefined;
}

/** Shift the decimal point of x by d places exactly (via the decimal exponent, not by multiplying). */
function shift(x: number, d: number): number {
  const [m, e] = String(x).split("e");
  return Number(`${m}e${Number(e ?? 0) + d}`);
}

/** Round half away from zero to `decimals` places, as the expressions' round() does ("1.005" -> 1.01). */
function roundHalfAway(x: number, decimals: number): number {
  const abs = Number(Math.abs(x).toPrecision(15)); // drop binary noise: 1.005 stays 1.005
  const r = Math.sign(x) * shift(Math.round(shift(abs, decimals)), -decimals);
  return Number.isFinite(r) ? r : x;
}

function calcValue(expr: CompiledExpression, data: Record<string, unknown>, decimals: number | undefined) {
  let v: number | null;
  try {
    v = evaluateCalculation(expr, data);
  } catch {
    return null;
  }
  if (v === null || !Number.isFinite(v)) return null;
  const r = decimals === undefined ? v : roundHalfAway(v, decimals);
  return Object.is(r, -0) ? 0 : r;
}

function holds(expr: CompiledExpression | undefined, data: Record<string, unknown>): boolean {
  if (!expr) return true;
  try {
    return isTruthy(evaluateExpression(expr, data));
  } catch {
    return false;
  }
}

interface Resolution {
  visible: Set<string>;
  calculated: Record<string, number | null>;
}

/**
 * Which fields are shown and what the shown calculations give, from entered values that are already of the right
 * type. A hidden field holds no value, so hiding one may show or hide others: repeated until nothing changes.
 */
function resolve(def: FormDefinition, entered: Record<string, unknown>): Resolution {
  const c = compile(def);
  const calculate = (visible: Set<string>) => {
    const data: Record<string, unknown> = Object.create(null);
    for (const f of def.fields)
      if (f.type !== "calc" && visible.has(f.name) && Object.hasOwn(entered, f.name)) data[f.name] = entered[f.name];
    const calculated: Record<string, number | null> = {};
    for (const { field, expr } of c.calcs) {
      if (!visible.has(field.name)) continue;
      const v = calcValue(expr, data, field.decimals);
      data[field.name] = v;
      calculated[field.name] = v;
    }
    return { data, calculated };
  };
  let visible = new Set(def.fields.map((f) => f.name));
  if (!c.branching) return { visible, calculated: calculate(visible).calculated };
  for (let round = 0; round <= def.fields.length; round++) {
    const { data, calculated } = calculate(visible);
    const sections = new Map<string, boolean>();
    for (const [name, expr] of c.sectionShowIf) sections.set(name, holds(expr, data));
    const next = new Set<string>();
    for (const f of def.fields)
      if ((f.section === undefined || sections.get(f.section) !== false) && holds(c.showIf.get(f.name), data))
        next.add(f.name);
    if (next.size === visible.size && [...next].every((n) => visible.has(n))) return { visible, calculated };
    visible = next;
  }
  // Conditions that never settle (each round flips a field): the last round's fields are shown.
  return { visible, calculated: calculate(visible).calculated };
}

/** Entered values of the right type for their field (the inputs of branching and calculations). */
function typedValues(def: FormDefinition, values: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = Object.create(null);
  for (const f of def.fields) {
    if (f.type === "calc") continue;
    const v = own(values, f.name);
    if (!isBlank(v) && typeProblem(f, v) === null) out[f.name] = v;
  }
  return out;
}

function asRecord(v: unknown): Record<string, unknown> | null {
  return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
}

/**
 * The calculated fields of an entry, as the server seals them: every shown calculated field, in dependency order,
 * a number (rounded to its `decimals`) or null when an input is empty. The verifier recomputes these from the
 * sealed values and the sealed form definition.
 */
export function computeCalculations(
  def: FormDefinition,
  values: Record<string, unknown>,
): Record<string, number | null> {
  return resolve(def, typedValues(def, asRecord(values) ?? {})).calculated;
}

/** The names of the fields (calculated ones included) shown for these values. */
export function visibleFields(def: FormDefinition, values: Record<string, unknown>): Set<string> {
  return resolve(def, typedValues(def, asRecord(values) ?? {})).visible;
}

// ---------------------------------------------------------------------------------------------------------------
// One field's value.

function withUnit(n: number, unit: string | undefined): string {
  return unit ? `${n} ${unitLabel(unit)}` : String(n);
}

/** The message when a non-blank value is not of the field's type (its limits aside); null when it is. */
function typeProblem(f: FieldDefinition, v: unknown): string | null {
  const L = f.label;
  switch (f.type) {
    case "number":
      if (typeof v !== "number" || !Number.isFinite(v)) return `${L} must be a number`;
      if (f.integer && !Number.isInteger(v)) return `${L} must be a whole number`;
      return null;
    case "text":
      return typeof v === "string" ? null : `${L} must be text`;
    case "date":
      return typeof v === "string" && validDate(v) ? null : `${L} must be a date (YYYY-MM-DD)`;
    case "datetime":
      return typeof v === "string" && validDateTime(v) ? null : `${L} must be a date and time with a time zone`;
    case "choice":
      return typeof v === "string" && f.options.some((o) => o.value === v)
        ? null
        : `${L}: choose one of the listed options`;
    case "multichoice": {
      if (!Array.isArray(v) || !v.every((x) => typeof x === "string" && f.options.some((o) => o.value === x)))
        return `${L}: choose from the listed options`;
      return new Set(v).size === v.length ? null : `${L} lists an option twice`;
    }
    case "boolean":
      return typeof v === "boolean" ? null : `${L} must be yes or no`;
    case "calc":
      return `${L} is calculated; it cannot be entered`;
  }
}

/** Problems of a value of the right type: hard limits, length, storable characters, dates in the future. */
function valueProblem(f: FieldDefinition, v: unknown, opts: CheckOptions): string | null {
  const L = f.label;
  if (f.type === "number") {
    const n = v as number;
    const { min, max } = f;
    if ((min !== undefined && n < min) || (max !== undefined && n > max)) {
      if (min !== undefined && max !== undefined) return `${L} must be between ${min} and ${withUnit(max, f.unit)}`;
      if (min !== undefined) return `${L} must be at least ${withUnit(min, f.unit)}`;
      return `${L} must be at most ${withUnit(max as number, f.unit)}`;
    }
  }
  if (f.type === "text") {
    const s = v as string;
    const limit = f.maxLength ?? 10_000;
    if (s.length > limit) return `${L} must be at most ${limit} characters (it has ${s.length})`;
    const bad = xmlUnsafeCharacter(s);
    if (bad) return `${L} contains a character that cannot be stored (${bad})`;
  }
  if (f.type === "date" && f.notFuture && (v as string) > opts.today) return `${L} cannot be in the future`;
  if (f.type === "datetime" && f.notFuture && Date.parse(v as string) > (opts.now ?? Date.now()))
    return `${L} cannot be in the future`;
  return null;
}

/** The confirmation asked when a number lies outside the soft limits; null when inside (or none set). */
function softLimitProblem(f: FieldDefinition, v: unknown): string | null {
  if (f.type !== "number") return null;
  const n = v as number;
  const { softMin: lo, softMax: hi } = f;
  if (!((lo !== undefined && n < lo) || (hi !== undefined && n > hi))) return null;
  const range =
    lo !== undefined && hi !== undefined
      ? `outside the expected range ${lo}–${withUnit(hi, f.unit)}`
      : lo !== undefined
        ? `below the expected minimum ${withUnit(lo, f.unit)}`
        : `above the expected maximum ${withUnit(hi as number, f.unit)}`;
  return `${f.label} is ${range}: check it and confirm`;
}

function formName(def: FormDefinition): string {
  return `${def.title} (${def.code} v${def.version})`;
}

// ---------------------------------------------------------------------------------------------------------------
// The entry.

/**
 * Check one entry against its form: every problem at once, in form order (fields the form does not have last).
 * Hidden fields are not required and what was sent for them is dropped (listed in `hidden`); calculated fields are
 * computed here, never taken from the input. Never throws on any input.
 */
export function checkEntry(def: FormDefinition, input: EntryInput, opts: CheckOptions): CheckedEntry {
  const problems: EntryProblem[] = [];
  const whole = (message: string) => problems.push({ field: "", label: def.title, message, kind: "error" });
  const inputRecord = asRecord(input) ?? {};
  const valuesIn = asRecord(own(inputRecord, "values"));
  if (!valuesIn) whole(`The entry of form ${formName(def)} must give its values by field name`);
  const values = valuesIn ?? {};
  const missingRaw = own(inputRecord, "missing");
  const missingIn = isBlank(missingRaw) ? {} : asRecord(missingRaw);
  if (!missingIn) whole(`The missing-data codes of form ${formName(def)} must be given by field name`);
  const missing = missingIn ?? {};
  const confirmedRaw = own(inputRecord, "confirmed");
  const confirmed = new Set(Array.isArray(confirmedRaw) ? confirmedRaw.filter((x) => typeof x === "string") : []);

  const { visible, calculated } = resolve(def, typedValues(def, values));
  const out: CheckedEntry = {
    ok: false,
    values: {},
    missing: {},
    calculated,
    hidden: [],
    outsideSoftLimits: [],
    problems,
  };

  for (const f of def.fields) {
    const v = own(values, f.name);
    const m = own(missing, f.name);
    const hasValue = !isBlank(v);
    const hasMissing = m !== undefined && m !== null;
    const problem = (message: string, kind: EntryProblem["kind"] = "error") =>
      problems.push({ field: f.name, label: f.label, message, kind });
    if (!visible.has(f.name)) {
      if (hasValue || hasMissing) out.hidden.push(f.name);
      continue;
    }
    if (f.type === "calc") {
      if (hasValue || hasMissing) problem(`${f.label} is calculated; it cannot be entered`);
      continue;
    }
    if (hasValue && hasMissing) {
      problem(`${f.label} has both a value and a missing-data code`);
      continue;
    }
    if (hasMissing) {
      const entry = asRecord(m);
      const code = entry ? own(entry, "code") : undefined;
      const reason = entry ? own(entry, "reason") : undefined;
      if (typeof code !== "string" || !(MISSING_CODES as readonly string[]).includes(code)) {
        problem(`${f.label}: choose a missing-data code from the list`);
        continue;
      }
      if (!f.missingCodes?.includes(code as MissingCode)) {
        problem(`${f.label} does not accept the missing-data code ${code}`);
        continue;
      }
      if (typeof reason !== "string" || reason.trim() === "") {
        problem(`${f.label}: give a reason for the missing value`);
        continue;
      }
      if (reason.length > MISSING_REASON_MAX) {
        problem(`${f.label}: the reason for the missing value must be at most ${MISSING_REASON_MAX} characters`);
        continue;
      }
      const bad = xmlUnsafeCharacter(reason);
      if (bad) {
        problem(`${f.label}: the reason for the missing value contains a character that cannot be stored (${bad})`);
        continue;
      }
      out.missing[f.name] = { code: code as MissingCode, reason: reason.trim() };
      continue;
    }
    if (!hasValue) {
      if (isRequired(f)) problem(`${f.label} is required`);
      continue;
    }
    const wrong = typeProblem(f, v) ?? valueProblem(f, v, opts);
    if (wrong) {
      problem(wrong);
      continue;
    }
    const soft = softLimitProblem(f, v);
    if (soft) {
      if (confirmed.has(f.name)) out.outsideSoftLimits.push(f.name);
      else problem(soft, "confirm");
    }
    out.values[f.name] = v;
  }

  const known = new Set(def.fields.map((f) => f.name));
  const unknown = new Set([...Object.keys(values), ...Object.keys(missing)].filter((k) => !known.has(k)));
  for (const k of unknown)
    problems.push({ field: k, label: k, message: `${k} is not a field of form ${formName(def)}`, kind: "error" });

  out.ok = problems.length === 0;
  return out;
}
