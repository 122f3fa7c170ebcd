/**
 * CRF form definitions (versioned JSON) and the runtime zod schema derived from one.
 * Used on the server (import, validation of records) and in the browser (live preview).
 */
import { z } from "zod";

const name = z.string().regex(/^[a-z][a-z0-9_]{0,63}$/, "field names are lower-case letters, digits and _ (max 64)");
const code = z.string().regex(/^[A-Z0-9][A-Z0-9_-]{0,31}$/, "codes are 1-32 capital letters, digits, - or _");
const base = {
  name,
  label: z.string().min(1).max(200),
  required: z.boolean().optional(),
  help: z.string().max(500).optional(),
};
const option = z.strictObject({ value: z.string().min(1).max(64), label: z.string().min(1).max(200) });

export const FieldSchema = z.discriminatedUnion("type", [
  z.strictObject({ ...base, type: z.literal("text"), maxLength: z.number().int().positive().max(100_000).optional() }),
  z.strictObject({
    ...base,
    type: z.literal("number"),
    integer: z.boolean().optional(),
    unit: z.string().max(32).optional(),
    min: z.number().optional(),
    max: z.number().optional(),
  }),
  z.strictObject({ ...base, type: z.literal("date") }),
  z.strictObject({ ...base, type: z.literal("datetime") }),
  z.strictObject({ ...base, type: z.literal("choice"), options: z.array(option).min(1) }),
  z.strictObject({ ...base, type: z.literal("multichoice"), options: z.array(option).min(1) }),
  z.strictObject({ ...base, type: z.literal("boolean") }),
]);

export const FormDefinitionSchema = z
  .strictObject({
    code,
    title: z.string().min(1).max(200),
    version: z.number().int().positive(),
    visits: z.array(code).min(1),
    fields: z.array(FieldSchema).min(1),
  })
  .superRefine((d, ctx) => {
    const seen = new Set<string>();
    d.fields.forEach((f, i) => {
      if (seen.has(f.name))
        ctx.addIssue({ code: "custom", path: ["fields", i, "name"], message: `duplicate field name ${f.name}` });
      seen.add(f.name);
      if (f.type === "number" && f.min !== undefined && f.max !== undefined && f.min > f.max)
        ctx.addIssue({ code: "custom", path: ["fields", i, "min"], message: "min is greater than max" });
      if (
        (f.type === "choice" || f.type === "multichoice") &&
        new Set(f.options.map((o) => o.value)).size !== f.options.length
      )
        ctx.addIssue({ code: "custom", path: ["fields", i, "options"], message: "duplicate option value" });
    });
    if (new Set(d.visits).size !== d.visits.length)
      ctx.addIssue({ code: "custom", path: ["visits"], message: "duplicate visit" });
  });

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

function validDate(s: string): boolean {
  if (!DATE.test(s)) return false;
  const d = new Date(`${s}T00:00:00Z`);
  return !Number.isNaN(d.getTime()) && d.toISOString().startsWith(s);
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
      return z
        .string()
        .refine((s) => DATETIME.test(s) && validDate(s.slice(0, 10)), "must be a date-time with time zone (RFC 3339)");
    case "choice":
      return z.enum(f.options.map((o) => o.value) as [string, ...string[]]);
    case "multichoice":
      return z
        .array(z.enum(f.options.map((o) => o.value) as [string, ...string[]]))
        .refine((a) => new Set(a).size === a.length, "lists an option twice");
    case "boolean":
      return z.boolean();
  }
}

/** The runtime schema of a record's values: strict (unknown fields rejected), required fields enforced. */
/** The runtime schema of a form's records; built once per definition object (definitions are never mutated). */
const schemas = new WeakMap<FormDefinition, z.ZodType<Record<string, unknown>>>();
export function recordSchema(def: FormDefinition) {
  const cached = schemas.get(def);
  if (cached) return cached;
  const shape: Record<string, z.ZodType<unknown>> = {};
  for (const f of def.fields) shape[f.name] = f.required ? fieldSchema(f) : fieldSchema(f).optional();
  const schema = z.strictObject(shape) as unknown as z.ZodType<Record<string, unknown>>;
  schemas.set(def, schema);
  return schema;
}
