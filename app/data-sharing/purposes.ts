/**
 * The purposes a participant's data may be used for, from HL7 v3 PurposeOfUse (code system
 * http://terminology.hl7.org/CodeSystem/v3-ActReason, the value set FHIR R4 Consent.provision.purpose binds to),
 * limited to the uses a trial's data is asked for (ADR 0066). `words` is how a participant reads it; `display` is
 * the code system's own display. Pure: used by the portal, the consent document parser and the FHIR export.
 */
export const PURPOSE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ActReason";

export const PURPOSES = {
  CLINTRCH: { display: "clinical trial research", words: "this clinical trial" },
  HRESCH: { display: "healthcare research", words: "other medical research" },
  BIORCH: { display: "biomedical research", words: "biomedical research (for example on samples or genes)" },
  DSRCH: { display: "disease specific healthcare research", words: "research on the same disease" },
  TRANSRCH: { display: "translational healthcare research", words: "research to turn findings into treatments" },
  POARCH: {
    display: "population origins or ancestry healthcare research",
    words: "research on population origins or ancestry",
  },
  PUBHLTH: { display: "public health", words: "public health" },
  HQUALIMP: { display: "health quality improvement", words: "improving the quality of care" },
  TRAIN: { display: "training", words: "training of health professionals" },
  HMARKT: { display: "healthcare marketing", words: "marketing of health products" },
} as const;

export type PurposeCode = keyof typeof PURPOSES;
export const PURPOSE_CODES = Object.keys(PURPOSES) as PurposeCode[];

export function isPurposeCode(code: string): code is PurposeCode {
  return Object.hasOwn(PURPOSES, code);
}

/** "other medical research": how a participant reads a purpose (words only, never the code). */
export function purposeInPlainWords(code: string): string {
  return isPurposeCode(code) ? PURPOSES[code].words : "a purpose the study has not described";
}

/** "other medical research (HRESCH)": how a staff page names a purpose. */
export function purposeInWords(code: string): string {
  return isPurposeCode(code) ? `${PURPOSES[code].words} (${code})` : code;
}
