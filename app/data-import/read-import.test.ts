import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parseFormDefinition } from "../../anchoring/forms/definition.ts";
import { csvForForm } from "../../test/helpers/import-files.ts";
import { type ReadImportInput, UnusableFileError } from "./import-rows.ts";
import { parseMapFile } from "./map-file.ts";
import { IMPORT_MAX_BYTES, readImport } from "./read-import.ts";

const load = (file: string) => {
  const r = parseFormDefinition(JSON.parse(readFileSync(`app/studies/demo/${file}`, "utf8")));
  if (!r.ok) throw new Error(r.message);
  return { code: r.definition.code, version: r.definition.version, definition: r.definition };
};
// The demo study's approved forms, latest version of each (app/studies/demo-seed.server.ts DEMO_FORMS).
const FORMS = [load("demog-v2.form.json"), load("vitals-v2.form.json"), load("ae.form.json")];
const VISITS = ["SCREENING", "WEEK4"];
const enc = (s: string) => new TextEncoder().encode(s);

function input(text: string | Uint8Array, more: Partial<ReadImportInput> = {}): ReadImportInput {
  return {
    bytes: typeof text === "string" ? enc(text) : text,
    fileName: "vitals.csv",
    format: "csv",
    formCode: null,
    map: null,
    forms: FORMS,
    visits: VISITS,
    ...more,
  };
}
const unusable = (i: ReadImportInput) => {
  try {
    readImport(i);
  } catch (err) {
    expect(err).toBeInstanceOf(UnusableFileError);
    return (err as Error).message;
  }
  throw new Error("the file was read");
};

describe("CSV import reader", () => {
  it("reads our header and REDCap's header the same way", () => {
    const ours = "subject,visit,visit_date,sbp,dbp\nSITE-01-001,SCREENING,2025-09-02,134,86\n";
    const redcap = "record_id,redcap_event_name,visit_date,sbp,dbp\nSITE-01-001,screening_arm_1,2025-09-02,134,86\n";
    for (const csv of [ours, redcap]) {
      const r = readImport(input(csv));
      expect(r.problems).toEqual([]);
      expect(r.rows).toEqual([
        {
          row: 2,
          subject: "SITE-01-001",
          visit: "SCREENING",
          form: "VITALS",
          instance: 1,
          values: { visit_date: "2025-09-02", sbp: 134, dbp: 86 },
          missing: {},
          claims: null,
        },
      ]);
    }
  });

  it("takes the form from --form, the file name, or REDCap's repeat instrument column, else refuses", () => {
    const csv = "subject,visit,term,onset,severity,outcome,serious\nS1,WEEK4,Rash,2025-09-01,MILD,RECOVERED,0\n";
    expect(readImport(input(csv, { fileName: "export.csv", formCode: "ae" })).rows[0].form).toBe("AE");
    expect(readImport(input(csv, { fileName: "AE.csv" })).rows[0].form).toBe("AE");
    const redcap =
      "record_id,redcap_event_name,redcap_repeat_instrument,redcap_repeat_instance," +
      "term,onset,severity,outcome,serious\n" +
      "S1,week4_arm_1,,,,,,,\n" +
      "S1,week4_arm_1,ae,1,Rash,2025-09-01,MILD,RECOVERED,0\n" +
      "S1,week4_arm_1,ae,2,Cough,2025-09-03,MILD,RECOVERING,0\n";
    const r = readImport(input(redcap, { fileName: "DemoStudy_DATA_2025-10-20.csv" }));
    expect(r.problems).toEqual([]);
    expect(r.rows.map((x) => [x.row, x.form, x.visit, x.instance, x.values.serious])).toEqual([
      [3, "AE", "WEEK4", 1, false],
      [4, "AE", "WEEK4", 2, false],
    ]);
    expect(unusable(input(csv, { fileName: "export.csv" }))).toMatch(/--form CODE/);
    expect(unusable(input(csv, { formCode: "LABS" }))).toMatch(/no approved form LABS/);
  });

  it("reads REDCap checkbox columns as a multiple choice and leaves empty cells out", () => {
    const csv =
      "subject,visit,sbp,symptoms___headache,symptoms___nausea,symptoms___fatigue,notes\n" +
      "S1,SCREENING,120,1,0,1,\nS2,SCREENING,,0,0,0,\n";
    const r = readImport(input(csv));
    expect(r.problems).toEqual([]);
    expect(r.rows).toHaveLength(1); // S2 has only unticked boxes: no value, no version
    expect(r.rows[0].values).toEqual({ sbp: 120, symptoms: ["HEADACHE", "FATIGUE"] });
    expect(r.mapping.filter((m) => m.field === "symptoms").map((m) => m.column)).toEqual([
      "symptoms___headache",
      "symptoms___nausea",
      "symptoms___fatigue",
    ]);
  });

  it("reports bad dates, numbers, choices and hard limits at their row and column in entry's words", () => {
    const csv =
      "subject,visit,visit_date,sbp,dbp,temp,smoker,pregnant\n" +
      'S1,SCREENING,2025-02-30,12o,300,"37,2",maybe,perhaps\n' +
      "S2,SCREENING,2025-09-02,120,80,36.6,Y,1\n";
    const r = readImport(input(csv));
    expect(r.problems).toEqual([
      { row: 2, column: "pregnant", message: "Pregnant must be yes or no" },
      {
        row: 2,
        column: "sbp",
        message:
          "Systolic BP must be a number, written with digits and a point for decimals, without thousands " +
          "separators (for example 37.2)",
      },
      {
        row: 2,
        column: "temp",
        message:
          "Temperature must be a number, written with digits and a point for decimals, without thousands " +
          "separators (for example 37.2)",
      },
      { row: 2, column: "visit_date", message: "Visit date must be a date (YYYY-MM-DD)" },
      { row: 2, column: "dbp", message: "Diastolic BP must be between 30 and 150 mmHg" },
      { row: 2, column: "smoker", message: "Smoker: choose one of the listed options" },
    ]);
    expect(r.rows[1].values).toEqual({
      visit_date: "2025-09-02",
      sbp: 120,
      dbp: 80,
      temp: 36.6,
      smoker: "Y",
      pregnant: true,
    });
  });

  it("numbers rows as the file's lines, a quoted line break included", () => {
    const csv = 'subject,visit,sbp,notes\nS1,SCREENING,120,"two\nlines"\nS2,SCREENING,abc,\n';
    const r = readImport(input(csv));
    expect(r.rows[0].values.notes).toBe("two\nlines");
    expect(r.problems.map((p) => [p.row, p.column])).toEqual([[4, "sbp"]]);
  });

  it("reports unknown columns, ignores REDCap's form status and calculated columns with a note", () => {
    const csv = "subject,visit,sbp,bmi,vitals_complete,heart_rate,symptoms___dizzy\nS1,SCREENING,120,22,2,71,1\n";
    const r = readImport(input(csv));
    expect(r.problems).toEqual([
      {
        row: 1,
        column: "heart_rate",
        message:
          "heart_rate is not a field of form VITALS v2; rename the column, map it in the --map file or remove it",
      },
      { row: 1, column: "symptoms___dizzy", message: "symptoms___dizzy is not an option of Symptoms" },
    ]);
    const byColumn = Object.fromEntries(r.mapping.map((m) => [m.column, m]));
    expect(byColumn.sbp.field).toBe("sbp");
    expect(byColumn.bmi).toMatchObject({ field: null, note: expect.stringMatching(/calculated/) });
    expect(byColumn.vitals_complete).toMatchObject({ field: null, note: expect.stringMatching(/form status/) });
    expect(byColumn.heart_rate).toEqual({ column: "heart_rate", form: "VITALS", field: null });
  });

  it("maps columns and events through the --map file", () => {
    const map = parseMapFile(JSON.stringify({ visits: { baseline: "screening" }, fields: { vitals: { SYS: "sbp" } } }));
    const r = readImport(input("subject,visit,SYS\nS1,Baseline,118\n", { map }));
    expect(r.problems).toEqual([]);
    expect(r.rows[0]).toMatchObject({ visit: "SCREENING", values: { sbp: 118 } });
  });

  it("refuses files it cannot read at all, in one sentence", () => {
    expect(unusable(input("visit,sbp\nSCREENING,120\n"))).toMatch(/no subject column.*record_id/);
    expect(unusable(input(new Uint8Array([0x73, 0x75, 0x62, 0xff, 0xfe, 0x0a])))).toMatch(/not UTF-8/);
    expect(unusable(input("subject,sbp\nS1,120\n"))).toMatch(/no visit column/);
    expect(unusable(input('subject,visit\n"S1,SCREENING\n'))).toMatch(/not readable CSV/);
    expect(unusable(input("<ODM/>"))).toMatch(/--format odm/);
    expect(unusable(input(""))).toMatch(/empty/);
  });

  it("refuses a file over the size limit before reading it, saying what the limit is", () => {
    const huge = new Uint8Array(IMPORT_MAX_BYTES + 1);
    expect(unusable(input(huge))).toBe(
      "The file is 64 MB, larger than the 64 MB an import reads; split it into smaller files",
    );
  });

  it("reads a generated 5,000-row file of each demo form without a problem", () => {
    const subjects = Array.from({ length: 50 }, (_, i) => `SITE-01-${String(i + 1).padStart(3, "0")}`);
    for (const f of FORMS) {
      const csv = csvForForm(f.definition, { rows: 5000, subjects, visit: "SCREENING", redcap: f.code === "AE" });
      const r = readImport(input(csv, { fileName: `${f.code.toLowerCase()}.csv` }));
      expect(r.problems).toEqual([]);
      expect(r.rows).toHaveLength(5000);
      if (f.definition.repeating) expect(r.rows[4999].instance).toBe(100);
    }
  });
});

const FIXTURE = readFileSync("test/fixtures/redcap-clinical-odm.xml");
const odm = (xml: string | Uint8Array, more: Partial<ReadImportInput> = {}) =>
  input(xml, { fileName: "export.xml", format: "odm", ...more });

describe("ODM ClinicalData import reader", () => {
  it("reads REDCap's export fully: subjects, events, forms, repeats, checkboxes, missing codes, claims", () => {
    const r = readImport(odm(FIXTURE));
    expect(r.problems).toEqual([]);
    expect(r.rows.map((x) => [x.row, x.subject, x.visit, x.form, x.instance])).toEqual([
      [1, "SITE-01-001", "SCREENING", "DEMOG", 1],
      [3, "SITE-01-001", "SCREENING", "VITALS", 1],
      [7, "SITE-01-001", "SCREENING", "AE", 1],
      [9, "SITE-01-001", "WEEK4", "VITALS", 1],
      [13, "SITE-01-002", "SCREENING", "DEMOG", 1],
      [15, "SITE-01-002", "SCREENING", "VITALS", 1],
      [19, "SITE-01-002", "WEEK4", "VITALS", 1],
      [23, "SITE-01-002", "WEEK4", "AE", 1],
      [25, "SITE-01-002", "WEEK4", "AE", 2],
    ]);
    const [demog, vitals] = r.rows;
    expect(demog.values).toEqual({
      initials: "AB",
      sex: "F",
      pregnant: false,
      age: 52,
      height: 166,
      weight: 71.5,
      consent_datetime: "2025-09-02T08:45:00+00:00",
      notes: "Referred by her GP & keen to take part",
    });
    // The latest audit record of the row's items, groups and form: the source system's claims.
    expect(demog.claims).toEqual({
      user: "mjones",
      at: "2025-09-03T11:40:22+02:00",
      reason: "Age transcribed from the wrong line of the screening log",
    });
    expect(vitals.values.symptoms).toEqual(["HEADACHE", "FATIGUE"]);
    expect(vitals.values).not.toHaveProperty("bmi");
    expect(vitals.claims).toEqual({ user: "jsmith", at: "2025-09-02T10:05:51+02:00", reason: null });
    expect(r.rows[5].missing).toEqual({
      temp: { code: "NOT_DONE", reason: "Given as a missing-data code in export.xml" },
    });
    expect(r.rows[8].values).toMatchObject({ serious: true, hosp_date: "2025-09-27" });
    expect(r.rows[8].claims?.reason).toBe("Hospitalised overnight: serious per the protocol");
    expect(r.rows[2].claims).toBeNull();
    // The source system's e-signature is not carried over: one note, no problem.
    expect(r.notes).toEqual([expect.stringMatching(/1 e-signature of the source system.*not carried over/)]);
    expect(r.mapping).toContainEqual({ column: "sbp", form: "VITALS", field: "sbp" });
    expect(r.mapping).toContainEqual(expect.objectContaining({ column: "vitals_complete", field: null }));
  });

  const oc = (items: string, event = "SE_BASELINE", form = "F_VITALSIGNS_V1") =>
    `<?xml version="1.0" encoding="UTF-8"?>
<ODM xmlns="http://www.cdisc.org/ns/odm/v1.3" xmlns:OpenClinica="http://www.openclinica.org/ns/odm_ext_v130/v3.1"
  FileType="Snapshot" FileOID="OC-1" ODMVersion="1.3" CreationDateTime="2025-10-20T10:00:00+00:00">
<ClinicalData StudyOID="S_DEMO001" MetaDataVersionOID="v1.0.0">
 <SubjectData SubjectKey="SS_SITE01001" OpenClinica:StudySubjectID="SITE-01-001">
  <StudyEventData StudyEventOID="${event}">
   <FormData FormOID="${form}">
    <ItemGroupData ItemGroupOID="IG_VITAL_UNGROUPED" ItemGroupRepeatKey="1" TransactionType="Insert">
     ${items}
    </ItemGroupData>
   </FormData>
  </StudyEventData>
 </SubjectData>
</ClinicalData>
</ODM>`;

  it("matches OpenClinica's names through the --map file and names what does not match", () => {
    const items = '<ItemData ItemOID="I_VITAL_SBP" Value="131"/><ItemData ItemOID="I_VITAL_PULSE" Value="70"/>';
    const r = readImport(odm(oc(items)));
    expect(r.rows).toEqual([]);
    expect(r.problems).toEqual([
      { row: 1, column: null, message: expect.stringMatching(/^form F_VITALSIGNS_V1 matches no form .*--map file/) },
    ]);
    const map = parseMapFile(
      JSON.stringify({
        forms: { F_VITALSIGNS_V1: "VITALS" },
        visits: { SE_BASELINE: "SCREENING" },
        fields: { VITALS: { I_VITAL_SBP: "sbp" } },
      }),
    );
    const mapped = readImport(odm(oc(items), { map }));
    expect(mapped.rows).toMatchObject([
      { subject: "SITE-01-001", visit: "SCREENING", form: "VITALS", values: { sbp: 131 } },
    ]);
    expect(mapped.problems).toEqual([
      {
        row: 1,
        column: "I_VITAL_PULSE",
        message: "I_VITAL_PULSE is not a field of form VITALS v2; map it in the --map file under fields.VITALS",
      },
    ]);
  });

  it("matches forms, events and items by name case-insensitively after the exporters' prefixes", () => {
    const items = '<ItemData ItemOID="vitals.SBP" Value="140"/><ItemData ItemOID="dbp" Value="abc"/>';
    const r = readImport(odm(oc(items, "Event.Week4_Arm_1", "Form.VITALS")));
    expect(r.rows).toMatchObject([{ visit: "WEEK4", form: "VITALS", values: { sbp: 140 } }]);
    expect(r.problems).toEqual([
      { row: 1, column: "dbp", message: expect.stringMatching(/^Diastolic BP must be a number/) },
    ]);
    expect(readImport(odm(oc(items, "SE_SCREENING", "F_VITALS_V2"))).rows[0]).toMatchObject({ visit: "SCREENING" });
    const unknown = readImport(odm(oc(items, "SE_FOLLOWUP")));
    expect(unknown.problems[0].message).toMatch(/form F_VITALSIGNS_V1 matches no form/);
  });

  it("refuses a DOCTYPE (an XXE attempt) without reading any entity", () => {
    const xxe = `<?xml version="1.0"?>
<!DOCTYPE ODM [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<ODM xmlns="http://www.cdisc.org/ns/odm/v1.3">
 <ClinicalData StudyOID="S"><SubjectData SubjectKey="&xxe;"/></ClinicalData>
</ODM>`;
    expect(unusable(odm(xxe))).toMatch(/DOCTYPE/);
  });

  it("refuses files that are not ODM ClinicalData, in one sentence", () => {
    expect(unusable(odm("subject,visit\nS1,SCREENING\n"))).toMatch(/not XML.*--format csv/);
    expect(unusable(odm("<ODM><ClinicalData></ODM>"))).toMatch(/not well-formed XML \(line 1\)/);
    expect(unusable(odm("<Study/>"))).toMatch(/not CDISC ODM/);
    const metadataOnly = '<ODM xmlns="http://www.cdisc.org/ns/odm/v1.3"><Study OID="S"/></ODM>';
    expect(unusable(odm(metadataOnly))).toMatch(/no ClinicalData/);
    expect(unusable(odm(new Uint8Array(IMPORT_MAX_BYTES + 10)))).toMatch(/larger than the 64 MB/);
  });
});

describe("the --map file", () => {
  it("normalises codes and names", () => {
    expect(parseMapFile('{"forms":{"F_VS":"vitals"},"fields":{"vitals":{"I_SBP":"SBP"}}}')).toEqual({
      forms: { F_VS: "VITALS" },
      fields: { VITALS: { I_SBP: "sbp" } },
    });
  });

  it("names the key at fault", () => {
    const err = (text: string) => {
      try {
        parseMapFile(text, "map.json");
      } catch (e) {
        expect(e).toBeInstanceOf(UnusableFileError);
        return (e as Error).message;
      }
      throw new Error("accepted");
    };
    expect(err("{nope")).toMatch(/^map\.json is not JSON/);
    expect(err('{"form":{}}')).toBe(
      "map.json, at (the top level): unknown key form: a map has only forms, visits and fields",
    );
    expect(err('{"visits":{"SE_BASELINE":"screening visit"}}')).toBe(
      "map.json, at visits.SE_BASELINE: must be a form or visit code (letters, digits, - or _)",
    );
    expect(err('{"fields":{"VITALS":{"I_SBP":"1sbp"}}}')).toMatch(
      /^map\.json, at fields\.VITALS\.I_SBP: must be a field name/,
    );
    expect(err('{"forms":["VITALS"]}')).toMatch(/^map\.json, at forms: must be/);
  });
});
