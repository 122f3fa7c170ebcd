/**
 * The study ODM export's ClinicalData for issue 17 (ADR 0027): a missing-data code is IsNull="Yes" with
 * ts:MissingCode and an Annotation (reason as Comment, code as Flag); a calculated value is an item like an entered
 * one; each row of a repeating form is a FormData with FormRepeatKey = its instance; items sit in the ItemGroupData
 * of their section's item group; the file validates against ODM 1.3.2 with TrialSeal's extension and, without it,
 * against CDISC's schema. Serializer only: the record versions are written here in the records service's shape.
 */
import { XMLParser } from "fast-xml-parser";
import { describe, expect, it } from "vitest";
import { parseFormDefinition, type FormDefinition } from "../../anchoring/forms/definition.ts";
import { validateOdm } from "../../test/helpers/odm-schema.ts";
import { odmItems } from "./study-exports.server.ts";
import { studyOdm } from "./odm.server.ts";
import type { StudyExport } from "./study-data.server.ts";

function def(input: unknown): FormDefinition {
  const p = parseFormDefinition(input);
  if (!p.ok) throw new Error(`${p.path}: ${p.message}`);
  return p.definition;
}
const vitals = def({
  code: "VITALS",
  title: "Vital signs",
  version: 2,
  visits: ["SCREENING"],
  sections: [{ name: "body", title: "Body" }],
  fields: [
    { name: "visit_date", label: "Visit date", type: "date", required: true },
    { name: "height", label: "Height", type: "number", unit: "cm", section: "body" },
    {
      name: "weight",
      label: "Weight",
      type: "number",
      unit: "kg",
      section: "body",
      missingCodes: ["NOT_DONE", "ASKU"],
    },
    { name: "bmi", label: "BMI", type: "calc", expression: "round([weight]*10000/([height]^2),1)", section: "body" },
  ],
});
const ae = def({
  code: "AE",
  title: "Adverse events",
  version: 1,
  visits: ["SCREENING"],
  repeating: true,
  fields: [
    { name: "term", label: "Adverse event", type: "text" },
    { name: "onset", label: "Onset", type: "date", missingCodes: ["UNK"] },
  ],
});

const version = (n: number, extra: Record<string, unknown>) => ({
  version: n,
  formVersion: 1,
  reason: n > 1 ? "source re-read" : null,
  actorId: "u1",
  at: `2026-01-0${n}T00:00:00.000Z`,
  entryId: `e${n}`,
  seq: n,
  leafHash: "ab",
  payloadHash: "cd",
  ...extra,
});

const x = {
  study: { id: "s", code: "ST", title: "Study", status: "active", createdAt: "2026-01-01T00:00:00.000Z" },
  forms: [vitals, ae],
  sites: [{ code: "S1", name: "Site" }],
  participants: [{ subject: "S1-001", site: "S1" }],
  users: new Map([["u1", "Dana Coordinator"]]),
  records: [
    {
      id: "r1",
      subject: "S1-001",
      site: "S1",
      form: "VITALS",
      visit: "SCREENING",
      status: "entered",
      instance: 1,
      signatures: [],
      versions: [
        version(1, {
          values: { visit_date: "2026-01-01", height: 180 },
          missing: { weight: { code: "NOT_DONE", reason: "scale broken & <away>" } },
          calculated: { bmi: null },
        }),
        version(2, {
          values: { visit_date: "2026-01-01", height: 180, weight: 81 },
          missing: {},
          calculated: { bmi: 25 },
        }),
      ],
    },
    ...[1, 2].map((instance) => ({
      id: `ae${instance}`,
      subject: "S1-001",
      site: "S1",
      form: "AE",
      visit: "SCREENING",
      status: "entered",
      instance,
      signatures: [],
      versions: [
        version(instance + 2, {
          values: { term: `event ${instance}` },
          missing: instance === 2 ? { onset: { code: "UNK", reason: "not remembered" } } : {},
          calculated: {},
        }),
      ],
    })),
  ],
} as unknown as StudyExport;

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: "@",
  parseAttributeValue: false,
  parseTagValue: false,
  isArray: (n) => ["FormData", "ItemGroupData", "ItemData"].includes(n),
});

describe("ODM ClinicalData: missing-data codes, calculations, repeating rows", () => {
  const xml = studyOdm(x, new Date("2026-02-01T00:00:00.000Z"));
  const forms = parser.parse(xml).ODM.ClinicalData.SubjectData.StudyEventData.FormData;

  it("validates against ODM 1.3.2 with the extension, and without it against CDISC's schema", async () => {
    expect(await validateOdm(xml)).toEqual({ extension: [], plain: [] });
  });

  it("writes a missing-data code as IsNull with ts:MissingCode, its reason and its code in an Annotation", () => {
    expect(xml).toContain(
      '<ItemData ItemOID="I.VITALS.weight" TransactionType="Insert" IsNull="Yes" ts:MissingCode="NOT_DONE">',
    );
    expect(xml).toContain(
      '<Annotation SeqNum="1"><Comment>scale broken &amp; &lt;away&gt;</Comment><Flag>' +
        '<FlagValue CodeListOID="CL.TS.MISSING">NOT_DONE</FlagValue></Flag></Annotation></ItemData>',
    );
    expect(xml).toContain('<CodeList OID="CL.TS.MISSING"');
    // The correction that replaced the code with a value, and the calculation it made possible.
    expect(xml).toMatch(/<ItemData ItemOID="I.VITALS.weight" TransactionType="Update" Value="81">/);
    expect(xml).toMatch(/<ItemData ItemOID="I.VITALS.bmi" TransactionType="Update" Value="25">/);
    expect(xml).not.toMatch(/I.VITALS.bmi" TransactionType="Insert"/);
  });

  it("puts items in their section's item group, and each row of a repeating form in a FormData of its instance", () => {
    const [vit, ae1, ae2] = forms;
    expect(vit["@FormRepeatKey"]).toBeUndefined();
    expect(vit.ItemGroupData.map((g: any) => [g["@ItemGroupOID"], g.ItemData.map((i: any) => i["@ItemOID"])])).toEqual([
      ["IG.VITALS", ["I.VITALS.visit_date"]],
      ["IG.VITALS.body", ["I.VITALS.height", "I.VITALS.weight", "I.VITALS.weight", "I.VITALS.bmi"]],
    ]);
    expect([ae1["@FormOID"], ae1["@FormRepeatKey"], ae2["@FormRepeatKey"]]).toEqual(["F.AE", "1", "2"]);
    expect(ae2.ItemGroupData[0].ItemData[1]).toMatchObject({ "@ItemOID": "I.AE.onset", "@ts:MissingCode": "UNK" });
  });

  it("reads back as the evidence-package check reads it: a missing code is no value", () => {
    expect(odmItems(xml).map((i) => [i.seq, i.item, i.value])).toEqual([
      [1, "visit_date", "2026-01-01"],
      [1, "height", "180"],
      [1, "weight", null],
      [2, "weight", "81"],
      [2, "bmi", "25"],
      [3, "term", "event 1"],
      [4, "term", "event 2"],
      [4, "onset", null],
    ]);
  });
});
