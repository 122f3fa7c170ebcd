import { readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { nastyKey, nastyValue } from "../../test/helpers/fuzz.ts";
import { checkEntry, computeCalculations, type EntryInput, visibleFields } from "./check-entry.ts";
import { type FormDefinition, parseFormDefinition } from "./definition.ts";

function demo(file: string): FormDefinition {
  const r = parseFormDefinition(
    JSON.parse(readFileSync(new URL(`../../app/studies/demo/${file}`, import.meta.url), "utf8")),
  );
  if (!r.ok) throw new Error(`${file}: ${r.path}: ${r.message}`);
  return r.definition;
}

const vitals1 = demo("vitals.form.json");
const vitals = demo("vitals-v2.form.json");
const demog = demo("demog-v2.form.json");
const ae = demo("ae.form.json");

const TODAY = "2026-03-10";
const NOW = Date.parse("2026-03-10T12:00:00Z");
const check = (def: FormDefinition, input: EntryInput) => checkEntry(def, input, { today: TODAY, now: NOW });
const messages = (def: FormDefinition, input: EntryInput) => check(def, input).problems.map((p) => p.message);

const goodVitals = { visit_date: "2026-03-01", sbp: 120, dbp: 80, temp: 36.6, height: 180, weight: 81 };

describe("checkEntry: one entry, every problem at once in plain words", () => {
  it("accepts a complete entry and returns the shown values and the calculations", () => {
    const r = check(vitals, { values: { ...goodVitals, smoker: "N", symptoms: ["NAUSEA"], notes: "calm" } });
    expect(r.problems).toEqual([]);
    expect(r.ok).toBe(true);
    expect(r.values).toEqual({ ...goodVitals, smoker: "N", symptoms: ["NAUSEA"], notes: "calm" });
    expect(r.calculated).toEqual({ bmi: 25 });
    expect(r).toMatchObject({ missing: {}, hidden: [], outsideSoftLimits: [] });
  });

  it("lists every problem in form order, each naming the field's label", () => {
    const r = check(vitals1, {
      values: { sbp: "120", dbp: 80.5, temp: 46, visit_date: "01/03/2026", smoker: "MAYBE", colour: "red" },
    });
    expect(r.ok).toBe(false);
    expect(r.problems).toEqual([
      { field: "sbp", label: "Systolic BP", message: "Systolic BP must be a number", kind: "error" },
      { field: "dbp", label: "Diastolic BP", message: "Diastolic BP must be a whole number", kind: "error" },
      {
        field: "temp",
        label: "Temperature",
        message: "Temperature must be between 30 and 45 °C",
        kind: "error",
      },
      {
        field: "visit_date",
        label: "Visit date",
        message: "Visit date must be a date (YYYY-MM-DD)",
        kind: "error",
      },
      { field: "smoker", label: "Smoker", message: "Smoker: choose one of the listed options", kind: "error" },
      {
        field: "colour",
        label: "colour",
        message: "colour is not a field of form Vital signs (VITALS v1)",
        kind: "error",
      },
    ]);
  });

  it("requires a shown required field; null, absent and blank are no value", () => {
    expect(messages(vitals1, { values: { sbp: null, dbp: "", visit_date: "  " } })).toEqual([
      "Systolic BP is required",
      "Diastolic BP is required",
      "Visit date is required",
    ]);
    // An optional field sent as null (an EDC bridge's blank) is simply no value.
    const r = check(vitals1, { values: { sbp: 120, dbp: 80, visit_date: "2026-03-01", temp: null, notes: null } });
    expect(r.ok).toBe(true);
    expect(r.values).toEqual({ sbp: 120, dbp: 80, visit_date: "2026-03-01" });
  });

  it("states hard limits with the unit's human label: between, at least, at most", () => {
    expect(messages(vitals, { values: { ...goodVitals, sbp: 251 } })).toEqual([
      "Systolic BP must be between 50 and 250 mmHg",
    ]);
    const def = {
      ...vitals1,
      fields: [
        { name: "age", label: "Age", type: "number", unit: "a", min: 18 },
        { name: "dose", label: "Dose", type: "number", unit: "ug", max: 500 },
        { name: "score", label: "Score", type: "number", min: 0, max: 10 },
      ],
    } as FormDefinition;
    expect(messages(def, { values: { age: 17, dose: 501, score: 11 } })).toEqual([
      "Age must be at least 18 years",
      "Dose must be at most 500 µg",
      "Score must be between 0 and 10",
    ]);
    expect(check(def, { values: { age: 18, dose: 500, score: 0 } }).ok).toBe(true);
  });

  it("a number must be a finite JSON number: text, Infinity and NaN are refused", () => {
    for (const sbp of ["120", "12O", Number.POSITIVE_INFINITY, Number.NaN, true, [120], { v: 120 }])
      expect(messages(vitals, { values: { ...goodVitals, sbp } })).toEqual(["Systolic BP must be a number"]);
  });

  it("asks to confirm a value outside the soft limits, and lists it once confirmed", () => {
    const r = check(vitals, { values: { ...goodVitals, temp: 39 } });
    expect(r.ok).toBe(false);
    expect(r.problems).toEqual([
      {
        field: "temp",
        label: "Temperature",
        message: "Temperature is outside the expected range 35–38.5 °C: check it and confirm",
        kind: "confirm",
      },
    ]);
    expect(r.values.temp).toBe(39);
    const ok = check(vitals, { values: { ...goodVitals, temp: 39, sbp: 170 }, confirmed: ["temp", "sbp"] });
    expect(ok.ok).toBe(true);
    expect(ok.outsideSoftLimits).toEqual(["sbp", "temp"]);
    // A hard limit is refused even when confirmed; inside the soft range nothing is asked.
    expect(messages(vitals, { values: { ...goodVitals, temp: 46 }, confirmed: ["temp"] })).toEqual([
      "Temperature must be between 30 and 45 °C",
    ]);
    expect(check(vitals, { values: { ...goodVitals, temp: 38.5 }, confirmed: ["temp"] }).outsideSoftLimits).toEqual([]);
    const oneSided = {
      ...vitals1,
      fields: [
        { name: "hr", label: "Heart rate", type: "number", unit: "{beats}/min", softMin: 40 },
        { name: "glucose", label: "Glucose", type: "number", unit: "mmol/L", softMax: 11 },
      ],
    } as FormDefinition;
    expect(messages(oneSided, { values: { hr: 35, glucose: 12 } })).toEqual([
      "Heart rate is below the expected minimum 40 beats per minute: check it and confirm",
      "Glucose is above the expected maximum 11 mmol/L: check it and confirm",
    ]);
  });

  it("refuses a date in the future where the field says so, by the site's date", () => {
    expect(messages(vitals, { values: { ...goodVitals, visit_date: "2026-03-11" } })).toEqual([
      "Visit date cannot be in the future",
    ]);
    expect(check(vitals, { values: { ...goodVitals, visit_date: TODAY } }).ok).toBe(true);
    // Without notFuture (version 1) a future date is accepted.
    expect(check(vitals1, { values: { sbp: 120, dbp: 80, visit_date: "2027-01-01" } }).ok).toBe(true);
    expect(messages(vitals, { values: { ...goodVitals, visit_date: "2026-02-30" } })).toEqual([
      "Visit date must be a date (YYYY-MM-DD)",
    ]);
  });

  it("a datetime needs a time zone and, where the field says so, is not after now", () => {
    const def = {
      ...vitals1,
      fields: [{ name: "onset_at", label: "Time of onset", type: "datetime", notFuture: true }],
    } as FormDefinition;
    expect(messages(def, { values: { onset_at: "2026-03-10T09:00" } })).toEqual([
      "Time of onset must be a date and time with a time zone",
    ]);
    expect(messages(def, { values: { onset_at: "2026-03-10T13:00:00+00:00" } })).toEqual([
      "Time of onset cannot be in the future",
    ]);
    expect(check(def, { values: { onset_at: "2026-03-10T13:00:00+02:00" } }).ok).toBe(true);
  });

  it("choices, lists of choices, yes/no and text are checked by type", () => {
    expect(
      messages(vitals, {
        values: { ...goodVitals, smoker: "y", symptoms: ["NAUSEA", "NAUSEA"], pregnant: "no", notes: 5 },
      }),
    ).toEqual([
      "Smoker: choose one of the listed options",
      "Symptoms lists an option twice",
      "Pregnant must be yes or no",
      "Notes must be text",
    ]);
    expect(messages(vitals, { values: { ...goodVitals, symptoms: ["COUGH"] } })).toEqual([
      "Symptoms: choose from the listed options",
    ]);
    expect(messages(vitals, { values: { ...goodVitals, symptoms: "NAUSEA" } })).toEqual([
      "Symptoms: choose from the listed options",
    ]);
  });

  it("text: its maximum length and characters no XML file can carry", () => {
    expect(messages(vitals, { values: { ...goodVitals, notes: "x".repeat(501) } })).toEqual([
      "Notes must be at most 500 characters (it has 501)",
    ]);
    expect(messages(vitals, { values: { ...goodVitals, notes: "bad\u0000byte" } })).toEqual([
      "Notes contains a character that cannot be stored (U+0000)",
    ]);
    expect(messages(vitals, { values: { ...goodVitals, notes: "lone \ud800 surrogate" } })).toEqual([
      "Notes contains a character that cannot be stored (U+D800)",
    ]);
    expect(check(vitals, { values: { ...goodVitals, notes: "tab\tand\nnew line, émoji 🩺" } }).ok).toBe(true);
  });

  it("a calculated field is computed, never entered", () => {
    expect(messages(vitals, { values: { ...goodVitals, bmi: 25 } })).toEqual([
      "BMI is calculated; it cannot be entered",
    ]);
    expect(
      messages(vitals, { values: goodVitals, missing: { bmi: { code: "NOT_DONE", reason: "no scale" } } }),
    ).toEqual(["BMI is calculated; it cannot be entered"]);
    // An empty input gives null; the result is rounded to the field's decimals.
    expect(check(vitals, { values: { ...goodVitals, weight: null } }).calculated).toEqual({ bmi: null });
    expect(check(vitals, { values: { ...goodVitals, height: 172, weight: 70.3 } }).calculated).toEqual({ bmi: 23.8 });
  });

  it("missing-data codes: allowed codes with a reason instead of a value", () => {
    const r = check(vitals, {
      values: { ...goodVitals, temp: null, weight: undefined },
      missing: {
        temp: { code: "NOT_DONE", reason: " thermometer broken " },
        weight: { code: "ASKU", reason: "refused" },
      },
    });
    expect(r.problems).toEqual([]);
    expect(r.missing).toEqual({
      temp: { code: "NOT_DONE", reason: "thermometer broken" },
      weight: { code: "ASKU", reason: "refused" },
    });
    expect(r.values).not.toHaveProperty("temp");
    expect(r.calculated).toEqual({ bmi: null });
    // A required field is satisfied by a missing-data code.
    const p = check(demog, {
      values: { initials: "AB", sex: "F", age: 30, consent_datetime: "2026-03-01T09:00:00Z" },
      missing: { pregnant: { code: "ASKU", reason: "declined to answer" } },
    });
    expect(p.problems).toEqual([]);
    expect(p.missing).toEqual({ pregnant: { code: "ASKU", reason: "declined to answer" } });
  });

  it("missing-data codes: refused without a reason, when not allowed, or beside a value", () => {
    const base = { initials: "AB", sex: "F", age: 30, consent_datetime: "2026-03-01T09:00:00Z" };
    const m = (missing: Record<string, unknown>, values: Record<string, unknown> = base) =>
      messages(demog, { values, missing } as EntryInput);
    expect(m({ pregnant: { code: "ASKU", reason: " " } })).toEqual(["Pregnant: give a reason for the missing value"]);
    expect(m({ pregnant: { code: "ASKU" } })).toEqual(["Pregnant: give a reason for the missing value"]);
    expect(m({ pregnant: { code: "NASK", reason: "forgot" } })).toEqual([
      "Pregnant does not accept the missing-data code NASK",
    ]);
    expect(m({ age: { code: "UNK", reason: "no records" } }, { ...base, sex: "M", age: null })).toEqual([
      "Age does not accept the missing-data code UNK",
    ]);
    expect(m({ pregnant: { code: "MAYBE", reason: "x" } })).toEqual([
      "Pregnant: choose a missing-data code from the list",
    ]);
    expect(m({ pregnant: "ASKU" })).toEqual(["Pregnant: choose a missing-data code from the list"]);
    expect(m({ pregnant: { code: "ASKU", reason: "declined" } }, { ...base, pregnant: false })).toEqual([
      "Pregnant has both a value and a missing-data code",
    ]);
    expect(m({ pregnant: { code: "ASKU", reason: "bad\u0001" } })).toEqual([
      "Pregnant: the reason for the missing value contains a character that cannot be stored (U+0001)",
    ]);
    expect(m({ colour: { code: "UNK", reason: "x" } })).toEqual([
      "Pregnant is required",
      "colour is not a field of form Demographics (DEMOG v2)",
    ]);
  });

  it("branching: a hidden field is not required, and what was sent for it is dropped", () => {
    const base = { initials: "AB", age: 30, consent_datetime: "2026-03-01T09:00:00Z" };
    expect(messages(demog, { values: { ...base, sex: "F" } })).toEqual(["Pregnant is required"]);
    const male = check(demog, { values: { ...base, sex: "M" } });
    expect(male.ok).toBe(true);
    expect(visibleFields(demog, { sex: "M" }).has("pregnant")).toBe(false);
    expect(visibleFields(demog, { sex: "F" }).has("pregnant")).toBe(true);
    // A correction from F to M sends the old pregnant value: it is dropped (the record clears it), not refused.
    const corrected = check(demog, { values: { ...base, sex: "M", pregnant: true } });
    expect(corrected.ok).toBe(true);
    expect(corrected.hidden).toEqual(["pregnant"]);
    expect(corrected.values).not.toHaveProperty("pregnant");
    const withCode = check(demog, {
      values: { ...base, sex: "M" },
      missing: { pregnant: { code: "NA", reason: "male" } },
    });
    expect(withCode.hidden).toEqual(["pregnant"]);
    expect(withCode.missing).toEqual({});
    // A wrongly typed value for a hidden field is dropped too: it is not shown, so it cannot be fixed.
    expect(check(demog, { values: { ...base, sex: "M", pregnant: "yes" } }).ok).toBe(true);
  });

  it("branching: a section shown only when its condition holds (repeating AE log)", () => {
    const row = { term: "Headache", onset: "2026-03-02", severity: "MILD", outcome: "RECOVERED" };
    expect(check(ae, { values: { ...row, serious: false } }).ok).toBe(true);
    expect(messages(ae, { values: { ...row, serious: true } })).toEqual(["Date of hospitalisation is required"]);
    expect(check(ae, { values: { ...row, serious: true, hosp_date: "2026-03-03" } }).values).toEqual({
      ...row,
      serious: true,
      hosp_date: "2026-03-03",
    });
    const notSerious = check(ae, { values: { ...row, serious: false, hosp_date: "2026-03-03" } });
    expect(notSerious).toMatchObject({ ok: true, hidden: ["hosp_date"] });
    expect(messages(ae, { values: { ...row, serious: true, hosp_date: "2026-03-11" } })).toEqual([
      "Date of hospitalisation cannot be in the future",
    ]);
    expect(
      check(ae, {
        values: { ...row, onset: null, serious: false },
        missing: { onset: { code: "UNK", reason: "participant does not remember" } },
      }).ok,
    ).toBe(true);
    expect(ae.repeating).toBe(true);
  });

  it("branching: conditions see calculated values, and hiding cascades", () => {
    const def = {
      code: "CASCADE",
      title: "Cascade",
      version: 1,
      visits: ["SCREENING"],
      sections: [{ name: "obese", title: "Obesity", showIf: "[bmi] >= 30" }],
      fields: [
        { name: "height", label: "Height", type: "number" },
        { name: "weight", label: "Weight", type: "number" },
        { name: "bmi", label: "BMI", type: "calc", expression: "[weight]*10000/([height]^2)", decimals: 1 },
        { name: "diet", label: "On a diet", type: "boolean", required: true, section: "obese" },
        { name: "diet_kind", label: "Kind of diet", type: "text", required: true, showIf: "[diet] = 1" },
        { name: "diet_calc", label: "Diet flag", type: "calc", expression: "[diet] + 1", showIf: "[diet] = 1" },
      ],
    } as FormDefinition;
    expect(messages(def, { values: { height: 170, weight: 100 } })).toEqual(["On a diet is required"]);
    const shown = check(def, { values: { height: 170, weight: 100, diet: true } });
    expect(shown.problems.map((p) => p.message)).toEqual(["Kind of diet is required"]);
    expect(shown.calculated).toEqual({ bmi: 34.6, diet_calc: 2 });
    // BMI below 30 hides the section, so diet is dropped, and diet_kind (shown only when diet = 1) with it.
    const hidden = check(def, { values: { height: 170, weight: 60, diet: true, diet_kind: "low fat" } });
    expect(hidden).toMatchObject({ ok: true, hidden: ["diet", "diet_kind"], values: { height: 170, weight: 60 } });
    expect(hidden.calculated).toEqual({ bmi: 20.8 });
    expect(computeCalculations(def, { height: 170, weight: 60, diet: true })).toEqual({ bmi: 20.8 });
    expect([...visibleFields(def, { height: 170, weight: 100, diet: true })]).toEqual([
      "height",
      "weight",
      "bmi",
      "diet",
      "diet_kind",
      "diet_calc",
    ]);
  });

  it("calculations run in dependency order and round half away from zero", () => {
    const def = {
      code: "CALC",
      title: "Calc",
      version: 1,
      visits: ["SCREENING"],
      fields: [
        { name: "total", label: "Total", type: "calc", expression: "[part] * 2" },
        { name: "part", label: "Part", type: "calc", expression: "[a] + [b]", decimals: 2 },
        { name: "neg", label: "Negative", type: "calc", expression: "0 - [a]", decimals: 2 },
        { name: "a", label: "A", type: "number" },
        { name: "b", label: "B", type: "number" },
      ],
    } as FormDefinition;
    expect(computeCalculations(def, { a: 1.005, b: 0 })).toEqual({ total: 2.02, part: 1.01, neg: -1.01 });
    expect(computeCalculations(def, { a: 1 })).toEqual({ total: null, part: null, neg: -1 });
    // Wrongly typed inputs are no value to a calculation.
    expect(computeCalculations(def, { a: "1", b: 2 })).toEqual({ total: null, part: null, neg: null });
    expect(computeCalculations(def, null as unknown as Record<string, unknown>)).toEqual({
      total: null,
      part: null,
      neg: null,
    });
  });

  it("refuses unknown fields by name, prototype keys included, and never pollutes Object.prototype", () => {
    const body = JSON.parse('{"sbp":120,"dbp":80,"visit_date":"2026-03-01","__proto__":{"polluted":1}}');
    expect(check(vitals1, { values: body }).problems).toEqual([
      {
        field: "__proto__",
        label: "__proto__",
        message: "__proto__ is not a field of form Vital signs (VITALS v1)",
        kind: "error",
      },
    ]);
    const ctor = JSON.parse('{"sbp":120,"dbp":80,"visit_date":"2026-03-01","constructor":{"prototype":{"x":1}}}');
    expect(messages(vitals1, { values: ctor })).toEqual(["constructor is not a field of form Vital signs (VITALS v1)"]);
    // Inherited names are not values: a form whose field is named like one is still "no value".
    expect(messages(vitals1, { values: {} })).toEqual([
      "Systolic BP is required",
      "Diastolic BP is required",
      "Visit date is required",
    ]);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(({} as Record<string, unknown>).x).toBeUndefined();
  });

  it("never throws on hostile input: it reports the entry as a whole", () => {
    for (const input of [null, 5, "x", [], { values: [] }, { values: null }, { values: {}, missing: 3 }]) {
      const r = check(vitals1, input as unknown as EntryInput);
      expect(r.ok).toBe(false);
      expect(r.problems.length).toBeGreaterThan(0);
      for (const p of r.problems) expect(p.message).toMatch(/^[A-Z_a-z]/);
    }
    expect(messages(vitals1, { values: [] as unknown as Record<string, unknown> })[0]).toBe(
      "The entry of form Vital signs (VITALS v1) must give its values by field name",
    );
    expect(messages(vitals1, { values: {}, missing: 3 } as unknown as EntryInput)[0]).toBe(
      "The missing-data codes of form Vital signs (VITALS v1) must be given by field name",
    );
  });

  it("any input (property-based): a result with typed problems, never a throw, nothing on Object.prototype", () => {
    const names = ["visit_date", "sbp", "temp", "weight", "bmi", "smoker", "symptoms", "pregnant", "notes"];
    const key = fc.oneof(nastyKey, fc.constantFrom(...names));
    fc.assert(
      fc.property(
        fc.oneof(
          nastyValue,
          fc.record({
            values: fc.oneof(nastyValue, fc.dictionary(key, nastyValue, { maxKeys: 8 })),
            missing: fc.oneof(
              nastyValue,
              fc.dictionary(
                key,
                fc.record({ code: fc.oneof(nastyValue, fc.constantFrom("UNK", "ASKU")), reason: nastyValue }),
              ),
            ),
            confirmed: fc.oneof(nastyValue, fc.array(key)),
          }),
        ),
        (input) => {
          for (const def of [vitals, demog, ae]) {
            const r = check(def, input as EntryInput);
            expect(r.ok).toBe(r.problems.length === 0);
            for (const p of r.problems) {
              expect(typeof p.field).toBe("string");
              expect(p.message).toContain(p.label);
              expect(["error", "confirm"]).toContain(p.kind);
            }
            for (const v of Object.values(r.calculated)) expect(v === null || Number.isFinite(v)).toBe(true);
          }
        },
      ),
    );
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it("caches compiled expressions per definition object (a second check gives the same answer)", () => {
    const a = check(demog, { values: { sex: "F" } });
    const b = check(demog, { values: { sex: "F" } });
    expect(b).toEqual(a);
    const copy = structuredClone(demog);
    expect(check(copy, { values: { sex: "F" } })).toEqual(a);
  });

  it("defaults now to the clock for datetimes", () => {
    const def = {
      ...vitals1,
      fields: [{ name: "at", label: "Time of onset", type: "datetime", notFuture: true }],
    } as FormDefinition;
    expect(checkEntry(def, { values: { at: "2999-01-01T00:00:00Z" } }, { today: TODAY }).problems[0].message).toBe(
      "Time of onset cannot be in the future",
    );
    expect(checkEntry(def, { values: { at: "2000-01-01T00:00:00Z" } }, { today: TODAY }).ok).toBe(true);
  });
});
