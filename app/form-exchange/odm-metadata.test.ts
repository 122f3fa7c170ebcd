/**
 * Forms as an ODM 1.3.2 MetaDataVersion (ADR 0027): every feature of the form model survives export -> import
 * unchanged; the export validates against ODM 1.3.2 with TrialSeal's extension and, stripped of it, against CDISC's
 * schema; REDCap's and OpenClinica-style files come in; every problem is named with where it is; hostile input is
 * refused.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { parseFormDefinition, type FormDefinition } from "../../anchoring/forms/definition.ts";
import { validateOdm } from "../../test/helpers/odm-schema.ts";
import { formsToOdmMetadata, itemGroups } from "./odm-metadata.ts";
import { DEFAULT_VISIT, ODM_MAX_BYTES, odmMetadataToForms, showIfOfException } from "./odm-metadata-import.ts";

const study = { code: "DEMO", name: "Demo study & <friends>" };
const now = new Date("2026-12-01T00:00:00.000Z");

function parsed(input: unknown): FormDefinition {
  const p = parseFormDefinition(input);
  if (!p.ok) throw new Error(`${p.path}: ${p.message}`);
  const { $schema: _, ...rest } = p.definition as FormDefinition & { $schema?: string };
  return rest as FormDefinition;
}
const demo = (name: string) =>
  parsed(JSON.parse(readFileSync(path.join(import.meta.dirname, "..", "studies", "demo", name), "utf8")));

/** Every key of the form model at least once, with sections out of order, split and empty. */
const everything = parsed({
  code: "KITCHEN-SINK_1",
  title: 'Everything "at once" & <more>',
  version: 3,
  visits: ["SCREENING", "WEEK-4", "V_9"],
  repeating: true,
  sections: [
    { name: "second", title: "Second, shown when asked", showIf: "[any] = 1 and [kind] <> 'X'" },
    { name: "first", title: "First" },
    { name: "empty", title: "A section with no fields", showIf: "not ([n] > 2)" },
  ],
  fields: [
    { name: "free", label: "Before any section", type: "text" },
    { name: "any", label: "Any?", type: "boolean", required: true, section: "first", help: "line 1\nline\t2 & <b>" },
    {
      name: "kind",
      label: "Kind",
      type: "choice",
      section: "first",
      options: [
        { value: "X", label: "Ex & <why>" },
        { value: "y-1", label: "Why one" },
      ],
    },
    {
      name: "many",
      label: "Many",
      type: "multichoice",
      section: "second",
      missingCodes: ["NI", "NA"],
      options: [
        { value: "A B", label: "A and B" },
        { value: "C", label: "C" },
      ],
    },
    {
      name: "n",
      label: "N",
      type: "number",
      integer: true,
      min: -5,
      max: 10,
      softMin: 0,
      softMax: 8.5,
      unit: "{beats}/min",
      required: true,
      section: "first",
      showIf: "[any] = 1",
      missingCodes: ["NOT_DONE"],
    },
    { name: "x", label: "X", type: "number", softMax: 1e-7, unit: "mm[Hg]", section: "second", class: "clear" },
    { name: "who", label: "Initials", type: "text", maxLength: 4, class: "identifier", section: "first" },
    { name: "code_no", label: "Code", type: "text", class: "clear", missingCodes: ["UNK", "ASKU", "NASK"] },
    { name: "d", label: "Date", type: "date", notFuture: true, showIf: "[kind] = 'y-1' or [any] = 0" },
    { name: "dt", label: "When", type: "datetime", notFuture: true, required: true, section: "second" },
    { name: "dt2", label: "When, maybe future", type: "datetime" },
    { name: "score", label: "Score", type: "calc", expression: "sum([n], [x])", decimals: 0, section: "first" },
    {
      name: "ratio",
      label: "Ratio",
      type: "calc",
      expression: "if([x] > 0, round([n] / [x], 2), 0)",
      unit: "%",
      decimals: 2,
      help: "n over x",
      showIf: "[x] <> 0",
    },
    { name: "plain_calc", label: "Plain", type: "calc", expression: "[n] * 2" },
  ],
});
const plainForm = parsed({
  code: "P",
  title: "Plain",
  version: 1,
  visits: ["SCREENING"],
  fields: [{ name: "a", label: "A", type: "text" }],
});

describe("forms to ODM and back", () => {
  const fixtures = [...["vitals-v2.form.json", "demog-v2.form.json", "ae.form.json"].map(demo), everything, plainForm];
  const firstVersions = ["vitals.form.json", "demog.form.json"].map(demo);

  it("gives back every definition exactly (demo forms and a form using every key)", () => {
    for (const defs of [fixtures, firstVersions]) {
      const xml = formsToOdmMetadata(study, defs, now);
      const back = odmMetadataToForms(xml);
      expect(back.problems).toEqual([]);
      expect(back.forms).toEqual(defs);
      // Once more: the second export is the same file.
      expect(formsToOdmMetadata(study, back.forms, now)).toBe(xml);
    }
  });

  it("describes the latest version of each form given (one MetaDataVersion holds one of each)", () => {
    const back = odmMetadataToForms(formsToOdmMetadata(study, [...firstVersions, ...fixtures], now));
    expect(back.forms.map((f) => `${f.code} ${f.version}`)).toEqual([
      "VITALS 2",
      "DEMOG 2",
      "AE 1",
      "KITCHEN-SINK_1 3",
      "P 1",
    ]);
  });

  it("validates against ODM 1.3.2 with TrialSeal's extension, and without it against CDISC's schema", async () => {
    const xml = formsToOdmMetadata(study, [...fixtures, ...firstVersions], now);
    expect(xml).toContain('xmlns:ts="https://trialseal.org/odm/1"');
    expect(await validateOdm(xml)).toEqual({ extension: [], plain: [] });
  });

  it("writes what ODM has words for in ODM's words", () => {
    const xml = formsToOdmMetadata(study, [everything], now);
    expect(xml).toContain('FileType="Snapshot"');
    expect(xml).toContain('<FormDef OID="F.KITCHEN-SINK_1" Name="Everything &quot;at once&quot; &amp; &lt;more&gt;"');
    expect(xml).toMatch(/<FormDef [^>]*Repeating="Yes"/);
    expect(xml).toContain(
      '<ItemRef ItemOID="I.KITCHEN-SINK_1.n" OrderNumber="5" Mandatory="Yes" ' +
        'CollectionExceptionConditionOID="CD.KITCHEN-SINK_1.n"/>',
    );
    expect(xml).toContain(
      '<ConditionDef OID="CD.KITCHEN-SINK_1.n" Name="N not collected"><Description><TranslatedText xml:lang="en">' +
        "N is not collected (hidden) unless: [any] = 1</TranslatedText></Description>" +
        '<FormalExpression Context="REDCap">not ([any] = 1)</FormalExpression></ConditionDef>',
    );
    expect(xml).toContain('<RangeCheck Comparator="GE" SoftHard="Hard"><CheckValue>-5</CheckValue></RangeCheck>');
    expect(xml).toContain('<RangeCheck Comparator="LE" SoftHard="Soft"><CheckValue>8.5</CheckValue></RangeCheck>');
    expect(xml).toContain(
      '<ItemRef ItemOID="I.KITCHEN-SINK_1.score" OrderNumber="12" Mandatory="No" ' +
        'MethodOID="MT.KITCHEN-SINK_1.score"/>',
    );
    expect(xml).toMatch(/<MethodDef OID="MT.KITCHEN-SINK_1.score" Name="Score calculation" Type="Computation">/);
    expect(xml).toContain('<FormalExpression Context="REDCap">sum([n], [x])</FormalExpression>');
    expect(xml).toContain('<MeasurementUnit OID="MU._beats__min" Name="{beats}/min">');
    expect(xml).toContain('ts:MissingCodes="UNK ASKU NASK"');
    expect(xml).toContain('ts:Help="line 1&#10;line&#9;2 &amp; &lt;b&gt;"');
    expect(xml).toContain(`<CodeList OID="CL.TS.MISSING"`);
    // Sections: one item group per run of fields, the second run of a section numbered; the empty one last.
    expect(itemGroups(everything).map((g) => [g.oid, g.fields.map((f) => f.name)])).toEqual([
      ["IG.KITCHEN-SINK_1", ["free"]],
      ["IG.KITCHEN-SINK_1.first", ["any", "kind"]],
      ["IG.KITCHEN-SINK_1.second", ["many"]],
      ["IG.KITCHEN-SINK_1.first.2", ["n"]],
      ["IG.KITCHEN-SINK_1.second.2", ["x"]],
      ["IG.KITCHEN-SINK_1.first.3", ["who"]],
      ["IG.KITCHEN-SINK_1.2", ["code_no", "d"]],
      ["IG.KITCHEN-SINK_1.second.3", ["dt"]],
      ["IG.KITCHEN-SINK_1.3", ["dt2"]],
      ["IG.KITCHEN-SINK_1.first.4", ["score"]],
      ["IG.KITCHEN-SINK_1.4", ["ratio", "plain_calc"]],
      ["IG.KITCHEN-SINK_1.empty", []],
    ]);
    expect(xml).toContain(
      '<ItemGroupRef ItemGroupOID="IG.KITCHEN-SINK_1.second" OrderNumber="3" Mandatory="No" ' +
        'CollectionExceptionConditionOID="CD.KITCHEN-SINK_1.S.second"/>',
    );
  });

  it("reads a condition's negation back exactly, and wraps any other condition", () => {
    expect(showIfOfException("not ([a] = 1)")).toBe("[a] = 1");
    expect(showIfOfException("NOT([a] = ')' or ([b] > 2))")).toBe("[a] = ')' or ([b] > 2)");
    expect(showIfOfException("not ([a] = 1) or not ([b] = 2)")).toBe("not (not ([a] = 1) or not ([b] = 2))");
    expect(showIfOfException("[sex] = 'M'")).toBe("not ([sex] = 'M')");
  });
});

/** A REDCap ODM export's metadata in REDCap's layout (classic project: no events; a checkbox an item per option). */
const redcap = `<?xml version="1.0" encoding="UTF-8" ?>
<ODM xmlns="http://www.cdisc.org/ns/odm/v1.3" xmlns:ds="http://www.w3.org/2000/09/xmldsig#"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:redcap="https://projectredcap.org"
  ODMVersion="1.3.1" FileOID="000-00-0000" FileType="Snapshot" Description="Heart study"
  CreationDateTime="2026-11-06T18:30:45" SourceSystem="REDCap" SourceSystemVersion="14.0.1">
<Study OID="Project.HeartStudy">
 <GlobalVariables><StudyName>Heart study</StudyName><StudyDescription>x</StudyDescription>
  <ProtocolName>Heart study</ProtocolName><redcap:RecordAutonumberingEnabled>1</redcap:RecordAutonumberingEnabled>
 </GlobalVariables>
 <MetaDataVersion OID="Metadata.HeartStudy_2026-11-06_1830" Name="Heart study" redcap:RecordIdField="record_id">
  <FormDef OID="Form.baseline" Name="Baseline" Repeating="No" redcap:FormName="baseline">
   <ItemGroupRef ItemGroupOID="baseline.record_id" Mandatory="No"/>
   <ItemGroupRef ItemGroupOID="baseline.sbp" Mandatory="No"/>
   <ItemGroupRef ItemGroupOID="baseline.baseline_complete" Mandatory="No"/>
  </FormDef>
  <ItemGroupDef OID="baseline.record_id" Name="Baseline" Repeating="No">
   <ItemRef ItemOID="record_id" Mandatory="No" redcap:Variable="record_id"/>
   <ItemRef ItemOID="initials" Mandatory="No" redcap:Variable="initials"/>
   <ItemRef ItemOID="sex" Mandatory="No" redcap:Variable="sex"/>
   <ItemRef ItemOID="pregnant" Mandatory="No" redcap:Variable="pregnant"/>
   <ItemRef ItemOID="dob" Mandatory="No" redcap:Variable="dob"/>
  </ItemGroupDef>
  <ItemGroupDef OID="baseline.sbp" Name="Vital signs" Repeating="No">
   <ItemRef ItemOID="sbp" Mandatory="Yes" redcap:Variable="sbp"/>
   <ItemRef ItemOID="height" Mandatory="No" redcap:Variable="height"/>
   <ItemRef ItemOID="weight" Mandatory="No" redcap:Variable="weight"/>
   <ItemRef ItemOID="bmi" Mandatory="No" redcap:Variable="bmi"/>
   <ItemRef ItemOID="symptoms___1" Mandatory="No" redcap:Variable="symptoms"/>
   <ItemRef ItemOID="symptoms___2" Mandatory="No" redcap:Variable="symptoms"/>
  </ItemGroupDef>
  <ItemGroupDef OID="baseline.baseline_complete" Name="Form Status" Repeating="No">
   <ItemRef ItemOID="baseline_complete" Mandatory="No" redcap:Variable="baseline_complete"/>
  </ItemGroupDef>
  <ItemDef OID="record_id" Name="record_id" DataType="text" Length="999" redcap:Variable="record_id"
    redcap:FieldType="text"><Question><TranslatedText>Record ID</TranslatedText></Question></ItemDef>
  <ItemDef OID="initials" Name="initials" DataType="text" Length="999" redcap:Variable="initials"
    redcap:FieldType="text" redcap:Identifier="y" redcap:FieldNote="As on the screening log">
    <Question><TranslatedText>Initials</TranslatedText></Question></ItemDef>
  <ItemDef OID="sex" Name="sex" DataType="text" Length="1" redcap:Variable="sex" redcap:FieldType="radio">
    <Question><TranslatedText>Sex</TranslatedText></Question><CodeListRef CodeListOID="sex.choices"/></ItemDef>
  <ItemDef OID="pregnant" Name="pregnant" DataType="boolean" Length="1" redcap:Variable="pregnant"
    redcap:FieldType="yesno" redcap:BranchingLogic="[sex] = '1'" redcap:RequiredField="y">
    <Question><TranslatedText>Pregnant?</TranslatedText></Question><CodeListRef CodeListOID="pregnant.choices"/>
  </ItemDef>
  <ItemDef OID="dob" Name="dob" DataType="date" Length="999" redcap:Variable="dob" redcap:FieldType="text"
    redcap:TextValidationType="date_ymd" redcap:Identifier="y">
    <Question><TranslatedText>Date of birth</TranslatedText></Question></ItemDef>
  <ItemDef OID="sbp" Name="sbp" DataType="integer" Length="999" redcap:Variable="sbp" redcap:FieldType="text"
    redcap:TextValidationType="int" redcap:SectionHeader="Vital signs">
    <Question><TranslatedText>Systolic BP (mmHg)</TranslatedText></Question>
    <RangeCheck Comparator="GE" SoftHard="Soft"><CheckValue>60</CheckValue>
     <ErrorMessage><TranslatedText>The value you provided is outside the suggested range.</TranslatedText>
     </ErrorMessage>
    </RangeCheck>
    <RangeCheck Comparator="LE" SoftHard="Soft"><CheckValue>250</CheckValue></RangeCheck>
  </ItemDef>
  <ItemDef OID="height" Name="height" DataType="float" Length="999" redcap:Variable="height" redcap:FieldType="text"
    redcap:TextValidationType="number"><Question><TranslatedText>Height (cm)</TranslatedText></Question></ItemDef>
  <ItemDef OID="weight" Name="weight" DataType="float" Length="999" redcap:Variable="weight" redcap:FieldType="text"
    redcap:TextValidationType="number"><Question><TranslatedText>Weight (kg)</TranslatedText></Question></ItemDef>
  <ItemDef OID="bmi" Name="bmi" DataType="float" Length="999" redcap:Variable="bmi" redcap:FieldType="calc"
    redcap:Calculation="round([weight]*10000/(([height])^(2)),1)">
    <Question><TranslatedText>BMI</TranslatedText></Question></ItemDef>
  <ItemDef OID="symptoms___1" Name="symptoms___1" DataType="boolean" Length="1" redcap:Variable="symptoms"
    redcap:FieldType="checkbox"><Question><TranslatedText>Symptoms</TranslatedText></Question>
    <CodeListRef CodeListOID="symptoms___1.choices"/></ItemDef>
  <ItemDef OID="symptoms___2" Name="symptoms___2" DataType="boolean" Length="1" redcap:Variable="symptoms"
    redcap:FieldType="checkbox"><Question><TranslatedText>Symptoms</TranslatedText></Question>
    <CodeListRef CodeListOID="symptoms___2.choices"/></ItemDef>
  <ItemDef OID="baseline_complete" Name="baseline_complete" DataType="text" Length="1"
    redcap:Variable="baseline_complete"
    redcap:FieldType="select"><Question><TranslatedText>Complete?</TranslatedText></Question>
    <CodeListRef CodeListOID="baseline_complete.choices"/></ItemDef>
  <CodeList OID="sex.choices" Name="sex" DataType="text" redcap:Variable="sex">
   <CodeListItem CodedValue="1"><Decode><TranslatedText>Female</TranslatedText></Decode></CodeListItem>
   <CodeListItem CodedValue="2"><Decode><TranslatedText>Male</TranslatedText></Decode></CodeListItem>
  </CodeList>
  <CodeList OID="pregnant.choices" Name="pregnant" DataType="boolean" redcap:Variable="pregnant">
   <CodeListItem CodedValue="1"><Decode><TranslatedText>Yes</TranslatedText></Decode></CodeListItem>
   <CodeListItem CodedValue="0"><Decode><TranslatedText>No</TranslatedText></Decode></CodeListItem>
  </CodeList>
  <CodeList OID="symptoms___1.choices" Name="symptoms___1" DataType="boolean" redcap:Variable="symptoms"
    redcap:CheckboxChoices="1, Headache | 2, Nausea, or vomiting">
   <CodeListItem CodedValue="1"><Decode><TranslatedText>Checked</TranslatedText></Decode></CodeListItem>
   <CodeListItem CodedValue="0"><Decode><TranslatedText>Unchecked</TranslatedText></Decode></CodeListItem>
  </CodeList>
  <CodeList OID="symptoms___2.choices" Name="symptoms___2" DataType="boolean" redcap:Variable="symptoms"
    redcap:CheckboxChoices="1, Headache | 2, Nausea, or vomiting">
   <CodeListItem CodedValue="1"><Decode><TranslatedText>Checked</TranslatedText></Decode></CodeListItem>
   <CodeListItem CodedValue="0"><Decode><TranslatedText>Unchecked</TranslatedText></Decode></CodeListItem>
  </CodeList>
  <CodeList OID="baseline_complete.choices" Name="baseline_complete" DataType="text">
   <CodeListItem CodedValue="0"><Decode><TranslatedText>Incomplete</TranslatedText></Decode></CodeListItem>
  </CodeList>
 </MetaDataVersion>
</Study>
</ODM>`;

describe("ODM from other systems", () => {
  it("reads a REDCap export: field types, branching logic, calculation, sections, notes, identifiers", () => {
    const r = odmMetadataToForms(redcap);
    expect(r.problems).toEqual([]);
    expect(r.forms).toEqual([
      {
        code: "BASELINE",
        title: "Baseline",
        version: 1,
        visits: [DEFAULT_VISIT],
        sections: [{ name: "vital_signs", title: "Vital signs" }],
        fields: [
          {
            name: "initials",
            label: "Initials",
            type: "text",
            maxLength: 999,
            class: "identifier",
            help: "As on the screening log",
          },
          {
            name: "sex",
            label: "Sex",
            type: "choice",
            options: [
              { value: "1", label: "Female" },
              { value: "2", label: "Male" },
            ],
          },
          { name: "pregnant", label: "Pregnant?", type: "boolean", required: true, showIf: "[sex] = '1'" },
          { name: "dob", label: "Date of birth", type: "date", class: "identifier" },
          {
            name: "sbp",
            label: "Systolic BP (mmHg)",
            type: "number",
            integer: true,
            softMin: 60,
            softMax: 250,
            required: true,
            section: "vital_signs",
          },
          { name: "height", label: "Height (cm)", type: "number", section: "vital_signs" },
          { name: "weight", label: "Weight (kg)", type: "number", section: "vital_signs" },
          {
            name: "bmi",
            label: "BMI",
            type: "calc",
            expression: "round([weight]*10000/(([height])^(2)),1)",
            section: "vital_signs",
          },
          {
            name: "symptoms",
            label: "Symptoms",
            type: "multichoice",
            section: "vital_signs",
            options: [
              { value: "1", label: "Headache" },
              { value: "2", label: "Nausea, or vomiting" },
            ],
          },
        ],
      },
    ]);
  });

  it("reads an OpenClinica-style CRF: a repeating item group makes a repeating form; events give the visits", () => {
    const xml = `<?xml version="1.0" encoding="UTF-8"?>
<ODM xmlns="http://www.cdisc.org/ns/odm/v1.3" xmlns:OpenClinica="http://www.openclinica.org/ns/odm_ext_v130/v3.1"
  ODMVersion="1.3" FileOID="m" FileType="Snapshot" CreationDateTime="2026-01-01T00:00:00">
 <Study OID="S_AE"><GlobalVariables><StudyName>AE</StudyName><StudyDescription/><ProtocolName>AE</ProtocolName>
 </GlobalVariables>
 <BasicDefinitions><MeasurementUnit OID="MU_DAYS" Name="d"><Symbol><TranslatedText>days</TranslatedText></Symbol>
 </MeasurementUnit></BasicDefinitions>
 <MetaDataVersion OID="v1.0.0" Name="MetaDataVersion_v1.0.0">
  <Protocol><StudyEventRef StudyEventOID="SE_FOLLOWUP" OrderNumber="1" Mandatory="Yes"/></Protocol>
  <StudyEventDef OID="SE_FOLLOWUP" Name="Follow-up" Repeating="Yes" Type="Common">
   <FormRef FormOID="F_AE_LOG_V1" Mandatory="Yes"/></StudyEventDef>
  <FormDef OID="F_AE_LOG_V1" Name="AE log - v1" Repeating="No">
   <ItemGroupRef ItemGroupOID="IG_AE_LOG_AE" Mandatory="Yes"/></FormDef>
  <ItemGroupDef OID="IG_AE_LOG_AE" Name="AE" Repeating="Yes" SASDatasetName="AE">
   <ItemRef ItemOID="I_AE_LOG_AETERM" OrderNumber="1" Mandatory="Yes"/>
   <ItemRef ItemOID="I_AE_LOG_AEDUR" OrderNumber="2" Mandatory="No"/>
  </ItemGroupDef>
  <ItemDef OID="I_AE_LOG_AETERM" Name="AETERM" DataType="text" Length="200" SASFieldName="AETERM">
   <Question><TranslatedText xml:lang="fr">Terme</TranslatedText><TranslatedText xml:lang="en">Term</TranslatedText>
   </Question></ItemDef>
  <ItemDef OID="I_AE_LOG_AEDUR" Name="AEDUR" DataType="integer" Length="3">
   <Question><TranslatedText>Duration</TranslatedText></Question>
   <MeasurementUnitRef MeasurementUnitOID="MU_DAYS"/>
   <RangeCheck Comparator="GE" SoftHard="Hard"><CheckValue>0</CheckValue></RangeCheck></ItemDef>
 </MetaDataVersion></Study></ODM>`;
    const r = odmMetadataToForms(xml);
    expect(r.problems).toEqual([]);
    expect(r.forms).toEqual([
      {
        code: "AE_LOG_V1",
        title: "AE log - v1",
        version: 1,
        visits: ["FOLLOW-UP"],
        repeating: true,
        fields: [
          { name: "aeterm", label: "Term", type: "text", maxLength: 200, required: true },
          { name: "aedur", label: "Duration", type: "number", integer: true, unit: "d", min: 0 },
        ],
      },
    ]);
  });

  it("lists every problem with where it is, and imports nothing", () => {
    const xml = formsToOdmMetadata(study, [everything], now)
      .replace('DataType="integer"', 'DataType="partialDate"')
      .replace('ts:FieldType="number" ', "")
      .replace("not ([any] = 1)", "not ([any] = = 1)")
      .replace('Comparator="LE" SoftHard="Soft"><CheckValue>8.5', 'Comparator="NE" SoftHard="Soft"><CheckValue>8.5')
      .replace("sum([n], [x])</FormalExpression>", "sum([n], [x])</FormalExpression><!-- -->")
      .replace('<FormalExpression Context="REDCap">[n] * 2', '<FormalExpression Context="SAS">n * 2')
      .replace('ts:MissingCodes="UNK ASKU NASK"', 'ts:MissingCodes="UNK MAYBE"')
      .replace('<CodeListRef CodeListOID="CL.KITCHEN-SINK_1.kind"/>', '<CodeListRef CodeListOID="CL.NOPE"/>');
    const r = odmMetadataToForms(xml);
    expect(r.forms).toEqual([]);
    expect(r.problems).toEqual([
      { where: "ItemDef I.KITCHEN-SINK_1.kind", message: "its CodeListRef names CL.NOPE, which is not in the file" },
      {
        where: "ConditionDef CD.KITCHEN-SINK_1.n",
        message:
          'the condition "[any] = = 1" cannot be used: = is not expected here: a value is missing before it ' +
          "(at character 9)",
      },
      {
        where: "ItemDef I.KITCHEN-SINK_1.n",
        message: 'DataType "partialDate" has no counterpart here (text, integer, float, date, datetime, boolean)',
      },
      {
        where: "ItemDef I.KITCHEN-SINK_1.code_no",
        message: "missing-data codes MAYBE are not among NI, UNK, ASKU, NASK, NA, NOT_DONE",
      },
      {
        where: "MethodDef MT.KITCHEN-SINK_1.plain_calc",
        message: 'has no FormalExpression in REDCap syntax (Context="REDCap"); contexts found: SAS',
      },
    ]);
    const r2 = odmMetadataToForms(
      formsToOdmMetadata(study, [everything], now).replace(
        'Comparator="LE" SoftHard="Soft"><CheckValue>8.5',
        'Comparator="NE" SoftHard="Soft"><CheckValue>8.5',
      ),
    );
    expect(r2.problems).toEqual([
      {
        where: "ItemDef I.KITCHEN-SINK_1.n",
        message: "a RangeCheck with Comparator NE is not supported: use GE or LE",
      },
    ]);
    // The definition's own rules, named by the item: softMin above softMax.
    const r3 = odmMetadataToForms(
      formsToOdmMetadata(study, [everything], now).replace("<CheckValue>0</CheckValue>", "<CheckValue>9</CheckValue>"),
    );
    expect(r3.problems).toEqual([
      { where: "ItemDef I.KITCHEN-SINK_1.n", message: "softMin: softMin is greater than softMax" },
    ]);
  });

  it("refuses a DOCTYPE, entities, a file too large or too deep, and what is not ODM 1.3", () => {
    const bomb = `<?xml version="1.0"?><!DOCTYPE ODM [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>
<ODM xmlns="http://www.cdisc.org/ns/odm/v1.3"><Study OID="&b;"/></ODM>`;
    expect(odmMetadataToForms(bomb)).toEqual({
      forms: [],
      problems: [{ where: "file", message: "a DOCTYPE is not accepted in an ODM file" }],
    });
    const big = `<ODM xmlns="http://www.cdisc.org/ns/odm/v1.3">${" ".repeat(ODM_MAX_BYTES)}</ODM>`;
    expect(odmMetadataToForms(big).problems).toEqual([{ where: "file", message: "the file is larger than 10 MB" }]);
    const deep = `<ODM xmlns="http://www.cdisc.org/ns/odm/v1.3">${"<a>".repeat(200)}${"</a>".repeat(200)}</ODM>`;
    expect(odmMetadataToForms(deep).problems[0].where).toBe("file");
    expect(odmMetadataToForms("<ODM").problems[0]).toMatchObject({ where: "file" });
    expect(odmMetadataToForms("<root/>").problems).toEqual([
      { where: "file", message: "not an ODM file: the root element is not ODM" },
    ]);
    expect(odmMetadataToForms('<ODM xmlns="urn:other"/>').problems[0].where).toBe("ODM");
    expect(odmMetadataToForms('<ODM xmlns="http://www.cdisc.org/ns/odm/v1.3" ODMVersion="2.0"/>').problems).toEqual([
      { where: "ODM", message: "ODMVersion 2.0 is not ODM 1.3.x" },
    ]);
    const pollution = formsToOdmMetadata(study, [plainForm], now).replace('Name="a"', 'Name="__proto__"');
    const r = odmMetadataToForms(pollution);
    expect(r.problems).toEqual([]);
    expect(r.forms[0].fields[0].name).toBe("proto");
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});
