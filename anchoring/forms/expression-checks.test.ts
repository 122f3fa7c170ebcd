import { describe, expect, it, vi } from "vitest";
import { FormDefinitionSchema, parseFormDefinition } from "./definition.ts";

/** A small form using every kind of expression; each test breaks one rule. */
function form() {
  return {
    code: "DEMOG",
    title: "Demographics",
    version: 1,
    visits: ["SCREEN"],
    sections: [
      { name: "basics", title: "Basics" },
      { name: "ae", title: "Adverse events", showIf: "[ae_any] = '1'" },
    ],
    fields: [
      { name: "initials", label: "Initials", type: "text", class: "identifier", section: "basics" },
      { name: "notes", label: "Notes", type: "text", section: "basics" },
      { name: "dob", label: "Date of birth", type: "date", class: "identifier" },
      { name: "visit_date", label: "Visit date", type: "date" },
      {
        name: "sex",
        label: "Sex",
        type: "choice",
        options: [
          { value: "F", label: "Female" },
          { value: "M", label: "Male" },
        ],
      },
      { name: "pregnant", label: "Pregnant", type: "boolean", showIf: "[sex] = 'F'" },
      { name: "weight", label: "Weight", type: "number", unit: "kg" },
      { name: "height", label: "Height", type: "number", unit: "cm" },
      { name: "bmi", label: "BMI", type: "calc", expression: "round([weight]*10000/([height]^2),1)", unit: "kg/m2" },
      { name: "obese", label: "Obese", type: "calc", expression: "if([bmi] >= 30, 1, 0)" },
      {
        name: "symptoms",
        label: "Symptoms",
        type: "multichoice",
        options: [
          { value: "NAUSEA", label: "Nausea" },
          { value: "FEVER", label: "Fever" },
        ],
      },
      { name: "nausea_grade", label: "Nausea grade", type: "number", showIf: "[symptoms(NAUSEA)] = '1'" },
      {
        name: "ae_any",
        label: "Any adverse event?",
        type: "choice",
        options: [
          { value: "1", label: "Yes" },
          { value: "0", label: "No" },
        ],
      },
      { name: "ae_term", label: "Adverse event", type: "text", section: "ae" },
    ],
  };
}
type Form = ReturnType<typeof form>;
type Field = Form["fields"][number] & Record<string, unknown>;

function refused(mutate: (d: Form & { fields: Field[] }) => void) {
  const d = form();
  mutate(d as Form & { fields: Field[] });
  const r = FormDefinitionSchema.safeParse(d);
  expect(r.success).toBe(false);
  return (r.error?.issues ?? []).map((i) => ({ path: i.path.join("."), message: i.message }));
}
const field = (d: Form, name: string) => d.fields.find((f) => f.name === name) as Field;

describe("a form definition's expressions", () => {
  it("accepts conditions and calculations over the form's own fields", () => {
    const r = parseFormDefinition(form());
    expect(r).toMatchObject({ ok: true });
  });

  it("refuses an expression that does not compile, naming the field and the problem", () => {
    expect(refused((d) => (field(d, "pregnant").showIf = "[sex = 'F'"))).toEqual([
      { path: "fields.5.showIf", message: "the condition of Pregnant: a ] is missing after [sex (at character 5)" },
    ]);
    expect(refused((d) => (field(d, "bmi").expression = "today()"))[0]).toMatchObject({
      path: "fields.8.expression",
      message: expect.stringMatching(/^the calculation of BMI: unknown function today: a calculation must be/),
    });
    expect(refused((d) => (d.sections[1].showIf = "[ae_any] = "))[0]).toMatchObject({
      path: "sections.1.showIf",
      message: expect.stringMatching(/^the condition of section Adverse events: the expression ends too early/),
    });
  });

  it("refuses a reference to a field not in the form", () => {
    expect(refused((d) => (field(d, "pregnant").showIf = "[gender] = 'F'"))).toEqual([
      { path: "fields.5.showIf", message: "the condition of Pregnant: there is no field gender in this form" },
    ]);
    expect(refused((d) => (field(d, "bmi").expression = "[weight] / [height_m]^2"))[0].path).toBe(
      "fields.8.expression",
    );
  });

  it("refuses [f(code)] unless f is a multichoice field having that option, and a bare multichoice", () => {
    expect(refused((d) => (field(d, "nausea_grade").showIf = "[symptoms(VOMIT)] = 1"))[0].message).toBe(
      "the condition of Nausea grade: Symptoms has no option VOMIT",
    );
    expect(refused((d) => (field(d, "nausea_grade").showIf = "[sex(F)] = 1"))[0].message).toBe(
      "the condition of Nausea grade: [sex(F)] names an option, but Sex is not a multichoice field",
    );
    expect(refused((d) => (field(d, "nausea_grade").showIf = "[symptoms] = 'NAUSEA'"))[0].message).toBe(
      "the condition of Nausea grade: Symptoms holds several options: name one, as [symptoms(NAUSEA)]",
    );
  });

  it("refuses a calculation over an identifier or free text", () => {
    expect(refused((d) => (field(d, "obese").expression = "datediff([dob],[visit_date],'y')"))).toEqual([
      { path: "fields.9.expression", message: "a calculation cannot use Date of birth: it is an identifier" },
    ]);
    expect(refused((d) => (field(d, "obese").expression = "if([initials] = 'AB', 1, 0)"))[0].message).toBe(
      "a calculation cannot use Initials: it is an identifier",
    );
    expect(refused((d) => (field(d, "obese").expression = "if([notes] = '', 0, 1)"))[0].message).toBe(
      "a calculation cannot use Notes: it is free text",
    );
    // a condition may use them: it is not sealed as a value
    expect(
      parseFormDefinition({
        ...form(),
        fields: form().fields.map((f) => (f.name === "pregnant" ? { ...f, showIf: "[initials] <> ''" } : f)),
      }).ok,
    ).toBe(true);
  });

  it("refuses calculations depending on each other in a circle, or on themselves", () => {
    expect(refused((d) => (field(d, "bmi").expression = "[obese] + [weight]"))).toEqual([
      { path: "fields.8.expression", message: "calculations depend on each other in a circle: bmi -> obese -> bmi" },
    ]);
    expect(refused((d) => (field(d, "bmi").expression = "[bmi] + 1"))).toEqual([
      { path: "fields.8.expression", message: "calculations depend on each other in a circle: bmi -> bmi" },
    ]);
  });

  it("refuses a field shown depending on itself, and a section depending on its own field", () => {
    expect(refused((d) => (field(d, "pregnant").showIf = "[pregnant] = 1 or [sex] = 'F'"))).toEqual([
      { path: "fields.5.showIf", message: "Pregnant cannot be shown depending on its own value" },
    ]);
    expect(refused((d) => (d.sections[1].showIf = "[ae_term] <> ''"))).toEqual([
      {
        path: "sections.1.showIf",
        message: "section Adverse events cannot be shown depending on its own field Adverse event",
      },
    ]);
  });

  it("refuses fields shown depending on each other in a circle, also through a section", () => {
    expect(
      refused((d) => {
        field(d, "pregnant").showIf = "[weight] <> ''";
        Object.assign(field(d, "weight"), { showIf: "[pregnant] = 0" });
      }),
    ).toEqual([
      {
        path: "fields.5.showIf",
        message: "fields are shown depending on each other in a circle: Pregnant -> Weight -> Pregnant",
      },
    ]);
    expect(
      refused((d) => {
        field(d, "ae_any").showIf = "[ae_term] = ''";
      }),
    ).toEqual([
      {
        path: "fields.12.showIf",
        message:
          "fields are shown depending on each other in a circle: " +
          "Any adverse event? -> Adverse event -> Any adverse event?",
      },
    ]);
  });

  it("lists every problem at once", () => {
    const issues = refused((d) => {
      field(d, "pregnant").showIf = "[nope] = 1";
      field(d, "obese").expression = "[initials] + 1";
    });
    expect(issues.map((i) => i.path)).toEqual(["fields.5.showIf", "fields.9.expression"]);
  });

  it("definition.ts and expression-checks.ts import each other without a problem in either order", async () => {
    vi.resetModules(); // a fresh module graph, entered through expression-checks.ts this time
    const checks = await import("./expression-checks.ts");
    const definition = await import("./definition.ts");
    expect(typeof checks.checkExpressions).toBe("function");
    expect(typeof definition.fieldClass).toBe("function");
    expect(definition.parseFormDefinition(form()).ok).toBe(true);
  });
});
