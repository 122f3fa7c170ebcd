/**
 * What an export states about the participants' choices it honours (ADR 0071). The primary and evidence exports
 * (ODM, FHIR, CSV, the evidence package, certified copies, the supply and randomization exports) serve the trial's
 * own use: data collected before a withdrawal are kept (FDA 2008 guidance on data retention; 21 CFR 312.62(c)) and
 * optional choices do not apply. Each format says so in its own place: ODM the root's Description attribute, FHIR
 * a Bundle meta.tag, the evidence package its manifest's `choices`, every download the HTTP header
 * `TrialSeal-Choices`. Data-use deliveries (secondary use) state theirs in their manifest (ADR 0070).
 */
export const PRIMARY_USE_CHOICES =
  "primary use (clinical trial research): all data collected before a withdrawal is kept; " +
  "optional choices do not apply to the trial's own use";
/** The machine-readable code of that statement (HTTP header, FHIR meta.tag code). */
export const PRIMARY_USE_CODE = "primary-use";
/** The HTTP header every export download carries: the code, "; " and the words. */
export const CHOICES_HEADER = "TrialSeal-Choices";
export const choicesHeaderValue = () => `${PRIMARY_USE_CODE}; ${PRIMARY_USE_CHOICES}`;
/** The statement as a text file (CHOICES.txt in the CSV ZIP, README lines of packages). */
export const choicesText = () =>
  `Choices this export honours: ${PRIMARY_USE_CHOICES} (${PRIMARY_USE_CODE}).\n` +
  "Exports for a secondary use (data-use deliveries) leave out participants who declined that use or withdrew.\n";
/** The code system of the FHIR meta.tag stating the choices an export honours. */
export const CHOICES_TAG_SYSTEM = "https://trialseal.org/fhir/CodeSystem/choices-honoured";
/** The FHIR Bundle `meta` of a primary-use export. */
export const primaryUseFhirMeta = () => ({
  tag: [{ system: CHOICES_TAG_SYSTEM, code: PRIMARY_USE_CODE, display: PRIMARY_USE_CHOICES }],
});
