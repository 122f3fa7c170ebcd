/**
 * The verifier's form steps (ADR 0028): a record.saved payload of version 3 seals the SHA-256 of its form version's
 * definition (`formSha256`), the clear values, the calculated values and the missing-data codes; a bundle of it may
 * carry the definition itself (`form.definition`, its stored canonical text). Then the verifier checks, with the
 * same code the server runs (anchoring/forms/check-entry.ts):
 * - `form.definition`: the bundle carries the definition (FORM_DEFINITION_MISSING: `form` sits outside the signed
 *   payload, and the server always attaches it, so deleting it must not turn a failure into "not checked"), it
 *   hashes to `formSha256` and is of the payload's form and version (FORM_DEFINITION_MISMATCH), and it parses,
 *   expressions included (FORM_DEFINITION_INVALID: the server parses it the same way before saving any record on
 *   it, and a definition declares no format version a newer verifier could read);
 * - `form.fields`: every sealed field is a field of that form (FIELD_NOT_IN_FORM), held as its class says (clear in
 *   `values`, identifier and free text in `hashed`, calculated in `calculated`: FIELD_CLASS_MISMATCH), and a
 *   missing-data code is one the field accepts (MISSING_CODE_NOT_ALLOWED);
 * - `form.calculations`: every calculated field recomputed from the clear values equals the sealed one, and no other
 *   is sealed (CALCULATION_MISMATCH, naming the field: "BMI (bmi): sealed 31.2, recomputed 24.7");
 * - `form.visibility`: no field hidden by branching holds a value or a missing-data code (VISIBILITY_MISMATCH).
 * What depends on an identifier or free-text field (sealed only as its salted hash) cannot be recomputed: such
 * fields are named in the step's message and left out: the one case left unchecked. Pure and browser-safe.
 */
import { toHex, utf8 } from "../log/bytes.ts";
import type { Crypto } from "../log/crypto.ts";
import { computeCalculations, visibleFields } from "../forms/check-entry.ts";
import { type FieldDefinition, type FormDefinition, fieldClass, parseFormDefinition } from "../forms/definition.ts";
import { compileExpression } from "../forms/expression.ts";

export const FORM_ERROR_CODES = [
  "FORM_DEFINITION_MISSING",
  "FORM_DEFINITION_INVALID",
  "FORM_DEFINITION_MISMATCH",
  "FIELD_NOT_IN_FORM",
  "FIELD_CLASS_MISMATCH",
  "MISSING_CODE_NOT_ALLOWED",
  "CALCULATION_MISMATCH",
  "VISIBILITY_MISMATCH",
] as const;
export type FormErrorCode = (typeof FORM_ERROR_CODES)[number];

export interface FormStep {
  step: string;
  status: "ok" | "failed" | "not_checked";
  code?: FormErrorCode;
  message: string;
}

type Json = Record<string, unknown>;
const mapOf = (v: unknown): Json => (v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Json) : {});
const shown = (v: unknown) => (v === undefined ? "no value (hidden)" : v === null ? "empty" : JSON.stringify(v));

/**
 * The form steps of a bundle whose payload (already checked against its schema) is `payload` of `kind`; none for
 * an entry that is no record.saved of version 3 or later (older ones seal no form hash).
 */
export function verifyFormSteps(
  crypto: Crypto,
  kind: string,
  payload: Json,
  form: { definition: string } | undefined,
): FormStep[] {
  if (kind !== "record.saved" || typeof payload.formSha256 !== "string") return [];
  const steps: FormStep[] = [];
  const ok = (step: string, message: string) => steps.push({ step, status: "ok", message });
  const bad = (step: string, code: FormErrorCode, message: string) =>
    steps.push({ step, status: "failed", code, message });
  const formName = `form ${String(payload.form)} version ${String(payload.formVersion)}`;

  if (!form) {
    bad(
      "form.definition",
      "FORM_DEFINITION_MISSING",
      `the bundle carries no form definition, but its payload seals one (formSha256) for ${formName}: ` +
        "without it the calculations and branching cannot be checked",
    );
    return steps;
  }
  const got = toHex(crypto.sha256(utf8(form.definition)));
  if (got !== payload.formSha256) {
    bad(
      "form.definition",
      "FORM_DEFINITION_MISMATCH",
      `the bundle's form definition has SHA-256 ${got.slice(0, 16)}…, the payload seals ` +
        `${String(payload.formSha256).slice(0, 16)}… for ${formName}`,
    );
    return steps;
  }
  // Sealed (its hash matched) yet not a definition the server could have saved records on: the server parses it
  // with this same parseFormDefinition (expressions compiled) before any record is entered on it.
  const invalid = (why: string) =>
    bad(
      "form.definition",
      "FORM_DEFINITION_INVALID",
      `the sealed definition of ${formName} is not a valid form definition: ${why}`,
    );
  let json: unknown;
  try {
    json = JSON.parse(form.definition);
  } catch {
    invalid("it is not JSON");
    return steps;
  }
  const parsed = parseFormDefinition(json);
  if (!parsed.ok) {
    invalid(`${parsed.path}: ${parsed.message}`);
    return steps;
  }
  const def: FormDefinition = parsed.definition;
  if (def.code !== payload.form || def.version !== payload.formVersion) {
    bad(
      "form.definition",
      "FORM_DEFINITION_MISMATCH",
      `the sealed form definition is of form ${def.code} version ${def.version}, the payload names ${formName}`,
    );
    return steps;
  }
  ok("form.definition", `the bundle's definition of ${formName} hashes to the sealed formSha256`);

  const values = mapOf(payload.values);
  const hashed = mapOf(payload.hashed);
  const calculated = mapOf(payload.calculated);
  const missing = mapOf(payload.missing);
  const byName = new Map(def.fields.map((f) => [f.name, f]));
  const label = (name: string) => `${byName.get(name)?.label ?? name} (${name})`;

  // form.fields: each sealed field where its class puts it.
  const fieldProblems: { code: FormErrorCode; message: string }[] = [];
  const place = (where: string, names: string[], fits: (f: FieldDefinition) => string | null) => {
    for (const name of names) {
      const f = byName.get(name);
      if (!f) fieldProblems.push({ code: "FIELD_NOT_IN_FORM", message: `${name} (in ${where}) is not a field` });
      else {
        const wrong = fits(f);
        if (wrong)
          fieldProblems.push({
            code: wrong.startsWith("missing") ? "MISSING_CODE_NOT_ALLOWED" : "FIELD_CLASS_MISMATCH",
            message: `${label(name)} ${wrong}`,
          });
      }
    }
  };
  const classOf = (f: FieldDefinition) => (f.type === "calc" ? "calculated" : fieldClass(f));
  place("values", Object.keys(values), (f) => (classOf(f) === "clear" ? null : `is ${classOf(f)}, sealed in clear`));
  place("hashed", Object.keys(hashed), (f) =>
    classOf(f) === "identifier" || classOf(f) === "free_text" ? null : `is ${classOf(f)}, sealed as a hash`,
  );
  place("calculated", Object.keys(calculated), (f) => (f.type === "calc" ? null : "is not calculated"));
  place("missing", Object.keys(missing), (f) => {
    const code = String(mapOf(missing[f.name]).code);
    if (f.type === "calc") return "is calculated, sealed with a missing-data code";
    return f.missingCodes?.includes(code as never) ? null : `missing-data code ${code} is not one the field accepts`;
  });
  if (fieldProblems.length)
    bad("form.fields", fieldProblems[0].code, `${formName}: ${fieldProblems.map((p) => p.message).join("; ")}`);
  else ok("form.fields", `every sealed field is a field of ${formName}, held as its class says`);

  // What cannot be recomputed: fields whose value or visibility depends on a field sealed only as a hash.
  const opaque = unrecomputable(def, new Set(Object.keys(hashed)));
  const notRecomputed = (names: string[], what = "not recomputed") =>
    names.length ? `; ${what} (they depend on a field sealed as a hash): ${names.map(label).join(", ")}` : "";

  // form.calculations.
  let recomputed: Record<string, number | null>;
  let visible: Set<string>;
  try {
    recomputed = computeCalculations(def, values);
    visible = visibleFields(def, values);
  } catch (err) {
    // parseFormDefinition compiled every expression: one that still cannot be evaluated is no definition the server
    // could have saved records on.
    bad(
      "form.calculations",
      "FORM_DEFINITION_INVALID",
      `the expressions of ${formName} cannot be evaluated: ${(err as Error).message}`,
    );
    return steps;
  }
  const calcs = def.fields.filter((f) => f.type === "calc").map((f) => f.name);
  const mismatches: string[] = [];
  for (const name of [...new Set([...calcs, ...Object.keys(calculated)])]) {
    if (opaque.has(name) || !byName.has(name)) continue;
    const sealed = Object.hasOwn(calculated, name) ? calculated[name] : undefined;
    const want = Object.hasOwn(recomputed, name) ? recomputed[name] : undefined;
    if (sealed !== want) mismatches.push(`${label(name)}: sealed ${shown(sealed)}, recomputed ${shown(want)}`);
  }
  const checkedCalcs = calcs.filter((n) => !opaque.has(n));
  if (mismatches.length) bad("form.calculations", "CALCULATION_MISMATCH", mismatches.join("; "));
  else if (calcs.length === 0) ok("form.calculations", `${formName} has no calculated fields`);
  else {
    const each = checkedCalcs.map((n) => `${label(n)} = ${shown(recomputed[n])}`).join(", ") || "none";
    const rest = notRecomputed(calcs.filter((n) => opaque.has(n)));
    ok("form.calculations", `recomputed from the sealed values, equal to the sealed ones: ${each}${rest}`);
  }

  // form.visibility: no hidden field holds a value or a missing-data code.
  const held = [...new Set([...Object.keys(values), ...Object.keys(hashed), ...Object.keys(missing)])];
  const hidden = held.filter((n) => byName.has(n) && !opaque.has(n) && !visible.has(n));
  const condition = (name: string) => {
    const f = byName.get(name)!;
    const section = (def.sections ?? []).find((s) => s.name === f.section);
    const when = [f.showIf, section?.showIf].filter((x) => x !== undefined);
    return when.length ? `shown only when ${when.join(" and ")}` : "hidden by a field it depends on";
  };
  if (hidden.length)
    bad(
      "form.visibility",
      "VISIBILITY_MISMATCH",
      hidden.map((n) => `${label(n)} holds a value, but the form hides it (${condition(n)})`).join("; "),
    );
  else if (!def.fields.some((f) => f.showIf !== undefined) && !(def.sections ?? []).some((s) => s.showIf))
    ok("form.visibility", `${formName} has no branching`);
  else
    ok(
      "form.visibility",
      `no field hidden by branching holds a value${notRecomputed(
        held.filter((n) => opaque.has(n)),
        "not checked",
      )}`,
    );
  return steps;
}

/**
 * The fields whose value or visibility depends, through branching conditions (the field's and its section's) and
 * calculations, on a field of `hashed` (whose value the payload does not hold).
 */
function unrecomputable(def: FormDefinition, hashed: Set<string>): Set<string> {
  const byName = new Map(def.fields.map((f) => [f.name, f]));
  const sections = new Map((def.sections ?? []).map((s) => [s.name, s]));
  const refs = (source: string | undefined): string[] => {
    if (source === undefined) return [];
    try {
      return compileExpression(source).fields;
    } catch {
      return [];
    }
  };
  const deps = (f: FieldDefinition): string[] => [
    ...refs(f.showIf),
    ...refs(f.section === undefined ? undefined : sections.get(f.section)?.showIf),
    ...(f.type === "calc" ? refs(f.expression) : []),
  ];
  const memo = new Map<string, boolean>();
  const depends = (name: string, path: Set<string>): boolean => {
    if (hashed.has(name)) return true;
    const known = memo.get(name);
    if (known !== undefined) return known;
    const f = byName.get(name);
    if (!f || path.has(name)) return false;
    path.add(name);
    const r = deps(f).some((d) => hashed.has(d) || depends(d, path));
    path.delete(name);
    memo.set(name, r);
    return r;
  };
  return new Set(def.fields.filter((f) => deps(f).some((d) => depends(d, new Set([f.name])))).map((f) => f.name));
}
