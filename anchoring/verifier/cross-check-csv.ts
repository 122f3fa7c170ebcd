/**
 * Evidence package: each CSV file (csv/<study>-<form>.csv, one row per record, its current version) cross-checked cell
 * by cell against the sealed record.saved payload the row cites by `seq` (ADR 0019). Checked: subject, visit, instance
 * (a repeating form's CSV only: the row; 1 before payload version 3), record_id, version, form_version, leaf_hash (the
 * envelope's leaf), saved_at_utc (the envelope's time), entered_by (the payload's user or API token, entered-by.ts),
 * every field value (rendered as the export renders it): a clear value against `values`, a calculated one against
 * `calculated`, an identifier or free-text value (written as entered) by its salted hash under the payload's salt
 * against `hashed`, and each `<field>.missing_code` / `<field>.missing_reason` against `missing` (the reason by its
 * salted hash); that the seq is the record's latest sealed version; and that every record of the form has exactly one
 * row. Not checked: `site` (not in the record's payload), `entry_id` (a database id, not sealed) and `protocol_version`
 * (derived from the study's documents, ADR 0048). A mismatch names
 * the file, the line, the subject and visit, the column and the seq.
 */
import { nobleCrypto } from "../log/crypto-noble.ts";
import type { Crypto } from "../log/crypto.ts";
import { hashedFieldValue } from "../log/record-values.ts";
import { saltedTextHash } from "../log/text-hash.ts";
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
/**
 * The fixed columns of a repeating form's CSV (an adverse-event log): `instance`, the row of the record (1, 2, ...),
 * after the visit. A form that does not repeat has no such column (its records are all row 1).
 */
export const CSV_FIXED_COLUMNS_REPEATING: readonly string[] = [
  ...FIXED.slice(0, FIXED.indexOf("visit") + 1),
  "instance",
  ...FIXED.slice(FIXED.indexOf("visit") + 1),
];

/**
 * The column after the fixed ones (ADR 0048): the protocol version in force at the record's site when the version was
 * entered. Derived from the study's documents and site approvals (each sealed in its own entries), not from the
 * record's payload, so not checked here; files written before it existed have no such column.
 */
export const CSV_PROTOCOL_COLUMN = "protocol_version";

/** The two columns after a field that accepts missing-data codes: the code and its reason. */
export const missingColumns = (field: string) => [`${field}.missing_code`, `${field}.missing_reason`];
const MISSING_SUFFIX = /\.missing_(code|reason)$/;

const showCell = (raw: string) => {
  const s = csvUnquote(raw);
  return s === "" ? "empty" : s;
};

/**
 * The texts a cell may have been written from: the cell itself, and without the ' a text cell gets before a leading
 * = + - @ tab or CR (csvCell defuses formulas that way), so a hashed value is found either way.
 */
function cellTexts(raw: string): string[] {
  const s = csvUnquote(raw);
  return /^'[=+\-@\t\r]/.test(s) ? [s, s.slice(1)] : [s];
}
const obj = (v: unknown): Record<string, unknown> =>
  v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : {};

/** Returns the number of rows checked. */
export function crossCheckCsv(
  file: string,
  text: string,
  study: string,
  sealed: Sealed,
  bad: Bad,
  crypto: Crypto = nobleCrypto,
): number {
  const form = file.slice("csv/".length, -".csv".length).slice(study.length + 1);
  const rows = csvRawRows(text);
  const head = rows.shift()?.cells.map(csvUnquote) ?? [];
  const fixed = head[FIXED.indexOf("visit") + 1] === "instance" ? CSV_FIXED_COLUMNS_REPEATING : FIXED;
  if (!file.startsWith(`csv/${study}-`) || fixed.some((h, i) => head[i] !== h)) {
    bad(file, "CSV_INVALID", `not a CSV export of study ${study}: its header is not ${FIXED.join(",")},…`);
    return 0;
  }
  const columns = head.slice(fixed.length + (head[fixed.length] === CSV_PROTOCOL_COLUMN ? 1 : 0));
  const fields = columns.filter((c) => !MISSING_SUFFIX.test(c));
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
    if (fixed === CSV_FIXED_COLUMNS_REPEATING) mismatch("instance", p.instance ?? 1);
    else if ((p.instance ?? 1) !== 1)
      bad(
        file,
        "CSV_VALUE_MISMATCH",
        `${where}, seq ${seq}: the sealed record is row ${String(p.instance)} of a repeating form, and the file ` +
          "has no instance column",
      );
    const values = obj(p.values);
    const hashed = obj(p.hashed);
    const calculated = obj(p.calculated);
    const missing = obj(p.missing);
    const salt = String(p.salt);
    /** A cell written from text the payload holds as its salted hash (`want`), or empty when it holds none. */
    const hashedCell = (column: string, want: unknown, hash: (text: string) => string, what: string) => {
      const raw = cell(column);
      if (typeof want !== "string") return mismatch(column, null);
      if (!cellTexts(raw).some((t) => hash(t) === want))
        bad(
          file,
          "CSV_VALUE_MISMATCH",
          `${where}, seq ${seq}: ${column} is ${showCell(raw)} in the file, which is not the ${what} sealed ` +
            "(as a salted hash) in the payload",
        );
    };
    for (const f of fields) {
      if (Object.hasOwn(hashed, f)) hashedCell(f, hashed[f], (t) => hashedFieldValue(crypto, salt, t), "value");
      else if (Object.hasOwn(calculated, f)) mismatch(f, calculated[f]);
      else {
        const v = values[f];
        mismatch(f, Array.isArray(v) ? JSON.stringify(v) : v);
      }
    }
    for (const c of columns.filter((x) => MISSING_SUFFIX.test(x))) {
      const [f, part] = [c.replace(MISSING_SUFFIX, ""), c.endsWith("_code") ? "code" : "reason"];
      const m = obj(missing[f]);
      if (part === "code") mismatch(c, m.code ?? null);
      else hashedCell(c, m.reasonHash, (t) => saltedTextHash(crypto, salt, t), "reason");
    }
    const sealedFields = [
      ...Object.keys(values).filter((k) => values[k] !== null),
      ...Object.keys(hashed),
      ...Object.keys(calculated).filter((k) => calculated[k] !== null),
    ];
    for (const k of sealedFields)
      if (!fields.includes(k))
        bad(file, "CSV_VALUE_MISMATCH", `${where}, seq ${seq}: the sealed value of ${k} has no column`);
    for (const k of Object.keys(missing))
      if (!columns.includes(`${k}.missing_code`))
        bad(file, "CSV_VALUE_MISMATCH", `${where}, seq ${seq}: the sealed missing-data code of ${k} has no column`);
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
