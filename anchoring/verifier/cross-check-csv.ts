/**
 * Evidence package: each CSV file (csv/<study>-<form>.csv, one row per record, its current version) cross-checked
 * cell by cell against the sealed record.saved payload the row cites by `seq` (ADR 0019). Checked: subject, visit,
 * record_id, version, form_version, leaf_hash (the envelope's leaf), saved_at_utc (the envelope's time),
 * entered_by (the payload's user or API token, entered-by.ts), every field value (rendered as the export renders
 * it); that the seq is the record's latest sealed version; and that every record of the form has exactly one row.
 * Not checked: `site` (not in the record's payload) and `entry_id` (a database id, not sealed).
 * A mismatch names the file, the line, the subject and visit, and the seq.
 */
import { csvRawRows, csvUnquote, csvValue } from "./csv-cells.ts";
import { type Bad, latestRecordVersions, type Sealed } from "./cross-check-sealed.ts";
import { enteredBy } from "./entered-by.ts";

/** The columns every form CSV starts with, before the form's fields (the writer and this check share them). */
export const CSV_FIXED_COLUMNS = [
  "subject",
  "site",
  "visit",
  "record_id",
  "version",
  "form_version",
  "seq",
  "leaf_hash",
  "entry_id",
  "saved_at_utc",
  "entered_by",
] as const;
const FIXED: readonly string[] = CSV_FIXED_COLUMNS;

const showCell = (raw: string) => {
  const s = csvUnquote(raw);
  return s === "" ? "empty" : s;
};

/** Returns the number of rows checked. */
export function crossCheckCsv(file: string, text: string, study: string, sealed: Sealed, bad: Bad): number {
  const form = file.slice("csv/".length, -".csv".length).slice(study.length + 1);
  const rows = csvRawRows(text);
  const head = rows.shift()?.cells.map(csvUnquote) ?? [];
  if (!file.startsWith(`csv/${study}-`) || FIXED.some((h, i) => head[i] !== h)) {
    bad(file, "CSV_INVALID", `not a CSV export of study ${study}: its header is not ${FIXED.join(",")},…`);
    return 0;
  }
  const fields = head.slice(FIXED.length);
  const latest = latestRecordVersions(sealed);
  const seen = new Set<string>();
  let checked = 0;
  for (const { line, cells } of rows) {
    const cell = (name: string) => cells[head.indexOf(name)] ?? "";
    const where = `line ${line} (subject ${csvUnquote(cell("subject"))}, visit ${csvUnquote(cell("visit"))})`;
    if (cells.length !== head.length) {
      bad(file, "CSV_INVALID", `${where}: ${cells.length} cells, the header has ${head.length}`);
      continue;
    }
    const seq = /^\d+$/.test(cell("seq")) ? Number(cell("seq")) : Number.NaN;
    const e = sealed.get(seq);
    if (e?.kind !== "record.saved") {
      bad(
        file,
        "CSV_UNPROVEN",
        `${where} cites seq ${csvUnquote(cell("seq"))}, which is no record.saved entry with a verified bundle ` +
          "in the package",
      );
      continue;
    }
    checked++;
    const p = e.payload;
    const mismatch = (column: string, want: unknown) => {
      const raw = cell(column);
      const expected = csvValue(want ?? null);
      if (raw !== expected)
        bad(
          file,
          "CSV_VALUE_MISMATCH",
          `${where}, seq ${seq}: ${column} is ${showCell(raw)} in the file but ${showCell(expected)} ` +
            "in the sealed payload",
        );
    };
    const record = String(p.record);
    if (p.form !== form)
      bad(file, "CSV_VALUE_MISMATCH", `${where}, seq ${seq}: the sealed record is of form ${String(p.form)}`);
    mismatch("subject", String(p.subject));
    mismatch("visit", String(p.visit));
    mismatch("record_id", record);
    mismatch("version", p.version);
    mismatch("form_version", p.formVersion);
    mismatch("leaf_hash", e.leafHash);
    mismatch("saved_at_utc", e.envelope.at);
    mismatch("entered_by", enteredBy(p));
    const values = (p.values ?? {}) as Record<string, unknown>;
    for (const f of fields) {
      const v = values[f];
      mismatch(f, Array.isArray(v) ? JSON.stringify(v) : v);
    }
    for (const k of Object.keys(values))
      if (!fields.includes(k) && values[k] !== null)
        bad(file, "CSV_VALUE_MISMATCH", `${where}, seq ${seq}: the sealed value of ${k} has no column`);
    const last = latest.get(record);
    if (last && last.seq !== seq)
      bad(
        file,
        "CSV_NOT_LATEST",
        `${where} shows version ${String(p.version)} (seq ${seq}); the record's latest sealed version is ` +
          `${String(last.payload.version)} (seq ${last.seq})`,
      );
    if (seen.has(record)) bad(file, "CSV_ROW_DUPLICATE", `${where}, seq ${seq}: record ${record} has another row`);
    seen.add(record);
  }
  for (const [record, e] of latest)
    if (e.payload.form === form && !seen.has(record))
      bad(
        file,
        "CSV_ROW_MISSING",
        `record ${record} (subject ${String(e.payload.subject)}, visit ${String(e.payload.visit)}, seq ${e.seq}) ` +
          "is sealed but has no row",
      );
  return checked;
}
