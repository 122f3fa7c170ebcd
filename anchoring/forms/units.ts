/**
 * Units of measure: a form definition names a unit by its UCUM code ("Cel", "mm[Hg]", "kg/m2"); people read its
 * human label ("°C", "mmHg", "kg/m²"). Browser-safe: shown by the entry form and used in error messages.
 */

/** The human label of each UCUM code the forms use; an unknown code is shown as written. */
export const UNIT_LABELS: Readonly<Record<string, string>> = Object.freeze({
  Cel: "°C",
  "[degF]": "°F",
  a: "years",
  mo: "months",
  wk: "weeks",
  d: "days",
  h: "hours",
  min: "minutes",
  s: "seconds",
  "mm[Hg]": "mmHg",
  mmHg: "mmHg",
  kg: "kg",
  g: "g",
  cm: "cm",
  mm: "mm",
  m: "m",
  "kg/m2": "kg/m²",
  m2: "m²",
  "/min": "per minute",
  "{beats}/min": "beats per minute",
  "{breaths}/min": "breaths per minute",
  mL: "mL",
  L: "L",
  mg: "mg",
  ug: "µg",
  "mmol/L": "mmol/L",
  "umol/L": "µmol/L",
  "mg/dL": "mg/dL",
  "g/dL": "g/dL",
  "g/L": "g/L",
  "U/L": "U/L",
  "%": "%",
  "10*9/L": "×10⁹/L",
  "10*12/L": "×10¹²/L",
  "[in_i]": "inches",
  "[lb_av]": "pounds",
});

/** The human label of a UCUM code: "Cel" -> "°C", "a" -> "years"; the code itself when it is not known. */
export function unitLabel(code: string): string {
  return Object.hasOwn(UNIT_LABELS, code) ? UNIT_LABELS[code] : code;
}
