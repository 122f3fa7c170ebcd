import { readFileSync, readdirSync } from "node:fs";
import { Ajv2020 } from "ajv/dist/2020.js";
import { describe, expect, it } from "vitest";
import { parseFormDefinition } from "./definition.ts";
import { FORMS_SCHEMA_ID, formDefinitionJsonSchema, formDefinitionJsonSchemaText } from "./json-schema.ts";

const root = new URL("../../", import.meta.url);
const committed = readFileSync(new URL("docs/forms.schema.json", root), "utf8");
const demoDir = new URL("app/studies/demo/", root);
const demoForms = readdirSync(demoDir)
  .filter((f) => f.endsWith(".form.json"))
  .map((f) => [f, JSON.parse(readFileSync(new URL(f, demoDir), "utf8"))] as const);

const ajv = new Ajv2020({ allErrors: true, strict: true });
const validate = ajv.compile(JSON.parse(committed));

describe("the JSON Schema of form definitions (docs/forms.schema.json)", () => {
  it("is what bin/forms-schema.ts generates from the zod schema (run it after changing definition.ts)", () => {
    expect(committed).toBe(formDefinitionJsonSchemaText());
    expect(formDefinitionJsonSchema()).toMatchObject({
      $schema: "https://json-schema.org/draft/2020-12/schema",
      $id: FORMS_SCHEMA_ID,
      type: "object",
      additionalProperties: false,
    });
  });

  it("validates every demo form, the examples of every feature included, and zod accepts them too", () => {
    expect(demoForms.map(([f]) => f)).toEqual(
      expect.arrayContaining(["vitals.form.json", "demog.form.json", "vitals-v2.form.json", "ae.form.json"]),
    );
    expect(demoForms.map(([f]) => f)).toContain("demog-v2.form.json");
    for (const [file, def] of demoForms) {
      expect(validate(def), `${file}: ${ajv.errorsText(validate.errors)}`).toBe(true);
      expect(parseFormDefinition(def), file).toMatchObject({ ok: true });
    }
  });

  it("a definition may name the schema in $schema, for editors", () => {
    const [, vitals] = demoForms.find(([f]) => f === "vitals-v2.form.json")!;
    const named = { $schema: FORMS_SCHEMA_ID, ...vitals };
    expect(validate(named)).toBe(true);
    expect(parseFormDefinition(named).ok).toBe(true);
    expect(parseFormDefinition({ ...vitals, $schema: "" }).ok).toBe(false);
  });

  it("rejects malformed definitions, as zod does", () => {
    const [, vitals] = demoForms.find(([f]) => f === "vitals-v2.form.json")!;
    const bad = (mutate: (d: any) => void) => {
      const d = structuredClone(vitals);
      mutate(d);
      return d;
    };
    const cases: [string, unknown][] = [
      ["not an object", []],
      ["no fields", bad((d) => delete d.fields)],
      ["an empty field list", bad((d) => (d.fields = []))],
      ["an unknown key", bad((d) => (d.colour = "red"))],
      ["an unknown field key", bad((d) => (d.fields[0].colour = "red"))],
      ["an unknown field type", bad((d) => (d.fields[1].type = "float"))],
      ["a lower-case code", bad((d) => (d.code = "vitals"))],
      ["a field name with a capital", bad((d) => (d.fields[0].name = "VisitDate"))],
      ["version 0", bad((d) => (d.version = 0))],
      ["a fractional version", bad((d) => (d.version = 1.5))],
      ["a number's min as text", bad((d) => (d.fields[1].min = "50"))],
      ["an unknown missing-data code", bad((d) => (d.fields[3].missingCodes = ["MAYBE"]))],
      ["an unknown field class", bad((d) => (d.fields[0].class = "secret"))],
      ["a calc without an expression", bad((d) => delete d.fields[6].expression)],
      ["a calc with a required flag", bad((d) => (d.fields[6].required = true))],
      ["a choice without options", bad((d) => (d.fields[7].options = []))],
      ["a section without a title", bad((d) => delete d.sections[0].title)],
      ["repeating as text", bad((d) => (d.repeating = "yes"))],
    ];
    for (const [what, def] of cases) {
      expect(validate(def), what).toBe(false);
      expect(parseFormDefinition(def).ok, what).toBe(false);
    }
  });
});
