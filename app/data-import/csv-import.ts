/**
 * Reading a CSV file of one form (issue 18, ADR 0036): `subject` and `visit` columns (REDCap's `record_id` and
 * `redcap_event_name` too; `redcap_repeat_instance` or `instance` for a repeating form's row), then one column per
 * field name, REDCap's checkbox columns `field___code` for a multiple choice. Rows are numbered as the file's lines
 * (the header is line 1); every problem names its row and column.
 */
import { parse } from "csv-parse/sync";
import type { FieldDefinition } from "../../anchoring/forms/definition.ts";
import {
  bookkeeping,
  type Cell,
  conversionOptions,
  convertCells,
  matchCheckbox,
  matchField,
  matchForm,
  matchVisit,
} from "./import-values.ts";
import {
  type ImportProblem,
  type ImportRow,
  type ParsedImport,
  type ReadImportInput,
  UnusableFileError,
} from "./import-rows.ts";

/** The most data rows one CSV file may hold. */
export const CSV_MAX_ROWS = 200_000;

const SUBJECT = ["subject", "record_id", "study_id"];
const VISIT = ["visit", "redcap_event_name"];
const INSTANCE = ["instance", "redcap_repeat_instance"];
const REPEAT_INSTRUMENT = "redcap_repeat_instrument";

/** The file's records, each with the line it starts on; a file csv-parse cannot read is unusable. */
function records(text: string): { line: number; cells: string[] }[] {
  let out: { record: string[]; info: { lines: number } }[];
  try {
    out = parse(text, {
      bom: true,
      info: true,
      relax_column_count: true,
      skip_empty_lines: true,
      to: CSV_MAX_ROWS + 2,
    }) as unknown as typeof out;
  } catch (err) {
    const e = err as { lines?: number; message: string };
    throw new UnusableFileError(`The file is not readable CSV (line ${e.lines ?? 1}): ${e.message}`);
  }
  if (out.length > CSV_MAX_ROWS + 1)
    throw new UnusableFileError(
      `The file has more than ${CSV_MAX_ROWS} rows; split it into files of at most that many`,
    );
  return out.map(({ record, info }) => ({
    // info.lines is the line the record ends on; a quoted cell may span lines.
    line: info.lines - record.reduce((n, c) => n + (c.match(/\n/g)?.length ?? 0), 0),
    cells: record,
  }));
}

/** Read a CSV file of one form into rows (nothing written; see import-rows.ts). */
export function readCsvImport(input: ReadImportInput, text: string): ParsedImport {
  const recs = records(text);
  if (recs.length === 0) throw new UnusableFileError("The file is empty: it needs a header row and data rows");
  const header = recs[0].cells.map((h) => h.trim());
  const col = (names: string[]) => header.findIndex((h) => names.includes(h.toLowerCase()));
  const subjectCol = col(SUBJECT);
  if (subjectCol < 0)
    throw new UnusableFileError(
      `The file has no subject column: name the first column "subject" (or REDCap's "record_id"); ` +
        `its columns are ${header.slice(0, 8).join(", ") || "none"}`,
    );
  const visitCol = col(VISIT);
  const instanceCol = col(INSTANCE);
  const instrumentCol = col([REPEAT_INSTRUMENT]);

  // The form: --form, else the file's name, else the single form named in redcap_repeat_instrument.
  let form = input.formCode === null ? null : matchForm(input.formCode, input.forms, input.map);
  if (input.formCode !== null && !form)
    throw new UnusableFileError(
      `The study has no approved form ${input.formCode} (its forms: ${input.forms.map((f) => f.code).join(", ")})`,
    );
  if (!form) {
    const stem = input.fileName.replace(/^.*[\\/]/, "").replace(/\.[^.]*$/, "");
    form = matchForm(stem, input.forms, input.map);
    if (!form && instrumentCol >= 0) {
      const named = new Set(
        recs
          .slice(1)
          .map((r) => (r.cells[instrumentCol] ?? "").trim())
          .filter(Boolean),
      );
      if (named.size === 1) form = matchForm([...named][0], input.forms, input.map);
    }
  }
  if (!form)
    throw new UnusableFileError(
      `The file does not say which form it holds: give it with --form CODE (the study's forms: ` +
        `${input.forms.map((f) => f.code).join(", ")})`,
    );
  const def = form.definition;
  const formVisits = def.visits.filter((v) => input.visits.length === 0 || input.visits.includes(v));
  if (visitCol < 0 && formVisits.length !== 1)
    throw new UnusableFileError(
      `The file has no visit column: add a "visit" column (or REDCap's "redcap_event_name"); form ${def.code} ` +
        `is entered at ${def.visits.join(", ")}`,
    );

  const problems: ImportProblem[] = [];
  const mapping: ParsedImport["mapping"] = [];
  const notes: string[] = [];
  const columns: { index: number; field: FieldDefinition; option?: string }[] = [];
  const special = new Set([subjectCol, visitCol, instanceCol, instrumentCol]);
  header.forEach((h, index) => {
    if (special.has(index)) {
      mapping.push({ column: h, form: def.code, field: null, note: "row key" });
      return;
    }
    const box = matchCheckbox(h, def, input.map);
    const field = box?.field ?? matchField(h, def, input.map);
    if (field?.type === "calc") {
      mapping.push({ column: h, form: def.code, field: null, note: `${field.name} is calculated here; not read` });
      return;
    }
    if (!box && h.includes("___")) {
      const parent = matchField(h.slice(0, h.indexOf("___")), def, input.map);
      if (parent?.type === "multichoice") {
        problems.push({ row: 1, column: h, message: `${h} is not an option of ${parent.label}` });
        mapping.push({ column: h, form: def.code, field: null });
        return;
      }
    }
    if (field) {
      columns.push({ index, field, option: box?.option });
      mapping.push({ column: h, form: def.code, field: field.name });
      return;
    }
    const ignored = bookkeeping(h, def);
    if (ignored) {
      mapping.push({ column: h, form: def.code, field: null, note: ignored });
      return;
    }
    mapping.push({ column: h, form: def.code, field: null });
    problems.push({
      row: 1,
      column: h,
      message:
        h === ""
          ? `column ${index + 1} has no name`
          : `${h} is not a field of form ${def.code} v${form.version}; rename the column, map it in the --map file ` +
            "or remove it",
    });
  });
  const dup = new Map<string, string>();
  for (const c of columns) {
    const key = c.option === undefined ? c.field.name : `${c.field.name}___${c.option}`;
    const first = dup.get(key);
    if (first !== undefined)
      problems.push({ row: 1, column: header[c.index], message: `${header[c.index]} repeats column ${first}` });
    else dup.set(key, header[c.index]);
  }

  const rows: ImportRow[] = [];
  const nextInstance = new Map<string, number>();
  const conversion = conversionOptions(input);
  for (const r of recs.slice(1)) {
    const cell = (i: number) => (i < 0 ? "" : (r.cells[i] ?? "").trim());
    const cells: Cell[] = [];
    for (const c of columns) {
      const text = cell(c.index);
      if (text !== "") cells.push({ field: c.field, column: header[c.index], row: r.line, text, option: c.option });
    }
    if (instrumentCol >= 0) {
      const named = cell(instrumentCol);
      // REDCap exports a repeating instrument's rows beside the event's own row: only this form's rows are data.
      if (named !== "" && matchForm(named, input.forms, input.map)?.code !== def.code) continue;
      if (named === "" && def.repeating && cells.length === 0) continue;
    }
    if (cells.length === 0) continue; // REDCap writes a row per record and event, also where the form is empty
    const subject = cell(subjectCol);
    const rowProblem = (column: string | null, message: string) => problems.push({ row: r.line, column, message });
    if (subject === "") {
      rowProblem(header[subjectCol], "the subject is empty");
      continue;
    }
    let visit: string | null;
    if (visitCol < 0) visit = formVisits[0];
    else {
      const v = cell(visitCol);
      visit = v === "" ? null : matchVisit(v, formVisits, input.map);
      if (visit === null) {
        rowProblem(
          header[visitCol],
          v === ""
            ? "the visit is empty"
            : `${v} is not a visit of form ${def.code} (${def.visits.join(", ")}); map it in the --map file`,
        );
        continue;
      }
    }
    let instance = 1;
    const key = `${subject.toUpperCase()}|${visit}`;
    const inst = cell(instanceCol);
    if (inst !== "") {
      if (!/^\d{1,6}$/.test(inst) || Number(inst) < 1) {
        rowProblem(header[instanceCol], `the instance must be a whole number from 1 (it is ${inst})`);
        continue;
      }
      instance = Number(inst);
      if (instance > 1 && !def.repeating) {
        rowProblem(header[instanceCol], `form ${def.code} does not repeat; its instance must be 1`);
        continue;
      }
    } else if (def.repeating) instance = (nextInstance.get(key) ?? 0) + 1;
    nextInstance.set(key, Math.max(instance, nextInstance.get(key) ?? 0));
    const converted = convertCells(def, cells, conversion);
    problems.push(...converted.problems);
    // Only unticked checkboxes (REDCap writes 0 for each of an empty form's boxes): no value, no version.
    const empty = Object.keys(converted.values).length === 0 && Object.keys(converted.missing).length === 0;
    if (empty && converted.problems.length === 0) continue;
    rows.push({
      row: r.line,
      subject,
      visit,
      form: def.code,
      instance,
      values: converted.values,
      missing: converted.missing,
      claims: null,
    });
  }
  if (rows.length === 0 && problems.length === 0)
    notes.push("The file has no row with a value: there is nothing to import");
  problems.sort((a, b) => a.row - b.row);
  return { format: "csv", rows, problems, mapping, notes };
}
