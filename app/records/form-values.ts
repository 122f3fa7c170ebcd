/**
 * Turning an HTML form post into a CRF entry for a form definition (shared by the portal pages): the values, the
 * missing-data codes with their reasons and the soft-limit confirmations, `{data, missing, confirmed}`, ready for
 * saveRecord / correctRecord. Empty inputs are left out (the check then reports missing required fields); a value
 * that does not parse is kept as its text so that the check names the field instead of silently dropping it, and
 * `problems` says in plain words what was wrong with it (the page shows these in place of the check's message).
 *
 * What is accepted (docs/forms.md, ADR 0030):
 * - numbers: digits with one decimal separator, either "." or the decimal separator of the user's locale
 *   ("37,2" from a German or French browser is 37.2); no thousands separators; an optional sign and exponent.
 *   The stored and sealed value is a JSON number.
 * - date: YYYY-MM-DD (the browser's date picker sends this).
 * - datetime: a date (`f_<name>`) plus a time (`ft_<name>`, HH:MM or HH:MM:SS) read on the clock of the site's time
 *   zone (IANA name), stored as RFC 3339 with that zone's offset at that moment (DST-correct); a full RFC 3339 text
 *   in `f_<name>` is taken as it is. A time that does not exist in the zone (the hour skipped when clocks go
 *   forward) is refused; a time that exists twice (clocks go back) is the earlier one.
 * - missing-data codes: `m_<name>` (a code) and `mr_<name>` (its reason); the value is then ignored.
 * - confirmation of a value outside its soft limits: `confirm_<name>` checked.
 */
import type { FormDefinition } from "../../anchoring/forms/definition.ts";
import { isTimeZone } from "../platform/time-zone.ts";

export { isTimeZone };

export interface FormPost {
  get(name: string): unknown;
  getAll(name: string): unknown[];
}

export interface EntryFromForm {
  data: Record<string, unknown>;
  missing: Record<string, { code: string; reason: string }>;
  confirmed: string[];
  /** Values that could not be read, in plain words naming the field (`field` as the service names it). */
  problems: { field: string; message: string }[];
}

export interface EntryOptions {
  /** The site's IANA time zone, for datetime fields; default UTC. */
  timeZone?: string;
  /** The user's locale (BCP 47, from Accept-Language), for its decimal separator; default "en". */
  locale?: string;
}

/** The decimal separator of a locale: "," for "de-DE" or "fr", "." for "en-US"; "." when the locale is unknown. */
export function decimalSeparator(locale: string | undefined): "." | "," {
  try {
    const part = new Intl.NumberFormat(locale || "en").formatToParts(1.5).find((p) => p.type === "decimal");
    return part?.value === "," ? "," : ".";
  } catch {
    return ".";
  }
}

/** The first language of an Accept-Language header ("de-CH,de;q=0.9,en;q=0.8" -> "de-CH"); undefined if none. */
export function localeOf(acceptLanguage: string | null | undefined): string | undefined {
  const first = (acceptLanguage ?? "").split(",")[0]?.split(";")[0]?.trim();
  if (!first || first === "*") return undefined;
  try {
    return Intl.getCanonicalLocales(first)[0];
  } catch {
    return undefined;
  }
}

const NUMBER = /^[-+]?(\d+([.,]\d*)?|[.,]\d+)([eE][-+]?\d+)?$/;

/**
 * A number as a person types it: "37.2", and "37,2" where the locale writes decimals with a comma. Null when the
 * text is not a number in that form (a thousands separator, two separators, letters).
 */
export function parseDecimal(text: string, locale?: string): number | null {
  const t = text.trim().replace(/^\u2212/, "-");
  if (!NUMBER.test(t)) return null;
  if (t.includes(",") && decimalSeparator(locale) !== ",") return null;
  const n = Number(t.replace(",", "."));
  return Number.isFinite(n) ? n : null;
}

const partsFormat = new Map<string, Intl.DateTimeFormat>();
/** The wall clock of an instant in a zone: [year, month, day, hour, minute, second]. */
function wallClock(ms: number, timeZone: string): number[] {
  let f = partsFormat.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat("en-US", {
      timeZone,
      hourCycle: "h23",
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
    });
    partsFormat.set(timeZone, f);
  }
  const p = Object.fromEntries(f.formatToParts(new Date(ms)).map((x) => [x.type, x.value]));
  return [p.year, p.month, p.day, p.hour, p.minute, p.second].map(Number);
}

/** The zone's offset from UTC at an instant, in minutes (Berlin in summer: 120). */
function offsetAt(ms: number, timeZone: string): number {
  const [y, mo, d, h, mi, s] = wallClock(ms, timeZone);
  return Math.round((Date.UTC(y, mo - 1, d, h, mi, s) - Math.floor(ms / 1000) * 1000) / 60_000);
}

function offsetText(minutes: number): string {
  const sign = minutes < 0 ? "-" : "+";
  const a = Math.abs(minutes);
  return `${sign}${String(Math.floor(a / 60)).padStart(2, "0")}:${String(a % 60).padStart(2, "0")}`;
}

const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
const TIME = /^([01]\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?$/;

/**
 * A date and a time on the clock of a time zone as RFC 3339 with the zone's offset at that moment:
 * ("2026-07-01", "09:30", "Europe/Berlin") -> "2026-07-01T09:30:00+02:00". `{gap: true}` when the time does not
 * exist there (skipped when clocks go forward); a time that exists twice is the earlier (the offset before the
 * change). Null when the date or time is malformed.
 */
export function zonedToRfc3339(date: string, time: string, timeZone: string): { value: string } | { gap: true } | null {
  const d = DATE.exec(date);
  const t = TIME.exec(time);
  if (!d || !t) return null;
  const [y, mo, day] = [Number(d[1]), Number(d[2]), Number(d[3])];
  const [h, mi, s] = [Number(t[1]), Number(t[2]), Number(t[3] ?? 0)];
  const local = Date.UTC(y, mo - 1, day, h, mi, s);
  const check = new Date(local);
  if (check.getUTCFullYear() !== y || check.getUTCMonth() !== mo - 1 || check.getUTCDate() !== day) return null;
  // The candidates: the local time read with the offset a day before and a day after (a zone changes its offset
  // at most once in that window); the earlier one that shows this wall clock wins.
  const offsets = [...new Set([offsetAt(local - 86_400_000, timeZone), offsetAt(local + 86_400_000, timeZone)])];
  const fits = offsets
    .map((o) => ({ o, ms: local - o * 60_000 }))
    .filter(({ o, ms }) => offsetAt(ms, timeZone) === o)
    .sort((a, b) => a.ms - b.ms);
  if (fits.length === 0) return { gap: true };
  const hh = String(h).padStart(2, "0");
  const mm = String(mi).padStart(2, "0");
  const ss = String(s).padStart(2, "0");
  return { value: `${date}T${hh}:${mm}:${ss}${offsetText(fits[0].o)}` };
}

const RFC3339 =
  /^(\d{4}-\d{2}-\d{2})T([01]\d|2[0-3]):([0-5]\d)(?::([0-5]\d)(?:\.\d{1,9})?)?(Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)$/i;

/**
 * An RFC 3339 date-time shown on the clock of a time zone: ("2026-07-01T07:30:00Z", "Europe/Berlin") ->
 * {date: "2026-07-01", time: "09:30"} (seconds shown only when not zero). Null when the text is not RFC 3339.
 */
export function rfc3339ToZoned(value: string, timeZone: string): { date: string; time: string } | null {
  if (!RFC3339.test(value)) return null;
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) return null;
  const [y, mo, d, h, mi, s] = wallClock(ms, timeZone);
  const two = (n: number) => String(n).padStart(2, "0");
  return {
    date: `${String(y).padStart(4, "0")}-${two(mo)}-${two(d)}`,
    time: `${two(h)}:${two(mi)}${s ? `:${two(s)}` : ""}`,
  };
}

/** Today's date on the clock of a time zone, YYYY-MM-DD (a `notFuture` date's latest day). */
export function todayIn(timeZone: string, now = Date.now()): string {
  const [y, mo, d] = wallClock(now, timeZone);
  return `${y}-${String(mo).padStart(2, "0")}-${String(d).padStart(2, "0")}`;
}

/** The entry a form post holds: values, missing-data codes with reasons, confirmations, and unreadable values. */
export function entryFromForm(def: FormDefinition, form: FormPost, opts: EntryOptions = {}): EntryFromForm {
  const out: EntryFromForm = { data: {}, missing: {}, confirmed: [], problems: [] };
  const text = (key: string) => {
    const raw = form.get(key);
    return typeof raw === "string" ? raw.trim() : "";
  };
  const zone = opts.timeZone && isTimeZone(opts.timeZone) ? opts.timeZone : "UTC";
  for (const f of def.fields) {
    if (f.type === "calc") continue;
    const key = `f_${f.name}`;
    const problem = (message: string) => out.problems.push({ field: `data.${f.name}`, message });
    const code = text(`m_${f.name}`);
    if (code !== "") {
      out.missing[f.name] = { code, reason: text(`mr_${f.name}`) };
      continue;
    }
    if (text(`confirm_${f.name}`) !== "") out.confirmed.push(f.name);
    if (f.type === "boolean") {
      const v = form.get(key);
      if (v === "true" || v === "false") out.data[f.name] = v === "true";
      continue;
    }
    if (f.type === "multichoice") {
      const all = form.getAll(key).map(String);
      if (all.length) out.data[f.name] = all;
      continue;
    }
    const value = text(key);
    if (f.type === "datetime") {
      const time = text(`ft_${f.name}`);
      if (value === "" && time === "") continue;
      if (RFC3339.test(value) && time === "") {
        out.data[f.name] = value;
        continue;
      }
      if (value === "" || time === "") {
        out.data[f.name] = value || time;
        problem(`${f.label}: enter both the date and the time`);
        continue;
      }
      const r = zonedToRfc3339(value, time, zone);
      if (r && "value" in r) out.data[f.name] = r.value;
      else {
        out.data[f.name] = `${value} ${time}`;
        problem(
          r
            ? `${f.label}: ${time} does not exist on ${value} in ${zone} (the clocks moved forward); check the time`
            : `${f.label}: enter the date as YYYY-MM-DD and the time as HH:MM`,
        );
      }
      continue;
    }
    if (value === "") continue;
    if (f.type === "number") {
      const n = parseDecimal(value, opts.locale);
      if (n !== null) out.data[f.name] = n;
      else {
        out.data[f.name] = value;
        const sep = decimalSeparator(opts.locale);
        problem(
          `${f.label} must be a number, written with digits and ${sep === "," ? "a comma or a point" : "a point"} ` +
            `for decimals, without thousands separators (for example ${sep === "," ? "37,2" : "37.2"})`,
        );
      }
    } else out.data[f.name] = value;
  }
  return out;
}

/** The values of a form post (without missing-data codes and confirmations), for callers that need only these. */
export function valuesFromForm(def: FormDefinition, form: FormPost, opts: EntryOptions = {}): Record<string, unknown> {
  return entryFromForm(def, form, opts).data;
}

/**
 * The problems to show for a refused entry: the service's, with the message of a value this page could not read
 * in place of the service's message for that field (ours says how to write it).
 */
export function mergeProblems<P extends { field: string; message: string; kind?: "error" | "confirm" }>(
  service: P[] | null | undefined,
  local: { field: string; message: string }[],
): { field: string; message: string; kind: "error" | "confirm" }[] {
  const byField = new Map(local.map((p) => [p.field, p.message]));
  const out = (service ?? []).map((p) => ({
    field: p.field,
    message: byField.get(p.field) ?? p.message,
    kind: p.kind ?? ("error" as const),
  }));
  for (const p of local)
    if (!out.some((q) => q.field === p.field)) out.push({ field: p.field, message: p.message, kind: "error" });
  return out;
}
