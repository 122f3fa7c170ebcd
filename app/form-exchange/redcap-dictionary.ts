/**
 * REDCap data dictionaries (the 18-column CSV REDCap's Online Designer downloads and uploads) to and from form
 * definitions. The mapping, and what each side cannot carry, is ADR 0029
 * (docs/decisions/0029-redcap-dictionary-mapping.md). Every problem of a dictionary is reported at once, each with
 * its CSV line and column.
 */
import { parse } from "csv-parse/sync";
import { FormDefinitionSchema, type FieldDefinition, type FormDefinition } from "../../anchoring/forms/definition.ts";
import { compileExpression } from "../../anchoring/forms/expression.ts";
import { REDCAP_COLUMNS } from "./redcap-columns.ts";

export { REDCAP_COLUMNS };

type Column = (typeof REDCAP_COLUMNS)[number];

const VARIABLE = REDCAP_COLUMNS[0];
const FORM = REDCAP_COLUMNS[1];
const SECTION = REDCAP_COLUMNS[2];
const TYPE = REDCAP_COLUMNS[3];
const LABEL = REDCAP_COLUMNS[4];
const CHOICES = REDCAP_COLUMNS[5];
const NOTE = REDCAP_COLUMNS[6];
const VALIDATION = REDCAP_COLUMNS[7];
const MIN = REDCAP_COLUMNS[8];
const MAX = REDCAP_COLUMNS[9];
const IDENTIFIER = REDCAP_COLUMNS[10];
const BRANCHING = REDCAP_COLUMNS[11];
const REQUIRED = REDCAP_COLUMNS[12];

export interface DictionaryProblem {
  /** The line of the CSV file the row starts on (the header is line 1). */
  row: number;
  column?: string;
  message: string;
}

type Row = { line: number; cell: (c: Column) => string };

const NAME = /^[a-z][a-z0-9_]{0,63}$/;
const YES = (s: string) => s.trim().toLowerCase() === "y";

/** Labels may hold HTML: tags are dropped, the common entities decoded, runs of white space made one space. */
export function plainText(s: string): string {
  return s
    .replace(/<\/?[a-zA-Z][^>]*>/g, " ")
    .replace(/&nbsp;/g, " ")
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&amp;/g, "&")
    .replace(/\s+/g, " ")
    .trim();
}

/** A form's title from its REDCap instrument name: "adverse_events" -> "Adverse events". */
function titleOf(formName: string): string {
  const words = formName.replace(/_+/g, " ").trim();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/** "1, Male | 2, Female" as options; every malformed choice is a problem. */
function parseChoices(text: string, problem: (message: string) => void) {
  const options: { value: string; label: string }[] = [];
  if (!text.trim()) {
    problem("list the choices, e.g. 1, Yes | 0, No");
    return options;
  }
  for (const part of text.split("|")) {
    const comma = part.indexOf(",");
    if (comma < 0) {
      problem(`the choice "${part.trim()}" has no code: write it as CODE, Label`);
      continue;
    }
    const value = part.slice(0, comma).trim();
    const label = plainText(part.slice(comma + 1));
    if (!value || value.length > 64 || !/^[A-Za-z0-9_.-]+$/.test(value))
      problem(`the choice code "${value}" must be 1 to 64 letters, digits, _ . or -`);
    else if (!label) problem(`the choice ${value} has no label`);
    else options.push({ value, label });
  }
  return options;
}

function parseLimit(text: string, problem: (message: string) => void): number | undefined {
  const s = text.trim();
  if (!s) return undefined;
  const n = Number(s);
  if (!Number.isFinite(n) || !/^-?\d+(\.\d+)?$/.test(s)) {
    problem(`"${s}" is not a number`);
    return undefined;
  }
  return n;
}

/** Check an expression by compiling it; its problem names the column. */
function checkedExpression(source: string, problem: (message: string) => void): string | undefined {
  const s = source.replace(/\s+/g, " ").trim();
  if (!s) return undefined;
  try {
    compileExpression(s);
    return s;
  } catch (err) {
    problem(`cannot be used: ${(err as Error).message}`);
    return undefined;
  }
}

const DATE_TYPES = new Set(["date_ymd", "date_mdy", "date_dmy"]);
const DATETIME_TYPES = new Set([
  "datetime_ymd",
  "datetime_mdy",
  "datetime_dmy",
  "datetime_seconds_ymd",
  "datetime_seconds_mdy",
  "datetime_seconds_dmy",
]);
const INTEGER_TYPES = new Set(["integer", "int"]);
const NUMBER_TYPES = /^(number|float)(_\d+dp)?(_comma_decimal)?$/;

interface Built {
  field?: FieldDefinition;
  /** A section that starts at this row (from its Section Header, or a descriptive field). */
  section?: { name: string; title: string };
}

/** One row as a field (or a section): every problem of the row reported through `problem`. */
function rowToField(row: Row, problem: (column: Column | undefined, message: string) => void): Built {
  const name = row.cell(VARIABLE).trim();
  const type = row.cell(TYPE).trim().toLowerCase();
  const label = plainText(row.cell(LABEL));
  const header = plainText(row.cell(SECTION));
  const validation = row.cell(VALIDATION).trim().toLowerCase();
  const p = (column: Column) => (message: string) => problem(column, message);
  if (!NAME.test(name)) {
    problem(VARIABLE, `"${name}" is not a variable name (lower-case letters, digits and _, starting with a letter)`);
    return {};
  }
  if (type === "descriptive") {
    if (row.cell(BRANCHING).trim())
      problem(
        BRANCHING,
        "branching logic on a descriptive field is not supported (REDCap would hide only its text): " +
          "put the text in a Section Header or a Field Note instead",
      );
    const title = header ? `${header} — ${label}` : label;
    if (!title) problem(LABEL, "a descriptive field needs its text");
    else if (title.length > 200) problem(LABEL, `the text is ${title.length} characters long; at most 200 fit`);
    return title && title.length <= 200 ? { section: { name, title } } : {};
  }
  if (!label) problem(LABEL, "the field has no label");
  else if (label.length > 200) problem(LABEL, `the label is ${label.length} characters long; at most 200 fit`);
  const base: Record<string, unknown> = { name, label };
  const note = plainText(row.cell(NOTE));
  if (note) {
    if (note.length > 500) problem(NOTE, `the note is ${note.length} characters long; at most 500 fit`);
    else base.help = note;
  }
  const showIf = checkedExpression(row.cell(BRANCHING), p(BRANCHING));
  if (showIf) base.showIf = showIf;
  const identifier = YES(row.cell(IDENTIFIER));
  const required = YES(row.cell(REQUIRED));
  let field: Record<string, unknown> | undefined;
  const noLimits = () => {
    for (const c of [MIN, MAX] as const)
      if (row.cell(c).trim()) problem(c, `a ${type} field has no limits in TrialSeal: leave ${c} empty`);
  };
  switch (type) {
    case "text": {
      if (DATE_TYPES.has(validation) || DATETIME_TYPES.has(validation)) {
        field = { ...base, type: DATE_TYPES.has(validation) ? "date" : "datetime" };
        if (row.cell(MIN).trim())
          problem(MIN, "a date has no lower limit in TrialSeal: leave Text Validation Min empty");
        const max = row.cell(MAX).trim().toLowerCase();
        if (max === "today" || max === "now") field.notFuture = true;
        else if (max) problem(MAX, 'a date\'s only upper limit in TrialSeal is "today" (no date in the future)');
      } else if (INTEGER_TYPES.has(validation) || NUMBER_TYPES.test(validation)) {
        field = { ...base, type: "number" };
        if (INTEGER_TYPES.has(validation)) field.integer = true;
        // REDCap's limits are soft: it warns and keeps the value (ADR 0029).
        const softMin = parseLimit(row.cell(MIN), p(MIN));
        const softMax = parseLimit(row.cell(MAX), p(MAX));
        if (softMin !== undefined) field.softMin = softMin;
        if (softMax !== undefined) field.softMax = softMax;
      } else {
        field = { ...base, type: "text" };
        noLimits();
      }
      break;
    }
    case "notes":
      field = { ...base, type: "text", class: "free_text" };
      noLimits();
      break;
    case "dropdown":
    case "radio":
    case "checkbox":
      field = {
        ...base,
        type: type === "checkbox" ? "multichoice" : "choice",
        options: parseChoices(row.cell(CHOICES), p(CHOICES)),
      };
      break;
    case "yesno":
      // A choice coded 1/0, as REDCap stores it: branching such as [x] = '1' keeps its meaning (ADR 0029).
      field = {
        ...base,
        type: "choice",
        options: [
          { value: "1", label: "Yes" },
          { value: "0", label: "No" },
        ],
      };
      break;
    case "truefalse":
      field = { ...base, type: "boolean" };
      break;
    case "slider": {
      const labels = row
        .cell(CHOICES)
        .split("|")
        .map((s) => plainText(s))
        .filter(Boolean);
      field = { ...base, type: "number", integer: true, min: 0, max: 100 };
      if (labels.length && !base.help) field.help = `0 = ${labels[0]}, 100 = ${labels[labels.length - 1]}`;
      break;
    }
    case "calc": {
      const { showIf: s, ...rest } = base;
      const expression = checkedExpression(row.cell(CHOICES), p(CHOICES));
      if (!row.cell(CHOICES).trim()) problem(CHOICES, "a calculated field needs its calculation");
      field = { ...rest, ...(s ? { showIf: s } : {}), type: "calc", expression: expression ?? "0" };
      if (identifier) problem(IDENTIFIER, "a calculated field cannot be an identifier");
      return { field: field as FieldDefinition, section: header ? { name, title: header } : undefined };
    }
    case "file":
    case "signature":
    case "sql":
      problem(TYPE, `${type} fields cannot be imported: TrialSeal has no ${type} field; remove the row`);
      return {};
    default:
      problem(TYPE, `"${row.cell(TYPE).trim()}" is not a field type TrialSeal can import`);
      return {};
  }
  if (identifier) field.class = "identifier";
  if (required) field.required = true;
  return { field: field as FieldDefinition, section: header ? { name, title: header } : undefined };
}

/** The column of a definition's key, to name where a problem found by the definition's own checks lies. */
const KEY_COLUMN: Record<string, Column> = {
  name: VARIABLE,
  label: LABEL,
  help: NOTE,
  showIf: BRANCHING,
  options: CHOICES,
  expression: CHOICES,
  softMin: MIN,
  softMax: MAX,
  min: MIN,
  max: MAX,
  class: IDENTIFIER,
  required: REQUIRED,
  section: SECTION,
  title: SECTION,
};

/** A cell as written before `cell` defused it (see below). */
const undefused = (s: string) => (/^'([=+@\t\r]|-(?!\d))/.test(s) ? s.slice(1) : s);

/** The rows of a CSV text, each with the line it starts on; a broken file is one problem. */
function readRows(csv: string): { rows: { line: number; cells: string[] }[]; problem?: DictionaryProblem } {
  try {
    const records = parse(csv, {
      bom: true,
      info: true,
      relax_column_count: true,
      skip_empty_lines: true,
    }) as unknown as { record: string[]; info: { lines: number } }[];
    return {
      rows: records.map(({ record, info }) => ({
        // info.lines is the line the record ends on; a quoted cell may span lines.
        line: info.lines - record.reduce((n, c) => n + (c.match(/\n/g)?.length ?? 0), 0),
        cells: record.map(undefused),
      })),
    };
  } catch (err) {
    const e = err as { lines?: number; message: string };
    return { rows: [], problem: { row: e.lines ?? 1, message: `the file is not readable CSV: ${e.message}` } };
  }
}

/**
 * Read a REDCap data dictionary: each instrument (Form Name) becomes a form, code its name in capitals; the first
 * row (the record identifier, e.g. record_id) is the subject code, not a field. `repeating` names instruments
 * (by REDCap name or form code) to import as repeating forms: REDCap keeps that as a project setting.
 */
export function redcapDictionaryToForms(
  csv: string,
  opts: { visits: string[]; repeating?: string[] },
): { forms: FormDefinition[]; problems: DictionaryProblem[] } {
  const problems: DictionaryProblem[] = [];
  const { rows, problem } = readRows(csv);
  if (problem) return { forms: [], problems: [problem] };
  if (rows.length === 0) return { forms: [], problems: [{ row: 1, message: "the file is empty" }] };
  const header = rows[0].cells.map((c) => c.trim());
  const sameHeader =
    header.length === REDCAP_COLUMNS.length &&
    header.every((c, i) => c.toLowerCase() === REDCAP_COLUMNS[i].toLowerCase());
  if (!sameHeader)
    return {
      forms: [],
      problems: [
        {
          row: rows[0].line,
          message:
            `the first row is not REDCap's data dictionary header (${REDCAP_COLUMNS.length} columns, ` +
            `"${REDCAP_COLUMNS[0]}" to "${REDCAP_COLUMNS[REDCAP_COLUMNS.length - 1]}")`,
        },
      ],
    };
  const data: Row[] = [];
  for (const r of rows.slice(1)) {
    if (r.cells.length !== REDCAP_COLUMNS.length) {
      problems.push({
        row: r.line,
        message: `the row has ${r.cells.length} columns; a data dictionary row has ${REDCAP_COLUMNS.length}`,
      });
      continue;
    }
    data.push({ line: r.line, cell: (c) => r.cells[REDCAP_COLUMNS.indexOf(c)] ?? "" });
  }
  if (data.length === 0 && problems.length === 0)
    problems.push({ row: rows[0].line, message: "the dictionary has no fields" });

  const visits = opts.visits;
  if (visits.length === 0 || visits.some((v) => !/^[A-Z0-9][A-Z0-9_-]{0,31}$/.test(v)))
    problems.push({ row: 1, message: "give the visits as codes of capital letters, digits, - or _ (e.g. SCREENING)" });

  // The record identifier: the first row, a text field; the subject code, never a field of a form.
  const [first, ...fieldRows] = data;
  if (first && first.cell(TYPE).trim().toLowerCase() !== "text")
    problems.push({ row: first.line, column: TYPE, message: "the first field (the record identifier) must be text" });

  type Draft = {
    formName: string;
    line: number;
    fields: { field: FieldDefinition; line: number }[];
    sections: { section: { name: string; title: string }; line: number }[];
    current?: string;
  };
  const drafts = new Map<string, Draft>();
  let previous: string | undefined;
  for (const row of fieldRows) {
    const formName = row.cell(FORM).trim();
    if (!NAME.test(formName)) {
      problems.push({ row: row.line, column: FORM, message: `"${formName}" is not an instrument name` });
      continue;
    }
    let draft = drafts.get(formName);
    if (draft && previous !== formName)
      problems.push({
        row: row.line,
        column: FORM,
        message: `the rows of ${formName} must be together: REDCap keeps an instrument's fields in one block`,
      });
    if (!draft) {
      draft = { formName, line: row.line, fields: [], sections: [] };
      drafts.set(formName, draft);
    }
    previous = formName;
    const built = rowToField(row, (column, message) => problems.push({ row: row.line, column, message }));
    if (built.section) {
      draft.sections.push({ section: built.section, line: row.line });
      draft.current = built.section.name;
    }
    if (built.field) {
      if (draft.current) built.field = { ...built.field, section: draft.current };
      draft.fields.push({ field: built.field, line: row.line });
    }
  }
  if (first && !drafts.has(first.cell(FORM).trim()) && NAME.test(first.cell(FORM).trim()))
    problems.push({
      row: first.line,
      column: FORM,
      message: `${first.cell(FORM).trim()} has no field but the record identifier`,
    });

  const repeating = new Set((opts.repeating ?? []).map((r) => r.trim().toLowerCase()));
  for (const r of repeating)
    if (![...drafts.keys()].some((n) => n === r || n.toUpperCase() === r.toUpperCase()))
      problems.push({ row: 1, column: FORM, message: `no instrument named ${r} to mark repeating` });

  const forms: FormDefinition[] = [];
  for (const d of drafts.values()) {
    const code = d.formName.toUpperCase();
    if (code.length > 32) {
      problems.push({ row: d.line, column: FORM, message: `the form code ${code} is longer than 32 characters` });
      continue;
    }
    if (d.fields.length === 0) {
      problems.push({ row: d.line, column: FORM, message: `${d.formName} has no field TrialSeal can import` });
      continue;
    }
    const candidate: Record<string, unknown> = {
      code,
      title: titleOf(d.formName),
      version: 1,
      visits,
      ...(repeating.has(d.formName) ? { repeating: true } : {}),
      ...(d.sections.length ? { sections: d.sections.map((s) => s.section) } : {}),
      fields: d.fields.map((f) => f.field),
    };
    const parsed = FormDefinitionSchema.safeParse(candidate);
    if (parsed.success) {
      forms.push(parsed.data);
      continue;
    }
    for (const issue of parsed.error.issues) {
      const [list, index, key] = issue.path;
      const source =
        list === "fields" && typeof index === "number"
          ? d.fields[index]?.line
          : list === "sections" && typeof index === "number"
            ? d.sections[index]?.line
            : undefined;
      const column = typeof key === "string" ? KEY_COLUMN[key] : list === "visits" ? undefined : FORM;
      problems.push({ row: source ?? d.line, ...(column ? { column } : {}), message: issue.message });
    }
  }
  problems.sort((a, b) => a.row - b.row);
  return { forms: problems.length ? [] : forms, problems };
}

// ---------------------------------------------------------------------------------------------------------------
// Writing a dictionary

/**
 * A cell: quoted, and defused against spreadsheet formulas (a leading = + @ tab or CR, or - not before a digit,
 * gets a '), which `redcapDictionaryToForms` takes off again. A negative code or limit ("-1") stays as it is.
 */
function cell(s: string): string {
  const v = /^[=+@\t\r]/.test(s) || /^-(?!\d)/.test(s) ? `'${s}` : s;
  return `"${v.replace(/"/g, '""')}"`;
}

/** REDCap's instrument name of a form code: "AE-LOG" -> "ae_log". */
export function instrumentName(code: string): string {
  return code.toLowerCase().replace(/[^a-z0-9_]/g, "_");
}

const YES_NO = (f: FieldDefinition) =>
  f.type === "choice" &&
  f.options.length === 2 &&
  f.options[0].value === "1" &&
  f.options[0].label === "Yes" &&
  f.options[1].value === "0" &&
  f.options[1].label === "No";

function choicesText(options: { value: string; label: string }[]): string {
  return options.map((o) => `${o.value}, ${o.label}`).join(" | ");
}

function andExpressions(a: string | undefined, b: string | undefined): string {
  if (a && b) return `(${a}) and (${b})`;
  return a ?? b ?? "";
}

/** One field as its 18 cells. */
function fieldCells(
  def: FormDefinition,
  f: FieldDefinition,
  sectionHeader: string,
  sectionShowIf: string | undefined,
): string[] {
  const c: Record<Column, string> = Object.fromEntries(REDCAP_COLUMNS.map((k) => [k, ""])) as Record<Column, string>;
  c[VARIABLE] = f.name;
  c[FORM] = instrumentName(def.code);
  c[SECTION] = sectionHeader;
  c[LABEL] = f.label;
  c[NOTE] = f.help ?? "";
  c[BRANCHING] = andExpressions(sectionShowIf, f.showIf);
  if (f.type !== "calc") {
    c[IDENTIFIER] = f.class === "identifier" ? "y" : "";
    c[REQUIRED] = f.required ? "y" : "";
  }
  const limit = (n: number | undefined) => (n === undefined ? "" : String(n));
  switch (f.type) {
    case "text":
      c[TYPE] = f.class === "free_text" ? "notes" : "text";
      break;
    case "number":
      if (f.integer && f.min === 0 && f.max === 100 && f.softMin === undefined && f.softMax === undefined) {
        c[TYPE] = "slider";
        c[VALIDATION] = "number";
        break;
      }
      c[TYPE] = "text";
      c[VALIDATION] = f.integer ? "integer" : "number";
      // REDCap has soft limits only: a hard limit is written where no soft one is (ADR 0029).
      c[MIN] = limit(f.softMin ?? f.min);
      c[MAX] = limit(f.softMax ?? f.max);
      break;
    case "date":
    case "datetime":
      c[TYPE] = "text";
      c[VALIDATION] = f.type === "date" ? "date_ymd" : "datetime_ymd";
      c[MAX] = f.notFuture ? "today" : "";
      break;
    case "choice":
      c[TYPE] = YES_NO(f) ? "yesno" : "radio";
      c[CHOICES] = YES_NO(f) ? "" : choicesText(f.options);
      break;
    case "multichoice":
      c[TYPE] = "checkbox";
      c[CHOICES] = choicesText(f.options);
      break;
    case "boolean":
      c[TYPE] = "truefalse";
      break;
    case "calc":
      c[TYPE] = "calc";
      c[CHOICES] = f.decimals === undefined ? f.expression : `round(${f.expression},${f.decimals})`;
      break;
  }
  return REDCAP_COLUMNS.map((k) => c[k]);
}

function descriptiveCells(def: FormDefinition, name: string, title: string): string[] {
  const cells: string[] = REDCAP_COLUMNS.map(() => "");
  cells[0] = name;
  cells[1] = instrumentName(def.code);
  cells[3] = "descriptive";
  cells[4] = title;
  return cells;
}

/**
 * Form definitions as a REDCap data dictionary (the same 18 columns and header row), a record_id row first. What
 * REDCap cannot hold is said in ADR 0029: units, missing-data codes, hard limits beside soft ones, a text's
 * maximum length, repeating (a project setting in REDCap).
 */
export function formsToRedcapDictionary(defs: FormDefinition[]): string {
  const lines: string[][] = [REDCAP_COLUMNS.slice()];
  if (defs.length) {
    const first = REDCAP_COLUMNS.map(() => "");
    first[0] = "record_id";
    first[1] = instrumentName(defs[0].code);
    first[3] = "text";
    first[4] = "Record ID";
    lines.push(first);
  }
  for (const def of defs) {
    const sections = new Map((def.sections ?? []).map((s) => [s.name, s]));
    const fieldNames = new Set(def.fields.map((f) => f.name));
    let current: string | undefined;
    for (const f of def.fields) {
      let header = "";
      if (f.section !== current && f.section !== undefined) {
        const s = sections.get(f.section)!;
        // A section named after its first field is that field's Section Header; any other is a descriptive field.
        if (s.name === f.name || fieldNames.has(s.name)) header = s.title;
        else lines.push(descriptiveCells(def, s.name, s.title));
      }
      current = f.section;
      const showIf = f.section ? sections.get(f.section)?.showIf : undefined;
      lines.push(fieldCells(def, f, header, showIf));
    }
    const used = new Set(def.fields.map((f) => f.section));
    for (const s of def.sections ?? [])
      if (!used.has(s.name) && !fieldNames.has(s.name)) lines.push(descriptiveCells(def, s.name, s.title));
  }
  return `${lines.map((l) => l.map(cell).join(",")).join("\r\n")}\r\n`;
}
