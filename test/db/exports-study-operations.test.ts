/**
 * Issue 18, on PGlite and PostgreSQL: the exports people expect (ADR 0038). The data dictionary (REDCap layout) of
 * the latest approved forms reads back through the REDCap dictionary reader as the same forms; the blank and the
 * annotated CRF are PDFs whose text holds each form and (annotated) every field name, choice code, limit and
 * expression; the missing-data report finds exactly the required, shown and empty fields of a study built here
 * (records entered before a new form version made fields required) and every missing-data code with its reason,
 * limited to the sites the viewer may read. Every export is an audit event.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { and, eq } from "drizzle-orm";
import { openTestDatabase, type TestDb } from "../helpers/db.ts";
import { giveCompleteConsent } from "../helpers/consent.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { createStaff } from "../helpers/study-staff.ts";
import { enrollParticipant } from "../../app/participants/participants.server.ts";
import { importForm } from "../../app/records/forms.server.ts";
import { saveRecord } from "../../app/records/records.server.ts";
import {
  crfPdf,
  dataDictionaryCsv,
  missingDataCsv,
  missingDataReport,
} from "../../app/exports/study-operations.server.ts";
import { redcapDictionaryToForms } from "../../app/form-exchange/redcap-dictionary.ts";
import { csvRawRows, csvUnquote } from "../../anchoring/verifier/csv-cells.ts";
import { auditEvents } from "../../db/schema/index.ts";
import type { Principal } from "../../app/platform/permissions.server.ts";
import { VITALS_V2 } from "../vectors/bundles/forms.ts";
import { ADVERSE_EVENTS_LOG } from "../helpers/forms.ts";

let t: TestDb;
const p: Record<string, Principal> = {};
const subj: Record<string, string> = {};

const V1 = { ...VITALS_V2, version: 1 };
/** Version 2: weight and (for women) pregnancy become required. */
const V2 = {
  ...VITALS_V2,
  version: 2,
  fields: VITALS_V2.fields.map((f) =>
    f.name === "weight" || f.name === "pregnant" ? { ...f, required: true, help: "Ask the participant" } : f,
  ),
};
const AE = ADVERSE_EVENTS_LOG;

async function pdfText(pdf: Buffer) {
  const { extractText, getDocumentProxy } = await import("unpdf");
  const proxy = await getDocumentProxy(new Uint8Array(pdf));
  const { text } = await extractText(proxy, { mergePages: true });
  return { pages: proxy.numPages, text: String(text).replace(/\s+/g, " ") };
}

beforeAll(async () => {
  t = await openTestDatabase();
  await createStudy(
    t.ctx,
    {
      code: "OPS-1",
      title: "Operations study",
      sites: [
        { code: "S1", name: "Site one" },
        { code: "S2", name: "Site two" },
      ],
    },
    null,
  );
  Object.assign(
    p,
    (
      await createStaff(t.ctx, "OPS-1", "ops.test", [
        ["inv1", "investigator", "S1"],
        ["inv2", "investigator", "S2"],
        ["dm", "data_manager"],
      ])
    ).principals,
  );
  await importForm(t.ctx, "OPS-1", V1, { actorId: null });
  await importForm(t.ctx, "OPS-1", AE, { actorId: null });
  for (const [k, site, inv] of [
    ["a", "S1", "inv1"],
    ["b", "S1", "inv1"],
    ["c", "S2", "inv2"],
  ] as const) {
    const s = await enrollParticipant(t.ctx, p[inv], { study: "OPS-1", site, personal: { fullName: `Ops ${k}` } });
    subj[k] = s.subjectCode;
    await giveCompleteConsent(t.ctx, "OPS-1", s.subjectCode);
  }
  const save = (inv: string, subject: string, data: Record<string, unknown>, missing?: unknown) =>
    saveRecord(t.ctx, p[inv], "OPS-1", { subject, form: "VITALS", visit: "SCREENING", data, missing });
  // a: a man without weight (required from v2), his blood pressure coded NOT_DONE with a reason.
  await save("inv1", subj.a, { sex: "M", height: 175 }, { sbp: { code: "NOT_DONE", reason: "Cuff not available" } });
  // b: a woman with every value but pregnancy (required and shown for women from v2).
  await save("inv1", subj.b, { sex: "F", height: 160, weight: 60 });
  // c (site S2): a man without weight.
  await save("inv2", subj.c, { sex: "M", height: 180 });
  await saveRecord(t.ctx, p.inv1, "OPS-1", { subject: subj.a, form: "AE", visit: "LOG", data: { term: "Headache" } });
  await importForm(t.ctx, "OPS-1", V2, { actorId: null });
}, 300_000);
afterAll(async () => {
  await t?.close();
});

const auditCount = async (action: string) =>
  (
    await t.ctx.db
      .select()
      .from(auditEvents)
      .where(and(eq(auditEvents.action, action)))
  ).length;

describe("exports people expect", () => {
  it("writes the data dictionary of the latest approved forms in REDCap's layout, and it reads back", async () => {
    const before = await auditCount("export.data_dictionary");
    const file = await dataDictionaryCsv(t.ctx, p.inv1, "OPS-1");
    expect(file.name).toBe("OPS-1-data-dictionary.csv");
    expect(file.text.split("\n")[0]).toMatch(/^"?Variable \/ Field Name"?,"?Form Name"?/);
    const back = redcapDictionaryToForms(file.text, { visits: ["SCREENING"] });
    expect(back.problems).toEqual([]);
    expect(back.forms.map((f) => f.code).sort()).toEqual(["AE", "VITALS"]);
    const vitals = back.forms.find((f) => f.code === "VITALS")!;
    expect(vitals.fields.map((f) => f.name)).toEqual(V2.fields.map((f) => f.name));
    // Version 2's rules, not version 1's: weight is required.
    expect(vitals.fields.find((f) => f.name === "weight")).toMatchObject({ required: true, type: "number" });
    expect(vitals.fields.find((f) => f.name === "bmi")).toMatchObject({ type: "calc" });
    expect(await auditCount("export.data_dictionary")).toBe(before + 1);
  });

  it("prints a blank CRF: labels, boxes, choices, units, sections and help, no field codes", async () => {
    const before = await auditCount("export.crf_blank");
    const { data } = await crfPdf(t.ctx, p.inv1, "OPS-1", "blank");
    expect(data.subarray(0, 5).toString()).toBe("%PDF-");
    const { pages, text } = await pdfText(data);
    expect(pages).toBeGreaterThanOrEqual(2);
    for (const s of ["Adverse events", "Vital signs", "Body measurements", "Systolic BP", "Female", "Male"])
      expect(text).toContain(s);
    expect(text).toContain("Ask the participant");
    expect(text).toContain("mmHg");
    expect(text).toContain("form VITALS, version 2");
    expect(text).toContain("If missing, code: NOT_DONE");
    expect(text).not.toContain("hard limits");
    expect(text).not.toContain("sbp ·");
    expect(await auditCount("export.crf_blank")).toBe(before + 1);
  });

  it("annotates the CRF with every field name, type, limit, choice code, branching and calculation", async () => {
    const { data } = await crfPdf(t.ctx, p.inv1, "OPS-1", "annotated");
    const { text } = await pdfText(data);
    for (const f of [...V2.fields, ...AE.fields]) expect(text).toContain(`${f.name} ·`);
    expect(text).toContain("[VITALS v2]");
    expect(text).toContain("[AE v1]");
    expect(text).toContain("hard limits 2 to 400");
    expect(text).toContain("F = Female");
    expect(text).toContain("shown if: [sex] = 'F'");
    expect(text).toContain("calculation: [weight] / ([height] / 100) ^ 2");
    expect(text).toContain("missing-data codes: NOT_DONE, UNK");
    // Uncompressed, the content streams can be read as they are.
    const raw = (await crfPdf(t.ctx, p.inv1, "OPS-1", "annotated", { compress: false })).data.toString("latin1");
    expect(raw).not.toContain("/FlateDecode");
  });

  it("finds exactly the required, shown and empty fields, and every missing-data code with its reason", async () => {
    const r = await missingDataReport(t.ctx, p.dm, "OPS-1");
    expect(r.records).toBe(4);
    const rows = r.rows.map((x) => [x.subject, x.visit, x.form, x.field, x.kind, x.code, x.reason, x.enteredOn]);
    expect(rows).toEqual([
      [subj.a, "SCREENING", "VITALS", "weight", "empty", null, null, 1],
      [subj.a, "SCREENING", "VITALS", "sbp", "coded", "NOT_DONE", "Cuff not available", 1],
      [subj.b, "SCREENING", "VITALS", "pregnant", "empty", null, null, 1],
      [subj.c, "SCREENING", "VITALS", "weight", "empty", null, null, 1],
    ]);
    // Site staff see their own site's records only.
    const s2 = await missingDataReport(t.ctx, p.inv2, "OPS-1");
    expect(s2.rows.map((x) => [x.subject, x.field])).toEqual([[subj.c, "weight"]]);
  });

  it("writes the missing-data report as CSV, an audit event", async () => {
    const before = await auditCount("export.missing_data");
    const file = await missingDataCsv(t.ctx, p.dm, "OPS-1");
    const rows = csvRawRows(file.text).map((r) => r.cells.map(csvUnquote));
    expect(rows[0]).toEqual([
      "subject",
      "site",
      "visit",
      "form",
      "instance",
      "record_id",
      "entered_on_form_version",
      "field",
      "label",
      "status",
      "missing_code",
      "missing_reason",
    ]);
    const body = rows.slice(1).filter((r) => r.length > 1);
    expect(body).toHaveLength(4);
    expect(body[1]).toEqual(expect.arrayContaining([subj.a, "sbp", "Systolic BP", "coded", "NOT_DONE"]));
    expect(body[1][11]).toBe("Cuff not available");
    expect(await auditCount("export.missing_data")).toBe(before + 1);
  });
});
