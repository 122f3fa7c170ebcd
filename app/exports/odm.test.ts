/**
 * The ODM writer's escaping, read back by libxml2 (a conforming parser): line breaks, tabs and CRs in attribute
 * values and element content come back exactly; characters XML 1.0 cannot carry (only in data stored before input
 * refused them) become U+FFFD, visibly, and the file stays well-formed. Input refuses such text, naming the field.
 */
import { XMLParser } from "fast-xml-parser";
import { describe, expect, it } from "vitest";
import { parseFormDefinition, recordSchema, xmlUnsafeCharacter } from "../../anchoring/forms/definition.ts";
import { studyOdm } from "./odm.server.ts";
import type { StudyExport } from "./study-data.server.ts";

const def = parseFormDefinition({
  code: "NOTES",
  title: "Notes\r\n& more",
  version: 1,
  visits: ["V1"],
  fields: [{ name: "notes", label: "Notes", type: "text" }],
});
if (!def.ok) throw new Error(def.message);

function exportWith(values: Record<string, unknown>[], reason: string): StudyExport {
  return {
    study: { id: "s", code: "ST", title: "Study", status: "active", createdAt: "2026-01-01T00:00:00.000Z" },
    forms: [def.ok ? def.definition : (null as never)],
    sites: [{ code: "S1", name: "Site" }],
    participants: [{ subject: "S1-001", site: "S1" }],
    records: [
      {
        id: "r1",
        subject: "S1-001",
        site: "S1",
        form: "NOTES",
        visit: "V1",
        status: "entered",
        signatures: [],
        versions: values.map((v, i) => ({
          version: i + 1,
          formVersion: 1,
          values: v,
          reason: i ? reason : null,
          actorId: null,
          at: "2026-01-02T00:00:00.000Z",
          entryId: `e${i}`,
          seq: i + 1,
          leafHash: "ab",
          payloadHash: "cd",
        })),
      },
    ],
    users: new Map(),
  } as unknown as StudyExport;
}

/** ItemData values and ReasonForChange texts as libxml2 reads them (through its canonical form, C14N). */
async function read(xml: string) {
  const { validateXML } = await import("xmllint-wasm");
  const r = await validateXML({ xml: [{ fileName: "odm.xml", contents: xml }], normalization: "c14n" });
  expect(r.errors.map((e) => e.message)).toEqual([]);
  const doc = new XMLParser({
    ignoreAttributes: false,
    attributeNamePrefix: "@",
    parseAttributeValue: false,
    parseTagValue: false,
    trimValues: false,
    htmlEntities: true,
    isArray: (n) => n === "ItemData",
  }).parse(r.normalized);
  const items = doc.ODM.ClinicalData.SubjectData.StudyEventData.FormData.ItemGroupData.ItemData;
  return {
    values: items.map((i: any) => i["@Value"]),
    reasons: items.map((i: any) => i.AuditRecord.ReasonForChange ?? null),
    title: doc.ODM.Study.MetaDataVersion.FormDef["@Name"],
  };
}

describe("ODM escaping", () => {
  it("gives back line breaks, tabs, CRs, spaces and XML's special characters exactly", async () => {
    const texts = ["a\nb", "a\r\nb\r", "\ta\tb\t", "  x  ", `& < > " ' ]]>`, "😀\u{20000}"];
    const xml = studyOdm(
      exportWith(
        texts.map((notes) => ({ notes })),
        "because:\r\n\tsource",
      ),
    );
    expect(xml).not.toMatch(/Value="[^"]*[\t\n\r]/);
    const r = await read(xml);
    expect(r.values).toEqual(texts);
    expect(r.reasons.slice(1)).toEqual(texts.slice(1).map(() => "because:\r\n\tsource"));
    expect(r.title).toBe("Notes\r\n& more");
  });

  it("replaces characters XML 1.0 cannot carry (legacy data) with U+FFFD, and the file stays well-formed", async () => {
    const texts = ["a\u0001b", "\u0000\u0008\u000b\u000c\u000e\u001f", "x\ufffe\uffff", "lone \ud800 \udc00 end"];
    const r = await read(
      studyOdm(
        exportWith(
          [...texts, "ok"].map((notes) => ({ notes })),
          "why\u0001",
        ),
      ),
    );
    expect(r.values).toEqual(["a\ufffdb", "\ufffd".repeat(6), "x\ufffd\ufffd", "lone \ufffd \ufffd end", "ok"]);
    expect(r.reasons.at(-1)).toBe("why\ufffd");
  });
});

describe("text that cannot be stored", () => {
  it("names the first such character as U+XXXX", () => {
    for (const [s, want] of [
      ["plain", null],
      ["\t\n\r ok \u007f \u0085 \ud7ff \ue000 \ufffd \u{10ffff} 😀", null],
      ["a\u0001b\u0002", "U+0001"],
      ["\u0000", "U+0000"],
      ["\u000b", "U+000B"],
      ["\u001f", "U+001F"],
      ["\ufffe", "U+FFFE"],
      ["\uffff", "U+FFFF"],
      ["a\ud83d", "U+D83D"],
      ["\ude00a", "U+DE00"],
    ] as const)
      expect(xmlUnsafeCharacter(s), JSON.stringify(s)).toBe(want);
  });

  it("is refused by a text field's schema in words naming the field", () => {
    if (!def.ok) throw new Error("unreachable");
    const r = recordSchema(def.definition).safeParse({ notes: "x\u0001" });
    expect(r.success).toBe(false);
    expect(r.error?.issues[0]).toMatchObject({
      path: ["notes"],
      message: "Notes contains a character that cannot be stored (U+0001)",
    });
    expect(recordSchema(def.definition).safeParse({ notes: "line\r\n\ttab" }).success).toBe(true);
  });
});
