import { describe, expect, it } from "vitest";
import { unitLabel } from "./units.ts";

describe("unit labels", () => {
  it("shows each UCUM code the forms use with its human label", () => {
    const cases: [string, string][] = [
      ["Cel", "°C"],
      ["a", "years"],
      ["mo", "months"],
      ["wk", "weeks"],
      ["d", "days"],
      ["h", "hours"],
      ["min", "minutes"],
      ["mm[Hg]", "mmHg"],
      ["mmHg", "mmHg"],
      ["kg", "kg"],
      ["g", "g"],
      ["cm", "cm"],
      ["m", "m"],
      ["kg/m2", "kg/m²"],
      ["/min", "per minute"],
      ["{beats}/min", "beats per minute"],
      ["mL", "mL"],
      ["L", "L"],
      ["mg", "mg"],
      ["ug", "µg"],
      ["mmol/L", "mmol/L"],
      ["mg/dL", "mg/dL"],
      ["g/dL", "g/dL"],
      ["%", "%"],
      ["10*9/L", "×10⁹/L"],
      ["[in_i]", "inches"],
      ["[lb_av]", "pounds"],
    ];
    for (const [code, label] of cases) expect(unitLabel(code), code).toBe(label);
  });

  it("shows an unknown code as written, and never a property of Object.prototype", () => {
    expect(unitLabel("[iU]/L")).toBe("[iU]/L");
    expect(unitLabel("constructor")).toBe("constructor");
    expect(unitLabel("__proto__")).toBe("__proto__");
    expect(unitLabel("")).toBe("");
  });
});
