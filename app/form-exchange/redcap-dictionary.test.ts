/**
 * REDCap data dictionaries (ADR 0029): a realistic 49-field dictionary in REDCap's exact 18-column layout
 * (test/fixtures/redcap-dictionary.csv) imports with the documented mapping, exports back to the same layout and
 * imports again to the same definitions; a dictionary with bad rows names every bad row and column at once.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parse } from "csv-parse/sync";
import type { FieldDefinition, FormDefinition } from "../../anchoring/forms/definition.ts";
import {
  compileExpression,
  evaluateCalculation,
  evaluateExpression,
  isTruthy,
} from "../../anchoring/forms/expression.ts";
import { REDCAP_COLUMNS, formsToRedcapDictionary, redcapDictionaryToForms } from "./redcap-dictionary.ts";
import { detectFormFormat } from "./form-format.ts";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const FIXTURE = readFileSync(path.join(ROOT, "test", "fixtures", "redcap-dictionary.csv"), "utf8");
const OPTS = { visits: ["SCREENING", "WEEK4"], repeating: ["adverse_events"] };

const field = (forms: FormDefinition[], name: string): FieldDefinition => {
  for (const f of forms) for (const x of f.fields) if (x.name === name) return x;
  throw new Error(`no field ${name}`);
};

/** A dictionary from rows of [variable, form, type, label, extra cells by column name]. */
function dictionary(rows: [string, string, string, string, Partial<Record<string, string>>?][]): string {
  const q = (s: string) => `"${s.replace(/"/g, '""')}"`;
  const lines = [REDCAP_COLUMNS.map(q).join(",")];
  for (const [name, form, type, label, extra = {}] of rows) {
    const cells = REDCAP_COLUMNS.map((c) => extra[c] ?? "");
    cells[0] = name;
    cells[1] = form;
    cells[3] = type;
    cells[4] = label;
    lines.push(cells.map(q).join(","));
  }
  return `${lines.join("\n")}\n`;
}

describe("a REDCap data dictionary", () => {
  const { forms, problems } = redcapDictionaryToForms(FIXTURE, OPTS);

  it("imports a realistic 49-field dictionary: each instrument a form, record_id the subject code", () => {
    expect(problems).toEqual([]);
    const rows = parse(FIXTURE, { bom: true }) as string[][];
    expect(rows[0]).toEqual([...REDCAP_COLUMNS]);
    expect(rows.length - 2).toBeGreaterThanOrEqual(40);
    expect(forms.map((f) => [f.code, f.title, f.version, f.visits, f.repeating ?? false])).toEqual([
      ["DEMOGRAPHICS", "Demographics", 1, ["SCREENING", "WEEK4"], false],
      ["VITAL_SIGNS", "Vital signs", 1, ["SCREENING", "WEEK4"], false],
      ["MEDICAL_HISTORY", "Medical history", 1, ["SCREENING", "WEEK4"], false],
      ["ADVERSE_EVENTS", "Adverse events", 1, ["SCREENING", "WEEK4"], true],
    ]);
    // Every row but record_id and the descriptive one is a field.
    expect(forms.reduce((n, f) => n + f.fields.length, 0)).toBe(rows.length - 3);
    expect(forms.flatMap((f) => f.fields.map((x) => x.name))).not.toContain("record_id");
  });

  it("maps types, identifiers, soft limits, notes, sections and branching as ADR 0029 says", () => {
    expect(field(forms, "first_name")).toMatchObject({ type: "text", class: "identifier" });
    expect(field(forms, "initials")).toMatchObject({
      type: "text",
      class: "identifier",
      required: true,
      help: "First, middle and last initial",
      section: "initials",
    });
    expect(field(forms, "dob")).toEqual({
      name: "dob",
      label: "Date of birth",
      type: "date",
      notFuture: true,
      required: true,
      section: "initials",
    });
    expect(field(forms, "demog_comments")).toEqual({
      name: "demog_comments",
      label: "Comments",
      type: "text",
      class: "free_text",
      section: "sex",
    });
    expect(field(forms, "pregnant")).toMatchObject({
      type: "choice",
      options: [
        { value: "1", label: "Yes" },
        { value: "0", label: "No" },
      ],
      showIf: "[sex] = '1' and [age] >= 12",
      required: true,
    });
    expect(field(forms, "interpreter")).toMatchObject({ type: "boolean" });
    expect(field(forms, "race")).toMatchObject({ type: "multichoice" });
    expect(field(forms, "race_other")).toMatchObject({ showIf: "[race(99)] = '1'" });
    expect(field(forms, "sex")).toMatchObject({
      type: "choice",
      options: [
        { value: "1", label: "Female" },
        { value: "2", label: "Male" },
        { value: "3", label: "Intersex" },
      ],
    });
    // REDCap's Text Validation Min/Max are soft: outside asks for confirmation, never refuses.
    expect(field(forms, "height")).toEqual({
      name: "height",
      label: "Height (cm)",
      type: "number",
      softMin: 120,
      softMax: 220,
      required: true,
      section: "height",
    });
    expect(field(forms, "sbp")).toMatchObject({ type: "number", integer: true, softMin: 80, softMax: 200 });
    expect(field(forms, "resp_rate")).toMatchObject({ integer: true, softMin: 8, softMax: 30 });
    expect(field(forms, "pain")).toMatchObject({ type: "number", integer: true, min: 0, max: 100 });
    expect(field(forms, "vs_date")).toMatchObject({ type: "date", section: "vs_instructions" });
    expect(field(forms, "ae_start")).toMatchObject({ type: "date", notFuture: true });
    const vitals = forms.find((f) => f.code === "VITAL_SIGNS")!;
    expect(vitals.sections?.[0]).toEqual({
      name: "vs_instructions",
      title: "Measure after five minutes seated, on the non-dominant arm.",
    });
    expect(field(forms, "mh_conditions")).toMatchObject({ type: "multichoice", showIf: "[mh_any] = '1'" });
  });

  it("keeps calculations as REDCap wrote them, and they compute as REDCap does", () => {
    const bmi = field(forms, "bmi");
    expect(bmi).toMatchObject({ type: "calc", expression: "round([weight] / (([height] / 100) ^ 2), 1)" });
    const c = compileExpression((bmi as { expression: string }).expression);
    expect(evaluateCalculation(c, { weight: 70, height: 175 })).toBe(22.9);
    const age = field(forms, "age") as { expression: string };
    expect(age.expression).toBe('rounddown(datediff([dob],[enrol_date],"y","ymd"),0)');
    expect(
      evaluateCalculation(compileExpression(age.expression), { dob: "1980-06-15", enrol_date: "2026-06-14" }),
    ).toBe(45);
    const branch = compileExpression((field(forms, "pregnant") as { showIf: string }).showIf);
    expect(isTruthy(evaluateExpression(branch, { sex: "1", age: 30 }))).toBe(true);
    expect(isTruthy(evaluateExpression(branch, { sex: "2", age: 30 }))).toBe(false);
  });

  it("round-trips: import, export in REDCap's exact layout, import again gives the same definitions", () => {
    const exported = formsToRedcapDictionary(forms);
    const rows = parse(exported) as string[][];
    expect(rows[0]).toEqual([...REDCAP_COLUMNS]);
    expect(rows[1].slice(0, 5)).toEqual(["record_id", "demographics", "", "text", "Record ID"]);
    expect(rows.every((r) => r.length === 18)).toBe(true);
    expect(rows.find((r) => r[0] === "vs_instructions")?.[3]).toBe("descriptive");
    expect(rows.find((r) => r[0] === "pregnant")?.[3]).toBe("yesno");
    expect(rows.find((r) => r[0] === "height")?.slice(7, 10)).toEqual(["number", "120", "220"]);
    expect(rows.find((r) => r[0] === "first_name")?.[10]).toBe("y");
    const again = redcapDictionaryToForms(exported, OPTS);
    expect(again.problems).toEqual([]);
    expect(again.forms).toEqual(forms);
    expect(formsToRedcapDictionary(again.forms)).toBe(exported);
  });

  it("defuses spreadsheet formulas on export and takes the defusing off on import; negative codes stay", () => {
    const def: FormDefinition = {
      code: "TRICKY",
      title: "Tricky",
      version: 1,
      visits: ["SCREENING"],
      fields: [
        { name: "a", label: '=HYPERLINK("x")', type: "text" },
        { name: "b", label: "- other, specify", type: "text" },
        {
          name: "c",
          label: 'Quoted "answer"',
          type: "choice",
          options: [
            { value: "-1", label: "Not applicable" },
            { value: "1", label: "Yes, with a comma" },
          ],
        },
        { name: "d", label: "Change", type: "number", softMin: -10, softMax: 10 },
      ],
    };
    const exported = formsToRedcapDictionary([def]);
    const rows = parse(exported) as string[][];
    expect(rows[2][4]).toBe('\'=HYPERLINK("x")');
    expect(rows[3][4]).toBe("'- other, specify");
    expect(rows[4][5]).toBe("-1, Not applicable | 1, Yes, with a comma");
    expect(rows[5][8]).toBe("-10");
    const back = redcapDictionaryToForms(exported, { visits: ["SCREENING"] });
    expect(back.problems).toEqual([]);
    expect(back.forms).toEqual([def]);
  });

  it("lists every bad row at once, with its line and column, and imports nothing", () => {
    const csv = dictionary([
      ["record_id", "screening", "text", "Record ID"],
      ["site_ok", "screening", "text", "Site"], // line 3: fine
      ["scan", "screening", "file", "Upload the scan"], // line 4
      ["eligible", "screening", "radio", "Eligible?", { [REDCAP_COLUMNS[5]]: "1 Yes | 0, No" }], // line 5
      ["weight", "screening", "text", "Weight", { [REDCAP_COLUMNS[7]]: "number", [REDCAP_COLUMNS[8]]: "abc" }], // 6
      ["bad_if", "screening", "text", "Shown oddly", { [REDCAP_COLUMNS[11]]: "[weight] > 3 xor [site_ok]" }], // 7
      ["first_name", "screening", "text", "First name", { [REDCAP_COLUMNS[10]]: "y" }], // line 8
      ["name_len", "screening", "calc", "Name length", { [REDCAP_COLUMNS[5]]: "[first_name] + 1" }], // line 9
      ["other_form", "screening", "text", "Refers elsewhere", { [REDCAP_COLUMNS[11]]: "[ae_term] = 'x'" }], // 10
      ["note_text", "screening", "descriptive", "Read this", { [REDCAP_COLUMNS[11]]: "[site_ok] = '1'" }], // 11
      ["Bad Name", "screening", "text", "Bad"], // line 12
      [
        "visit_day",
        "screening",
        "text",
        "Visit date",
        { [REDCAP_COLUMNS[7]]: "date_ymd", [REDCAP_COLUMNS[8]]: "2020-01-01" },
      ],
      ["sig", "screening", "signature", "Sign here"], // line 14
      ["picked", "screening", "sql", "Pick"], // line 15
    ]);
    const withShortRow = `${csv}"short","screening","text"\n`; // line 16
    const r = redcapDictionaryToForms(withShortRow, { visits: ["SCREENING"] });
    expect(r.forms).toEqual([]);
    const at = r.problems.map((p) => [p.row, p.column ?? null]);
    expect(at).toEqual(
      expect.arrayContaining([
        [4, "Field Type"],
        [5, "Choices, Calculations, OR Slider Labels"],
        [6, "Text Validation Min"],
        [7, "Branching Logic (Show field only if...)"],
        [9, "Choices, Calculations, OR Slider Labels"],
        [10, "Branching Logic (Show field only if...)"],
        [11, "Branching Logic (Show field only if...)"],
        [12, "Variable / Field Name"],
        [13, "Text Validation Min"],
        [14, "Field Type"],
        [15, "Field Type"],
        [16, null],
      ]),
    );
    expect(new Set(r.problems.map((p) => p.row))).toEqual(new Set([4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16]));
    const message = (row: number) =>
      r.problems
        .filter((p) => p.row === row)
        .map((p) => p.message)
        .join(" / ");
    expect(message(4)).toMatch(/file fields cannot be imported/);
    expect(message(5)).toMatch(/"1 Yes" has no code/);
    expect(message(6)).toMatch(/"abc" is not a number/);
    expect(message(9)).toMatch(/identifier|First name/);
    expect(message(10)).toMatch(/no field ae_term/);
    expect(message(16)).toMatch(/3 columns; a data dictionary row has 18/);
  });

  it("names the line of a row after a label that spans lines, and refuses a file that is not a dictionary", () => {
    const csv = dictionary([
      ["record_id", "f", "text", "ID"],
      ["a", "f", "text", "Line one\nline two"],
      ["b", "f", "wrong", "B"],
    ]);
    expect(redcapDictionaryToForms(csv, { visits: ["V1"] }).problems).toEqual([
      { row: 5, column: "Field Type", message: '"wrong" is not a field type TrialSeal can import' },
    ]);
    const notOurs = redcapDictionaryToForms("name,form,type\nx,y,z\n", { visits: ["V1"] });
    expect(notOurs.forms).toEqual([]);
    expect(notOurs.problems).toHaveLength(1);
    expect(notOurs.problems[0]).toMatchObject({ row: 1, message: /not REDCap's data dictionary header/ });
    expect(redcapDictionaryToForms('"unclosed,\n', { visits: ["V1"] }).problems[0].message).toMatch(/not readable CSV/);
  });

  it("marks a named instrument repeating, and names an instrument that is not there", () => {
    const r = redcapDictionaryToForms(FIXTURE, { visits: ["SCREENING"], repeating: ["ADVERSE_EVENTS", "conmeds"] });
    expect(r.problems).toEqual([
      { row: 1, column: "Form Name", message: "no instrument named conmeds to mark repeating" },
    ]);
  });
});

describe("detectFormFormat", () => {
  it("tells JSON, ODM and REDCap apart by content first, then by the file's extension", () => {
    expect(detectFormFormat('{"code":"X"}')).toBe("json");
    expect(detectFormFormat("\uFEFF[ ]", "forms.txt")).toBe("json");
    expect(detectFormFormat('<?xml version="1.0"?>\n<!-- x -->\n<ODM xmlns="http://www.cdisc.org/ns/odm/v1.3">')).toBe(
      "odm",
    );
    expect(detectFormFormat("<odm:ODM xmlns:odm='x'/>")).toBe("odm");
    expect(detectFormFormat(FIXTURE, "dictionary.txt")).toBe("redcap");
    expect(detectFormFormat('"Variable / Field Name","Form Name"')).toBe("redcap");
    expect(detectFormFormat("<html></html>", "page.html")).toBeNull();
    expect(detectFormFormat("a,b\n1,2", "data.csv")).toBe("redcap");
    expect(detectFormFormat("hello", "x.xml")).toBe("odm");
    expect(detectFormFormat("hello")).toBeNull();
  });
});
