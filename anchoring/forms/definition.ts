/**
 * CRF form definitions (versioned JSON) and the runtime zod schema derived from one.
 * Used on the server (import, validation of records) and in the browser (live preview).
 */
import { z } from "zod";
import { checkExpressions } from "./expression-checks.ts";

const name = z.string().regex(/^[a-z][a-z0-9_]{0,63}$/, "field names are lower-case letters, digits and _ (max 64)");
const code = z.string().regex(/^[A-Z0-9][A-Z0-9_-]{0,31}$/, "codes are 1-32 capital letters, digits, - or _");
/** An expression in the forms' expression language (docs/forms.md, ADR 0024), compiled by `expression.ts`. */
const expression = z.string().min(1).max(2000);

/**
 * Missing-data codes (HL7 v3 / ISO 21090 NullFlavor, and SDTM's --STAT "NOT DONE"): entered with a reason instead
 * of a value, on fields that allow them.
 */
export const MISSING_CODES = ["NI", "UNK", "ASKU", "NASK", "NA", "NOT_DONE"] as const;
export type MissingCode = (typeof MISSING_CODES)[number];
export const MISSING_CODE_LABELS: Record<MissingCode, string> = {
  NI: "No information",
  UNK: "Unknown",
  ASKU: "Asked but unknown",
  NASK: "Not asked",
  NA: "Not applicable",
  NOT_DONE: "Not done",
};

/**
 * What a sealed payload may hold of a field's value (ADR 0025): `identifier` (names, dates of birth, contact data,
 * record numbers) and `free_text` (notes, narratives, "other, specify") only as salted hashes; `clear` (coded,
 * numeric and date values) as entered. A text field is `free_text` unless it says otherwise.
 */
export const FIELD_CLASSES = ["identifier", "free_text", "clear"] as const;
export type FieldClass = (typeof FIELD_CLASSES)[number];

const base = {
  name,
  label: z.string().min(1).max(200),
  required: z.boolean().optional(),
  help: z.string().max(500).optional(),
  /** The section (of `sections`) the field belongs to; the section's header is shown above its first field. */
  section: name.optional(),
  /** Shown (and, if required, required) only when this expression holds; a hidden field holds no value. */
  showIf: expression.optional(),
  class: z.enum(FIELD_CLASSES).optional(),
  /** The missing-data codes that may be entered, with a reason, instead of a value. */
  missingCodes: z.array(z.enum(MISSING_CODES)).min(1).optional(),
};
const option = z.strictObject({ value: z.string().min(1).max(64), label: z.string().min(1).max(200) });

export const FieldSchema = z.discriminatedUnion("type", [
  z.strictObject({ ...base, type: z.literal("text"), maxLength: z.number().int().positive().max(100_000).optional() }),
  z.strictObject({
    ...base,
    type: z.literal("number"),
    integer: z.boolean().optional(),
    /** A UCUM code ("Cel", "mm[Hg]", "kg/m2"); shown with its human label (units.ts). */
    unit: z.string().max(32).optional(),
    /** Hard limits: a value outside is refused. */
    min: z.number().optional(),
    max: z.number().optional(),
    /** Soft limits: a value outside asks for confirmation and, confirmed, opens an automatic query. */
    softMin: z.number().optional(),
    softMax: z.number().optional(),
  }),
  z.strictObject({ ...base, type: z.literal("date"), notFuture: z.boolean().optional() }),
  z.strictObject({ ...base, type: z.literal("datetime"), notFuture: z.boolean().optional() }),
  z.strictObject({ ...base, type: z.literal("choice"), options: z.array(option).min(1) }),
  z.strictObject({ ...base, type: z.literal("multichoice"), options: z.array(option).min(1) }),
  z.strictObject({ ...base, type: z.literal("boolean") }),
  /**
   * A calculated field: computed by the server (authoritative) from the expression, never entered; its value is a
   * number, or null when an input is empty. `decimals` rounds the result half away from zero.
   */
  z.strictObject({
    name,
    label: z.string().min(1).max(200),
    help: z.string().max(500).optional(),
    section: name.optional(),
    showIf: expression.optional(),
    type: z.literal("calc"),
    expression,
    unit: z.string().max(32).optional(),
    decimals: z.number().int().min(0).max(10).optional(),
  }),
]);

export const SectionSchema = z.strictObject({
  name,
  title: z.string().min(1).max(200),
  /** The section and all its fields are shown only when this expression holds. */
  showIf: expression.optional(),
});

export const FormDefinitionSchema = z
  .strictObject({
    /** The JSON Schema the file follows, for editors ("https://trialseal.org/forms.schema.json"); not used here. */
    $schema: z.string().min(1).max(500).optional(),
    code,
    title: z.string().min(1).max(200),
    version: z.number().int().positive(),
    visits: z.array(code).min(1),
    /** A repeating form (an adverse-event log, concomitant medications): rows added over the study, each a record. */
    repeating: z.boolean().optional(),
    sections: z.array(SectionSchema).optional(),
    fields: z.array(FieldSchema).min(1),
  })
  .superRefine((d, ctx) => {
    const seen = new Set<string>();
    const sections = new Set((d.sections ?? []).map((s) => s.name));
    if (sections.size !== (d.sections ?? []).length)
      ctx.addIssue({ code: "custom", path: ["sections"], message: "duplicate section name" });
    d.fields.forEach((f, i) => {
      if (seen.has(f.name))
        ctx.addIssue({ code: "custom", path: ["fields", i, "name"], message: `duplicate field name ${f.name}` });
      seen.add(f.name);
      if (f.section !== undefined && !sections.has(f.section))
        ctx.addIssue({ code: "custom", path: ["fields", i, "section"], message: `no section ${f.section}` });
      if (f.type === "number" && f.min !== undefined && f.max !== undefined && f.min > f.max)
        ctx.addIssue({ code: "custom", path: ["fields", i, "min"], message: "min is greater than max" });
      if (f.type === "number" && f.softMin !== undefined && f.softMax !== undefined && f.softMin > f.softMax)
        ctx.addIssue({ code: "custom", path: ["fields", i, "softMin"], message: "softMin is greater than softMax" });
      if (
        (f.type === "choice" || f.type === "multichoice") &&
        new Set(f.options.map((o) => o.value)).size !== f.options.length
      )
        ctx.addIssue({ code: "custom", path: ["fields", i, "options"], message: "duplicate option value" });
      if (f.type !== "text" && f.type !== "calc" && f.class === "free_text")
        ctx.addIssue({ code: "custom", path: ["fields", i, "class"], message: "only a text field is free text" });
    });
    if (new Set(d.visits).size !== d.visits.length)
      ctx.addIssue({ code: "custom", path: ["visits"], message: "duplicate visit" });
    // The expression language's checks (references, no calculation over an identifier, no circle): ADR 0024.
    checkExpressions(d, ctx);
  });

/** Whether a field must hold a value (or a missing-data code) when it is shown; a calculated field never is. */
export function isRequired(f: FieldDefinition): boolean {
  return f.type !== "calc" && f.required === true;
}

/** The class of a field: declared, else `free_text` for a text field and `clear` for every other. */
export function fieldClass(f: FieldDefinition): FieldClass {
  if (f.type === "calc") return "clear";
  return f.class ?? (f.type === "text" ? "free_text" : "clear");
}

export type FormDefinition = z.infer<typeof FormDefinitionSchema>;
export type FieldDefinition = z.infer<typeof FieldSchema>;

/** Parse a definition; on failure, the message names the path of the offending field. */
export function parseFormDefinition(
  input: unknown,
): { ok: true; definition: FormDefinition } | { ok: false; path: string; message: string } {
  const r = FormDefinitionSchema.safeParse(input);
  if (r.success) return { ok: true, definition: r.data };
  const i = r.error.issues[0];
  return {
    ok: false,
    path:
      i.path
        .map((p) => (typeof p === "number" ? `[${p}]` : `.${String(p)}`))
        .join("")
        .replace(/^\./, "") || "$",
    message: i.message,
  };
}

const DATE = /^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$/;
const DATETIME = new RegExp(
  String.raw`^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])` +
    String.raw`T([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{1,3})?)?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)$`,
);

/** Whether `s` is a calendar date YYYY-MM-DD that exists (no 30 February). */
export function validDate(s: string): boolean {
  if (!DATE.test(s)) return false;
  const d = new Date(`${s}T00:00:00Z`);
  return !Number.isNaN(d.getTime()) && d.toISOString().startsWith(s);
}

/** Whether `s` is an RFC 3339 date and time with a time zone ("2026-03-01T09:30:00+01:00") on an existing date. */
export function validDateTime(s: string): boolean {
  return DATETIME.test(s) && validDate(s.slice(0, 10));
}

/**
 * A character XML 1.0 cannot carry, not even as a character reference (so no ODM file could hold it): C0 controls
 * other than TAB, LF and CR; U+FFFE and U+FFFF; a lone surrogate. Text holding one is refused at input.
 */
export const XML_UNSAFE = new RegExp(
  String.raw`[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]` +
    String.raw`|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]`,
);

/** The first character of `s` that cannot be stored, as U+XXXX; null when there is none. */
export function xmlUnsafeCharacter(s: string): string | null {
  const m = XML_UNSAFE.exec(s);
  return m ? `U+${m[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, "0")}` : null;
}

/** A zod check refusing such text, in words a coordinator understands: "Notes contains a character ...". */
export const storableText = (what: string) => (s: string, ctx: z.RefinementCtx) => {
  const bad = xmlUnsafeCharacter(s);
  if (bad) ctx.addIssue({ code: "custom", message: `${what} contains a character that cannot be stored (${bad})` });
};

function fieldSchema(f: FieldDefinition): z.ZodType<unknown> {
  switch (f.type) {
    case "text":
      return z
        .string()
        .max(f.maxLength ?? 10_000)
        .superRefine(storableText(f.label));
    case "number": {
      let n = z.number().refine(Number.isFinite, "must be a finite number");
      if (f.integer) n = n.refine(Number.isInteger, "must be a whole number");
      if (f.min !== undefined) n = n.refine((x) => x >= f.min!, `must be at least ${f.min}`);
      if (f.max !== undefined) n = n.refine((x) => x <= f.max!, `must be at most ${f.max}`);
      return n;
    }
    case "date":
      return z.string().refine(validDate, "must be a date YYYY-MM-DD");
    case "datetime":
      return z.string().refine(validDateTime, "must be a date-time with time zone (RFC 3339)");
    case "choice":
      return z.enum(f.options.map((o) => o.value) as [string, ...string[]]);
    case "multichoice":
      return z
        .array(z.enum(f.options.map((o) => o.value) as [string, ...string[]]))
        .refine((a) => new Set(a).size === a.length, "lists an option twice");
    case "boolean":
      return z.boolean();
    case "calc":
      return z.number().nullable();
  }
}

/** The runtime schema of a record's values: strict (unknown fields rejected), required fields enforced. */
/** The runtime schema of a form's records; built once per definition object (definitions are never mutated). */
const schemas = new WeakMap<FormDefinition, z.ZodType<Record<string, unknown>>>();
export function recordSchema(def: FormDefinition) {
  const cached = schemas.get(def);
  if (cached) return cached;
  const shape: Record<string, z.ZodType<unknown>> = {};
  for (const f of def.fields) shape[f.name] = isRequired(f) ? fieldSchema(f) : fieldSchema(f).optional();
  const schema = z.strictObject(shape) as unknown as z.ZodType<Record<string, unknown>>;
  schemas.set(def, schema);
  return schema;
}
