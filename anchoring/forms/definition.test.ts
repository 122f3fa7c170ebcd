import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parseFormDefinition, recordSchema } from "./definition.ts";

const vitals = JSON.parse(readFileSync(new URL("../../app/studies/demo/vitals.form.json", import.meta.url), "utf8"));

describe("CRF form definitions", () => {
  it("accepts the demo forms", () => {
    for (const f of ["vitals", "demog"]) {
      const def = JSON.parse(readFileSync(new URL(`../../app/studies/demo/${f}.form.json`, import.meta.url), "utf8"));
      expect(parseFormDefinition(def).ok).toBe(true);
    }
  });

  it("rejects malformed definitions with the path of the offending field", () => {
    const bad = (mutate: (d: any) => void) => {
      const d = structuredClone(vitals);
      mutate(d);
      return parseFormDefinition(d);
    };
    expect(bad((d) => (d.fields[2].type = "float"))).toMatchObject({ ok: false, path: "fields[2].type" });
    expect(bad((d) => (d.fields[0].colour = "red"))).toMatchObject({ ok: false, path: "fields[0]" });
    expect(bad((d) => (d.fields[1].name = "sbp"))).toMatchObject({
      ok: false,
      path: "fields[1].name",
      message: "duplicate field name sbp",
    });
    expect(bad((d) => (d.version = 0))).toMatchObject({ ok: false, path: "version" });
    expect(bad((d) => (d.fields[0].min = 300))).toMatchObject({ ok: false, path: "fields[0].min" });
  });

  it("derives a strict runtime schema: types, ranges, required fields, options", () => {
    const parsed = parseFormDefinition(vitals);
    if (!parsed.ok) throw new Error("demo form invalid");
    const s = recordSchema(parsed.definition);
    const good = {
      sbp: 120,
      dbp: 80,
      temp: 36.65,
      visit_date: "2026-03-01",
      smoker: "N",
      symptoms: ["NAUSEA"],
      pregnant: false,
    };
    expect(s.safeParse(good).success).toBe(true);
    expect(s.safeParse({ ...good, sbp: 120.5 }).success).toBe(false);
    expect(s.safeParse({ ...good, sbp: 251 }).success).toBe(false);
    expect(s.safeParse({ ...good, visit_date: "2026-02-30" }).success).toBe(false);
    expect(s.safeParse({ ...good, smoker: "MAYBE" }).success).toBe(false);
    expect(s.safeParse({ ...good, symptoms: ["NAUSEA", "NAUSEA"] }).success).toBe(false);
    expect(s.safeParse({ ...good, extra: 1 }).success).toBe(false);
    const { sbp: _omit, ...missing } = good;
    expect(s.safeParse(missing).success).toBe(false);
    // Any finite number in range is kept as parsed, not rounded.
    expect(s.parse({ ...good, temp: 36.123456789 }).temp).toBe(36.123456789);
  });
});
