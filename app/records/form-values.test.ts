import { describe, expect, it } from "vitest";
import type { FormDefinition } from "../../anchoring/forms/definition.ts";
import {
  decimalSeparator,
  entryFromForm,
  isTimeZone,
  localeOf,
  mergeProblems,
  parseDecimal,
  rfc3339ToZoned,
  todayIn,
  valuesFromForm,
  zonedToRfc3339,
} from "./form-values.ts";

const def: FormDefinition = {
  code: "VITALS",
  title: "Vital signs",
  version: 2,
  visits: ["V1"],
  fields: [
    { name: "temp", label: "Temperature", type: "number", unit: "Cel", softMax: 38, missingCodes: ["NOT_DONE"] },
    { name: "seen_at", label: "Examined at", type: "datetime" },
    { name: "visit_date", label: "Visit date", type: "date", notFuture: true },
    { name: "smoker", label: "Smoker", type: "boolean" },
    { name: "sx", label: "Symptoms", type: "multichoice", options: [{ value: "A", label: "Ache" }] },
    { name: "bmi", label: "BMI", type: "calc", expression: "[temp]" },
  ],
};

function post(entries: [string, string][]) {
  const f = new FormData();
  for (const [k, v] of entries) f.append(k, v);
  return f;
}

describe("numbers as people type them", () => {
  it("takes the locale's decimal comma and always the point; the value is a JSON number", () => {
    expect(decimalSeparator("de-DE")).toBe(",");
    expect(decimalSeparator("fr")).toBe(",");
    expect(decimalSeparator("en-US")).toBe(".");
    expect(decimalSeparator("not a locale!")).toBe(".");
    expect(parseDecimal("37,2", "de-DE")).toBe(37.2);
    expect(parseDecimal("37.2", "de-DE")).toBe(37.2);
    expect(parseDecimal(" 37.2 ", "en-US")).toBe(37.2);
    expect(parseDecimal("-0,5", "fr-FR")).toBe(-0.5);
    expect(parseDecimal(",5", "fr-FR")).toBe(0.5);
    expect(parseDecimal("1e3")).toBe(1000);
    const e = entryFromForm(def, post([["f_temp", "37,2"]]), { locale: "de-DE" });
    expect(e.data).toEqual({ temp: 37.2 });
    expect(JSON.stringify(e.data)).toBe('{"temp":37.2}');
  });

  it("refuses a comma where decimals take a point, thousand separators and text, naming the field", () => {
    expect(parseDecimal("37,2", "en-US")).toBeNull();
    expect(parseDecimal("1.234,5", "de-DE")).toBeNull();
    expect(parseDecimal("1,234.5", "en-US")).toBeNull();
    expect(parseDecimal("37,2,1", "de-DE")).toBeNull();
    expect(parseDecimal("abc")).toBeNull();
    const e = entryFromForm(def, post([["f_temp", "37,2"]]), { locale: "en-US" });
    expect(e.data).toEqual({ temp: "37,2" });
    expect(e.problems).toEqual([
      {
        field: "data.temp",
        message:
          "Temperature must be a number, written with digits and a point for decimals, without thousands " +
          "separators (for example 37.2)",
      },
    ]);
    const de = entryFromForm(def, post([["f_temp", "1.234,5"]]), { locale: "de" });
    expect(de.problems[0].message).toMatch(/a comma or a point for decimals.*37,2/);
  });

  it("reads the locale from Accept-Language", () => {
    expect(localeOf("de-CH,de;q=0.9,en;q=0.8")).toBe("de-CH");
    expect(localeOf("")).toBeUndefined();
    expect(localeOf("*")).toBeUndefined();
    expect(localeOf("%%%")).toBeUndefined();
  });
});

describe("date and time on the site's clock -> RFC 3339 with the right offset", () => {
  it("uses the zone's offset at that moment, across daylight saving time", () => {
    expect(zonedToRfc3339("2026-07-01", "09:30", "Europe/Berlin")).toEqual({ value: "2026-07-01T09:30:00+02:00" });
    expect(zonedToRfc3339("2026-01-15", "09:30", "Europe/Berlin")).toEqual({ value: "2026-01-15T09:30:00+01:00" });
    expect(zonedToRfc3339("2026-01-15", "09:30", "America/New_York")).toEqual({
      value: "2026-01-15T09:30:00-05:00",
    });
    expect(zonedToRfc3339("2026-07-15", "23:45:10", "America/New_York")).toEqual({
      value: "2026-07-15T23:45:10-04:00",
    });
    expect(zonedToRfc3339("2026-07-15", "09:30", "Asia/Kolkata")).toEqual({ value: "2026-07-15T09:30:00+05:30" });
    expect(zonedToRfc3339("2026-07-15", "09:30", "UTC")).toEqual({ value: "2026-07-15T09:30:00+00:00" });
    // The day the clocks change, before and after the change.
    expect(zonedToRfc3339("2026-03-29", "01:59", "Europe/Berlin")).toEqual({ value: "2026-03-29T01:59:00+01:00" });
    expect(zonedToRfc3339("2026-03-29", "03:00", "Europe/Berlin")).toEqual({ value: "2026-03-29T03:00:00+02:00" });
    // Southern hemisphere: summer time in January.
    expect(zonedToRfc3339("2026-01-10", "12:00", "Australia/Sydney")).toEqual({
      value: "2026-01-10T12:00:00+11:00",
    });
  });

  it("refuses a time the clocks skipped and takes the earlier of a time that happened twice", () => {
    expect(zonedToRfc3339("2026-03-29", "02:30", "Europe/Berlin")).toEqual({ gap: true });
    expect(zonedToRfc3339("2026-03-08", "02:15", "America/New_York")).toEqual({ gap: true });
    expect(zonedToRfc3339("2026-10-25", "02:30", "Europe/Berlin")).toEqual({ value: "2026-10-25T02:30:00+02:00" });
    expect(zonedToRfc3339("2026-11-01", "01:30", "America/New_York")).toEqual({
      value: "2026-11-01T01:30:00-04:00",
    });
  });

  it("round-trips: the stored value is shown back on the site's clock, whatever offset it was stored with", () => {
    for (const [date, time, zone] of [
      ["2026-07-01", "09:30", "Europe/Berlin"],
      ["2026-12-31", "23:59", "Pacific/Auckland"],
      ["2026-03-08", "03:00", "America/New_York"],
    ]) {
      const r = zonedToRfc3339(date, time, zone);
      expect(r && "value" in r ? rfc3339ToZoned(r.value, zone) : null).toEqual({ date, time });
    }
    expect(rfc3339ToZoned("2026-07-01T07:30:00Z", "Europe/Berlin")).toEqual({ date: "2026-07-01", time: "09:30" });
    expect(rfc3339ToZoned("2026-07-01T07:30:15Z", "UTC")).toEqual({ date: "2026-07-01", time: "07:30:15" });
    expect(rfc3339ToZoned("2026-07-01 07:30", "UTC")).toBeNull();
  });

  it("refuses malformed dates and times", () => {
    expect(zonedToRfc3339("2026-02-30", "09:30", "UTC")).toBeNull();
    expect(zonedToRfc3339("2026-02-03", "24:00", "UTC")).toBeNull();
    expect(zonedToRfc3339("03/02/2026", "09:30", "UTC")).toBeNull();
  });

  it("reads the post's date and time inputs in the site's zone, and names what is wrong", () => {
    const ok = entryFromForm(
      def,
      post([
        ["f_seen_at", "2026-07-01"],
        ["ft_seen_at", "09:30"],
      ]),
      { timeZone: "Europe/Berlin" },
    );
    expect(ok).toEqual({
      data: { seen_at: "2026-07-01T09:30:00+02:00" },
      missing: {},
      confirmed: [],
      problems: [],
    });
    // A whole RFC 3339 text (an older form, a script) is taken as it is.
    expect(valuesFromForm(def, post([["f_seen_at", "2026-07-01T09:30:00Z"]]))).toEqual({
      seen_at: "2026-07-01T09:30:00Z",
    });
    const half = entryFromForm(def, post([["f_seen_at", "2026-07-01"]]), { timeZone: "Europe/Berlin" });
    expect(half.problems).toEqual([
      { field: "data.seen_at", message: "Examined at: enter both the date and the time" },
    ]);
    const gap = entryFromForm(
      def,
      post([
        ["f_seen_at", "2026-03-29"],
        ["ft_seen_at", "02:30"],
      ]),
      { timeZone: "Europe/Berlin" },
    );
    expect(gap.problems[0].message).toBe(
      "Examined at: 02:30 does not exist on 2026-03-29 in Europe/Berlin (the clocks moved forward); check the time",
    );
    // An unknown zone falls back to UTC rather than failing.
    expect(
      valuesFromForm(
        def,
        post([
          ["f_seen_at", "2026-07-01"],
          ["ft_seen_at", "09:30"],
        ]),
        { timeZone: "Mars/Olympus" },
      ),
    ).toEqual({ seen_at: "2026-07-01T09:30:00+00:00" });
  });

  it("knows IANA zone names and today's date on a zone's clock", () => {
    expect(isTimeZone("Europe/Berlin")).toBe(true);
    expect(isTimeZone("UTC")).toBe(true);
    expect(isTimeZone("Mars/Olympus")).toBe(false);
    expect(isTimeZone("../etc")).toBe(false);
    const t = Date.parse("2026-07-01T23:30:00Z");
    expect(todayIn("UTC", t)).toBe("2026-07-01");
    expect(todayIn("Europe/Berlin", t)).toBe("2026-07-02");
    expect(todayIn("America/Los_Angeles", t)).toBe("2026-07-01");
  });
});

describe("missing-data codes and confirmations", () => {
  it("turns m_/mr_ into missing (the value ignored) and confirm_ into confirmed", () => {
    const e = entryFromForm(
      def,
      post([
        ["f_temp", "41"],
        ["confirm_temp", "on"],
        ["f_visit_date", "2026-02-01"],
        ["m_seen_at", "NOT_DONE"],
        ["mr_seen_at", "  thermometer broken "],
        ["f_seen_at", "2026-02-01"],
        ["f_smoker", "false"],
        ["f_sx", "A"],
        ["f_bmi", "99"],
      ]),
    );
    expect(e).toEqual({
      data: { temp: 41, visit_date: "2026-02-01", smoker: false, sx: ["A"] },
      missing: { seen_at: { code: "NOT_DONE", reason: "thermometer broken" } },
      confirmed: ["temp"],
      problems: [],
    });
  });

  it("keeps a code without a reason so the check can ask for one; empty inputs are left out", () => {
    const e = entryFromForm(
      def,
      post([
        ["m_temp", "NOT_DONE"],
        ["mr_temp", ""],
        ["f_visit_date", ""],
        ["m_visit_date", ""],
      ]),
    );
    expect(e.missing).toEqual({ temp: { code: "NOT_DONE", reason: "" } });
    expect(e.data).toEqual({});
  });

  it("shows the page's own message for a value it could not read in place of the service's", () => {
    expect(
      mergeProblems(
        [
          { field: "data.temp", message: "Temperature must be a number" },
          { field: "data.visit_date", message: "Visit date is required", kind: "error" },
          { field: "data.x", message: "X is high: check it and confirm", kind: "confirm" },
        ],
        [
          { field: "data.temp", message: "Temperature must be a number, written ..." },
          { field: "data.seen_at", message: "Examined at: enter both the date and the time" },
        ],
      ),
    ).toEqual([
      { field: "data.temp", message: "Temperature must be a number, written ...", kind: "error" },
      { field: "data.visit_date", message: "Visit date is required", kind: "error" },
      { field: "data.x", message: "X is high: check it and confirm", kind: "confirm" },
      { field: "data.seen_at", message: "Examined at: enter both the date and the time", kind: "error" },
    ]);
  });
});
