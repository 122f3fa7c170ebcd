/**
 * What the CSV and ODM readers share (issue 18, ADR 0036): matching the file's names of forms, visits and fields
 * to our codes (case-insensitively, after taking off the exporters' prefixes and suffixes, then the --map file), and
 * turning one row's texts into the values of a form exactly as the entry form turns what a person typed into
 * values (app/records/form-values.ts), checked as entry checks them (anchoring/forms/check-entry.ts).
 */
import { checkEntry } from "../../anchoring/forms/check-entry.ts";
import { type FieldDefinition, type FormDefinition, MISSING_CODES } from "../../anchoring/forms/definition.ts";
import { entryFromForm, isTimeZone, todayIn } from "../records/form-values.ts";
import type { ImportMap, ImportProblem, ReadImportInput } from "./import-rows.ts";

export type ImportForm = ReadImportInput["forms"][number];

/** The map's entry for a name, its keys compared case-insensitively. */
function mapped(table: Record<string, string> | undefined, ...names: string[]): string | undefined {
  if (!table) return undefined;
  for (const name of names) {
    const hit = Object.entries(table).find(([k]) => k.toLowerCase() === name.toLowerCase());
    if (hit) return hit[1];
  }
  return undefined;
}

/**
 * Our form for a name in the file: the --map file first, then the code itself case-insensitively, after taking off
 * REDCap's `Form.` and OpenClinica's `F_` prefix and `_V1`-style version suffix (`Form.vitals` -> VITALS,
 * `F_VITALS_V2` -> VITALS).
 */
export function matchForm(name: string, forms: ImportForm[], map: ImportMap | null): ImportForm | null {
  const byCode = (code: string) => forms.find((f) => f.code.toUpperCase() === code.toUpperCase()) ?? null;
  const viaMap = mapped(map?.forms, name);
  if (viaMap !== undefined) return byCode(viaMap);
  const bare = name.replace(/^Form\./i, "");
  const candidates = [bare, bare.replace(/^F_/i, ""), bare.replace(/^F_/i, "").replace(/_V\d+$/i, "")];
  for (const c of candidates) {
    const f = byCode(c);
    if (f) return f;
  }
  return null;
}

/**
 * Our visit for an event in the file: the --map file first, then the code case-insensitively after taking off
 * REDCap's `Event.` prefix and `_arm_N` suffix and OpenClinica's `SE_` prefix (`Event.screening_arm_1`,
 * `screening_arm_1`, `SE_SCREENING` -> SCREENING). A repeat (StudyEventRepeatKey > 1) is looked up as `NAME.N` in
 * the map, then as the visit `NAME_N`.
 */
export function matchVisit(name: string, visits: string[], map: ImportMap | null, repeat = 1): string | null {
  const byCode = (code: string) => visits.find((v) => v.toUpperCase() === code.toUpperCase()) ?? null;
  const bare = name.replace(/^Event\./i, "");
  const stems = [...new Set([bare, bare.replace(/_arm_\d+$/i, ""), bare.replace(/^SE_/i, "")])];
  if (repeat > 1) {
    const viaMap = mapped(map?.visits, `${name}.${repeat}`, ...stems.map((s) => `${s}.${repeat}`));
    if (viaMap !== undefined) return byCode(viaMap);
    for (const s of stems) {
      const v = byCode(`${s}_${repeat}`);
      if (v) return v;
    }
    return null;
  }
  const viaMap = mapped(map?.visits, name, ...stems);
  if (viaMap !== undefined) return byCode(viaMap);
  for (const s of stems) {
    const v = byCode(s);
    if (v) return v;
  }
  return null;
}

/**
 * Our field for a column or ItemOID of a form: the --map file (`fields.FORM`) first, then the field's name
 * case-insensitively, also after a `form.` prefix (`vitals.sbp` -> sbp). Null when nothing matches.
 */
export function matchField(name: string, def: FormDefinition, map: ImportMap | null): FieldDefinition | null {
  const table = map?.fields
    ? Object.entries(map.fields).find(([k]) => k.toUpperCase() === def.code.toUpperCase())?.[1]
    : undefined;
  const byName = (n: string) => def.fields.find((f) => f.name === n.toLowerCase()) ?? null;
  const viaMap = mapped(table, name);
  if (viaMap !== undefined) return byName(viaMap);
  return byName(name) ?? byName(name.slice(name.lastIndexOf(".") + 1));
}

/** A REDCap checkbox column or item (`symptoms___headache`): the field and the option it ticks, else null. */
export function matchCheckbox(
  name: string,
  def: FormDefinition,
  map: ImportMap | null,
): { field: FieldDefinition; option: string } | null {
  const at = name.indexOf("___");
  if (at <= 0) return null;
  const field = matchField(name.slice(0, at), def, map);
  if (field?.type !== "multichoice") return null;
  const code = name.slice(at + 3).toLowerCase();
  // REDCap writes a negative code's minus as an underscore in the column name.
  const option = field.options.find((o) =>
    [o.value.toLowerCase(), o.value.toLowerCase().replace(/^-/, "_")].includes(code),
  );
  return option ? { field, option: option.value } : null;
}

/** REDCap's bookkeeping columns and items, read elsewhere or not at all (never data of a field). */
export function bookkeeping(name: string, def: FormDefinition): string | null {
  const n = name.toLowerCase();
  if (n === `${def.code.toLowerCase()}_complete` || n.endsWith("_complete"))
    return "REDCap's form status; ours comes from the values and signatures";
  if (n.endsWith("_timestamp")) return "REDCap's survey time stamp; not carried over";
  if (["redcap_data_access_group", "redcap_survey_identifier", "redcap_repeat_instrument"].includes(n))
    return "REDCap bookkeeping; not carried over";
  return null;
}

const MISSING = new Set<string>(MISSING_CODES);
const YES = new Set(["1", "true", "yes", "y", "checked"]);
const NO = new Set(["0", "false", "no", "n", "unchecked"]);
const LOCAL_DATETIME = /^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}(?::\d{2})?)$/;

/** One cell (or ODM item) of a row: the field it fills, where it came from, its text. */
export interface Cell {
  field: FieldDefinition;
  /** The CSV column or ItemOID, for problems. */
  column: string;
  /** The row the cell is on (ODM: its ItemGroupData), for problems. */
  row: number;
  text: string;
  /** A REDCap checkbox: the option this cell ticks when its text is 1. */
  option?: string;
}

export interface ConvertOptions {
  /** The IANA zone in which a date and time without an offset is read (checked: see conversionOptions). */
  timeZone: string;
  /** The date a `notFuture` date may not pass: today in the time zone. */
  today: string;
  /** Why a missing-data code given in the file is missing (the file gives none). */
  missingReason: string;
}

/** The options of every row of one file, worked out once (a zone check and today cost a millisecond each). */
export function conversionOptions(input: ReadImportInput): ConvertOptions {
  const timeZone = input.timeZone && isTimeZone(input.timeZone) ? input.timeZone : "UTC";
  return { timeZone, today: todayIn(timeZone), missingReason: `Given as a missing-data code in ${input.fileName}` };
}

/**
 * The values of one row of a form from its cells' texts, converted as entry converts a form's text and checked as
 * entry checks them (types, choices, dates, hard limits, length; soft limits are left to the writer, which confirms
 * them and opens their queries). A value that fails is left out and is a problem at its row and column in the words
 * entry uses. A cell whose whole text is a missing-data code the field accepts (REDCap's missing codes) becomes
 * that code with `missingReason`. Empty cells are left out. Required fields are not checked here (the writer checks
 * the whole entry).
 */
export function convertCells(
  def: FormDefinition,
  cells: Cell[],
  opts: ConvertOptions,
): {
  values: Record<string, unknown>;
  missing: Record<string, { code: string; reason: string }>;
  problems: ImportProblem[];
} {
  const post = new Map<string, string[]>();
  const put = (key: string, v: string) => post.set(key, [...(post.get(key) ?? []), v]);
  const where = new Map<string, { row: number; column: string }>();
  const problems: ImportProblem[] = [];
  const missing: Record<string, { code: string; reason: string }> = {};
  const failed = new Set<string>();
  const fail = (c: Cell, message: string) => {
    problems.push({ row: c.row, column: c.column, message });
    failed.add(c.field.name);
  };
  for (const c of cells) {
    const text = c.text.trim();
    if (text === "") continue;
    const f = c.field;
    if (!where.has(f.name) || c.option === undefined) where.set(f.name, { row: c.row, column: c.column });
    if (MISSING.has(text.toUpperCase()) && f.type !== "calc" && f.missingCodes?.includes(text.toUpperCase() as never)) {
      missing[f.name] = { code: text.toUpperCase(), reason: opts.missingReason };
      continue;
    }
    if (c.option !== undefined) {
      if (YES.has(text.toLowerCase())) put(`f_${f.name}`, c.option);
      else if (!NO.has(text.toLowerCase())) fail(c, `${f.label}: choose from the listed options`);
      continue;
    }
    switch (f.type) {
      case "boolean":
        if (YES.has(text.toLowerCase())) put(`f_${f.name}`, "true");
        else if (NO.has(text.toLowerCase())) put(`f_${f.name}`, "false");
        else fail(c, `${f.label} must be yes or no`);
        break;
      case "choice": {
        const o =
          f.options.find((x) => x.value === text) ??
          f.options.find((x) => x.value.toLowerCase() === text.toLowerCase());
        put(`f_${f.name}`, o ? o.value : text);
        break;
      }
      case "multichoice":
        for (const part of text
          .split(/[|,]/)
          .map((s) => s.trim())
          .filter(Boolean)) {
          const o = f.options.find((x) => x.value.toLowerCase() === part.toLowerCase());
          put(`f_${f.name}`, o ? o.value : part);
        }
        break;
      case "datetime": {
        const m = LOCAL_DATETIME.exec(text);
        if (m) {
          put(`f_${f.name}`, m[1]);
          put(`ft_${f.name}`, m[2]);
        } else put(`f_${f.name}`, text);
        break;
      }
      default:
        put(`f_${f.name}`, text);
    }
  }
  const zone = opts.timeZone;
  const entry = entryFromForm(
    def,
    { get: (k) => post.get(k)?.[0] ?? null, getAll: (k) => post.get(k) ?? [] },
    {
      timeZone: zone,
      locale: "en",
    },
  );
  const at = (name: string) => where.get(name) ?? { row: cells[0]?.row ?? 0, column: name };
  for (const p of entry.problems) {
    const name = p.field.replace(/^data\./, "");
    if (failed.has(name)) continue;
    failed.add(name);
    problems.push({ ...at(name), message: p.message });
  }
  const values: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(entry.data)) if (!failed.has(k)) values[k] = v;
  const checked = checkEntry(def, { values, missing, confirmed: def.fields.map((f) => f.name) }, { today: opts.today });
  for (const p of checked.problems) {
    if (p.kind !== "error" || p.field === "" || failed.has(p.field)) continue;
    if (!Object.hasOwn(values, p.field) && !Object.hasOwn(missing, p.field)) continue; // "is required": the writer's
    failed.add(p.field);
    problems.push({ ...at(p.field), message: p.message });
  }
  for (const name of failed) {
    delete values[name];
    delete missing[name];
  }
  return { values, missing, problems };
}
