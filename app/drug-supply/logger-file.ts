/**
 * A temperature logger's CSV file (issue 21, ADR 0058), read into its readings: a header row naming a time column
 * and a temperature column in degrees Celsius, then one reading a row. Loggers differ: the separator may be `,`,
 * `;` or a tab, decimals may use a comma ("4,5" with `;` separators, or quoted), lines before the header (the
 * logger's id, its settings) are skipped, a byte order mark is ignored. A problem is a typed error naming the line.
 * Pure: the receipt (shipments.server.ts) compares the extremes with the lots' storage range.
 */
import { parse } from "csv-parse/sync";

export interface LoggerReading {
  /** The line of the file (1-based). */
  line: number;
  time: string;
  /** The reading in tenths of a degree Celsius, rounded to the nearest tenth. */
  tenths: number;
}

export interface LoggerFile {
  readings: LoggerReading[];
  /**
   * The lowest reading in tenths rounded down and the highest rounded up, so that a reading outside a range given in
   * tenths by less than a tenth (8.04 °C against 8.0 °C) still counts as outside it.
   */
  minTenths: number;
  maxTenths: number;
}

export type LoggerFileErrorCode =
  | "EMPTY"
  | "NO_HEADER"
  | "FAHRENHEIT"
  | "BAD_TEMPERATURE"
  | "MISSING_TIME"
  | "NO_READINGS"
  | "TOO_MANY_READINGS"
  | "UNREADABLE";

export interface LoggerFileError {
  code: LoggerFileErrorCode;
  /** The line at fault (1-based), when there is one. */
  line: number | null;
  /** In words, naming the line: "line 7: the temperature "warm" is not a number". */
  message: string;
}

export type LoggerParse = ({ ok: true } & LoggerFile) | { ok: false; error: LoggerFileError };

/** At most this many readings (a reading a minute for about 70 days). */
export const LOGGER_MAX_READINGS = 100_000;
/** Lines before the header that are skipped at most (a logger's preamble). */
const MAX_PREAMBLE = 30;

const TIME_HEADER = /time|date|zeit|datum|heure|fecha|hora|timestamp/i;
const TEMP_HEADER = /temp|°\s*c|\(c\)|\[c\]|^c$|celsius/i;
const FAHRENHEIT = /°\s*f|\(f\)|\[f\]|fahrenheit|^f$/i;
/** A decimal number, with a point or a comma, optionally followed by its unit. */
const NUMBER = /^([+\-\u2212]?)(\d{1,4})(?:[.,](\d{1,6}))?\s*(?:°\s*C|C)?$/i;

const fail = (code: LoggerFileErrorCode, line: number | null, message: string): LoggerParse => ({
  ok: false,
  error: { code, line, message: line === null ? message : `line ${line}: ${message}` },
});

/** The file's text: UTF-8, else Latin-1 (older loggers write "°" as one byte). */
function textOf(input: string | Uint8Array): string {
  if (typeof input === "string") return input;
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(input);
  } catch {
    return new TextDecoder("latin1").decode(input);
  }
}

/** The separator: `;` or a tab when the first lines hold one (then a comma is a decimal comma), else `,`. */
function separatorOf(text: string): string {
  const head = text.split(/\r?\n/, MAX_PREAMBLE + 2).join("\n");
  if (head.includes(";")) return ";";
  if (head.includes("\t")) return "\t";
  return ",";
}

/**
 * A reading as an exact integer of thousandths of a degree (digits past the third count as half a thousandth, so
 * that rounding outwards still sees them), or null when it is not a number.
 */
function thousandths(value: string): number | null {
  const m = NUMBER.exec(value.trim());
  if (!m) return null;
  const frac = (m[3] ?? "").padEnd(3, "0").slice(0, 3);
  const extra = (m[3] ?? "").slice(3);
  const abs = Number(m[2]) * 1000 + Number(frac) + (/[1-9]/.test(extra) ? 0.5 : 0);
  return m[1] === "" || m[1] === "+" ? abs : -abs;
}

const roundDiv = (x: number, d: number) => {
  const r = Math.sign(x) * Math.round(Math.abs(x) / d);
  return r === 0 ? 0 : r;
};

/** Read a logger file: every reading, or the first problem with its line. */
export function parseLoggerCsv(input: string | Uint8Array): LoggerParse {
  const text = textOf(input);
  if (text.trim() === "") return fail("EMPTY", null, "the logger file is empty");
  let records: { record: string[]; info: { lines: number } }[];
  try {
    records = parse(text, {
      delimiter: separatorOf(text),
      bom: true,
      info: true,
      relax_column_count: true,
      relax_quotes: true,
      skip_empty_lines: true,
      trim: true,
    }) as unknown as { record: string[]; info: { lines: number } }[];
  } catch (err) {
    const line = (err as { lines?: number }).lines ?? null;
    return fail("UNREADABLE", line, "the logger file is not a readable CSV file (export it as CSV)");
  }
  let timeCol = -1;
  let tempCol = -1;
  let start = -1;
  for (let i = 0; i < Math.min(records.length, MAX_PREAMBLE + 1); i++) {
    const cells = records[i].record;
    const t = cells.findIndex((c) => TIME_HEADER.test(c));
    const c = cells.findIndex((x, j) => j !== t && TEMP_HEADER.test(x) && !FAHRENHEIT.test(x));
    const f = cells.findIndex((x) => FAHRENHEIT.test(x));
    if (t !== -1 && c === -1 && f !== -1)
      return fail(
        "FAHRENHEIT",
        records[i].info.lines,
        "the temperature column is in degrees Fahrenheit; export the readings in degrees Celsius",
      );
    if (t !== -1 && c !== -1) {
      timeCol = t;
      tempCol = c;
      start = i + 1;
      break;
    }
  }
  if (start === -1)
    return fail(
      "NO_HEADER",
      null,
      "no header row with a time column and a temperature column in °C was found in the first lines " +
        '(e.g. "Time;Temperature (°C)")',
    );
  const readings: LoggerReading[] = [];
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  for (const { record, info } of records.slice(start)) {
    if (record.every((c) => c === "")) continue;
    const line = info.lines;
    if (readings.length >= LOGGER_MAX_READINGS)
      return fail("TOO_MANY_READINGS", line, `the file holds more than ${LOGGER_MAX_READINGS} readings`);
    const time = record[timeCol] ?? "";
    if (time === "") return fail("MISSING_TIME", line, "the reading has no time");
    const raw = record[tempCol] ?? "";
    const v = thousandths(raw);
    if (v === null)
      return fail(
        "BAD_TEMPERATURE",
        line,
        raw === ""
          ? "the reading has no temperature"
          : `the temperature "${raw.slice(0, 20)}" is not a number of degrees Celsius`,
      );
    if (Math.abs(v) > 100_000)
      return fail("BAD_TEMPERATURE", line, `the temperature ${raw} is outside -100 °C to 100 °C`);
    readings.push({ line, time, tenths: roundDiv(v, 100) });
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  if (readings.length === 0) return fail("NO_READINGS", null, "the logger file has a header but no readings");
  return { ok: true, readings, minTenths: Math.floor(lo / 100) || 0, maxTenths: Math.ceil(hi / 100) || 0 };
}
