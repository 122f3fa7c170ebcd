/**
 * Forms as a CDISC ODM 1.3.2 MetaDataVersion (ADR 0027): `formsToOdmMetadata` writes a Snapshot file of a study's
 * form definitions; `studyMetadataXml` is its Study element, also used by the study export (app/exports/odm.server.ts)
 * so that both say the same. What ODM has no word for travels in attributes of TrialSeal's namespace (prefix ts),
 * declared by ODM's vendor-extension mechanism in odm-extension/trialseal-odm-1.3.2.xsd. Read back by
 * odm-metadata-import.ts.
 *
 * - a visit: StudyEventDef SE.VISIT (Protocol lists them); a form: FormDef F.CODE (Repeating, ts:Version,
 *   ts:Sections), with one ItemGroupDef per run of consecutive fields of one section (IG.CODE.section, named by the
 *   section's title, ts:Section) or of no section (IG.CODE, named by the form's title); the row of a repeating form
 *   is the form instance (FormRepeatKey), so its item groups do not repeat.
 * - a field: ItemDef I.CODE.field (DataType, Length, Question, MeasurementUnitRef, RangeCheck Hard for min/max and
 *   Soft for softMin/softMax, CodeListRef, ts:FieldType, ts:Class, ts:MissingCodes, ts:NotFuture, ts:Help,
 *   ts:Decimals); required: ItemRef Mandatory="Yes".
 * - showIf (of a field or a section): a ConditionDef CD.CODE.field / CD.CODE.S.section referred to by the ItemRef /
 *   ItemGroupRef as CollectionExceptionConditionOID. ODM's condition says when the item is NOT collected, so its
 *   FormalExpression (Context "REDCap", the forms' expression language) is `not (SHOWIF)`.
 * - a calculated field: a MethodDef MT.CODE.field of Type Computation (FormalExpression Context "REDCap"), the
 *   ItemRef's MethodOID; SignificantDigits and ts:Decimals give its rounding.
 */
import {
  MISSING_CODE_LABELS,
  MISSING_CODES,
  isRequired,
  type FieldDefinition,
  type FormDefinition,
} from "../../anchoring/forms/definition.ts";
import { unitLabel } from "../../anchoring/forms/units.ts";
import { EXPRESSION_CONTEXT, MISSING_CODE_LIST_OID, ODM_NS, TS_NS, oid } from "./odm-metadata-names.ts";
import { el, esc, text, translated } from "./odm-metadata-xml.ts";

export { EXPRESSION_CONTEXT, MISSING_CODE_LIST_OID, ODM_NS, TS_NS, oid } from "./odm-metadata-names.ts";
export { odmMetadataToForms } from "./odm-metadata-import.ts";

/** The condition under which ODM says an item is NOT collected: the negation of when it is shown. */
export const exceptionCondition = (showIf: string) => `not (${showIf})`;

/** One ItemGroupDef: a run of consecutive fields of one section (or of none), or a section without fields. */
export interface ItemGroup {
  oid: string;
  name: string;
  section?: string;
  fields: FieldDefinition[];
}

/** The item groups of a form, in order: each run of consecutive fields of one section, then empty sections. */
export function itemGroups(def: FormDefinition): ItemGroup[] {
  const sections = new Map((def.sections ?? []).map((s) => [s.name, s]));
  const out: ItemGroup[] = [];
  const runs = new Map<string, number>();
  for (const f of def.fields) {
    const last = out.at(-1);
    if (last && last.section === f.section) {
      last.fields.push(f);
      continue;
    }
    const key = f.section ?? "";
    const n = (runs.get(key) ?? 0) + 1;
    runs.set(key, n);
    const base = f.section ? `${oid.group(def.code)}.${f.section}` : oid.group(def.code);
    out.push({
      oid: n === 1 ? base : `${base}.${n}`,
      name: f.section ? (sections.get(f.section)?.title ?? f.section) : def.title,
      section: f.section,
      fields: [f],
    });
  }
  for (const s of def.sections ?? [])
    if (!runs.has(s.name))
      out.push({ oid: `${oid.group(def.code)}.${s.name}`, name: s.title, section: s.name, fields: [] });
  return out;
}

/** The ItemGroupDef OID each field of a form is in (ItemData go into the ItemGroupData of that OID). */
export function itemGroupOfField(def: FormDefinition): Map<string, string> {
  return new Map(itemGroups(def).flatMap((g) => g.fields.map((f) => [f.name, g.oid] as const)));
}

function dataType(f: FieldDefinition): string {
  switch (f.type) {
    case "number":
      return f.integer ? "integer" : "float";
    case "calc":
      return f.decimals === 0 ? "integer" : "float";
    case "date":
      return "date";
    case "datetime":
      return "datetime";
    case "boolean":
      return "boolean";
    default:
      return "text";
  }
}

const yes = (b: boolean | undefined) => (b ? "Yes" : "No");
const unitOf = (f: FieldDefinition) => (f.type === "number" || f.type === "calc" ? f.unit : undefined);

function itemDef(def: FormDefinition, f: FieldDefinition): string {
  const range = (comparator: string, softHard: string, v: number | undefined) =>
    v === undefined
      ? null
      : el("RangeCheck", { Comparator: comparator, SoftHard: softHard }, text("CheckValue", String(v)));
  const unit = unitOf(f);
  return el(
    "ItemDef",
    {
      OID: oid.item(def.code, f.name),
      Name: f.name,
      DataType: dataType(f),
      Length: f.type === "text" ? f.maxLength : undefined,
      SignificantDigits: f.type === "calc" ? f.decimals : undefined,
      "ts:FieldType": f.type,
      "ts:Class": f.type !== "calc" && f.class ? f.class : undefined,
      "ts:MissingCodes": f.type !== "calc" && f.missingCodes ? f.missingCodes.join(" ") : undefined,
      "ts:NotFuture": (f.type === "date" || f.type === "datetime") && f.notFuture ? "true" : undefined,
      "ts:Help": f.help,
      "ts:Decimals": f.type === "calc" ? f.decimals : undefined,
    },
    translated("Question", f.label),
    unit ? el("MeasurementUnitRef", { MeasurementUnitOID: oid.unit(unit) }) : null,
    f.type === "number"
      ? [
          range("GE", "Hard", f.min),
          range("LE", "Hard", f.max),
          range("GE", "Soft", f.softMin),
          range("LE", "Soft", f.softMax),
        ]
      : null,
    f.type === "choice" || f.type === "multichoice"
      ? el("CodeListRef", { CodeListOID: oid.codeList(def.code, f.name) })
      : null,
  );
}

function condition(conditionOid: string, showIf: string, what: string): string {
  return el(
    "ConditionDef",
    { OID: conditionOid, Name: `${what} not collected` },
    translated("Description", `${what} is not collected (hidden) unless: ${showIf}`),
    el("FormalExpression", { Context: EXPRESSION_CONTEXT }, esc(exceptionCondition(showIf))),
  );
}

/** The latest definition of each form, in the order of first appearance (one MetaDataVersion has one of each). */
export function latestForms(forms: FormDefinition[]): FormDefinition[] {
  const m = new Map<string, FormDefinition>();
  for (const f of forms) if (!m.has(f.code) || m.get(f.code)!.version < f.version) m.set(f.code, f);
  return [...m.values()];
}

/**
 * The Study element of an ODM file: the forms' metadata (one MetaDataVersion, with the latest version of each form
 * given) and the units they use.
 */
export function studyMetadataXml(
  study: { code: string; name: string },
  forms: FormDefinition[],
  opts: { missingCodeList?: boolean } = {},
): string {
  const defs = latestForms(forms);
  const visits = [...new Set(defs.flatMap((f) => f.visits))];
  const units = [...new Set(defs.flatMap((f) => f.fields.flatMap((fd) => unitOf(fd) ?? [])))];
  const groups = new Map(defs.map((d) => [d.code, itemGroups(d)]));
  const missing = opts.missingCodeList || defs.some((d) => d.fields.some((f) => f.type !== "calc" && f.missingCodes));
  const mdv = el(
    "MetaDataVersion",
    { OID: oid.mdv(study.code), Name: `${study.code} CRFs` },
    el(
      "Protocol",
      {},
      visits.map((v, i) => el("StudyEventRef", { StudyEventOID: oid.event(v), OrderNumber: i + 1, Mandatory: "No" })),
    ),
    visits.map((v) =>
      el(
        "StudyEventDef",
        { OID: oid.event(v), Name: v, Repeating: "No", Type: "Scheduled" },
        defs
          .filter((f) => f.visits.includes(v))
          .map((f) => el("FormRef", { FormOID: oid.form(f.code), Mandatory: "No" })),
      ),
    ),
    defs.map((d) => {
      const sections = new Map((d.sections ?? []).map((s) => [s.name, s]));
      return el(
        "FormDef",
        {
          OID: oid.form(d.code),
          Name: d.title,
          Repeating: yes(d.repeating),
          "ts:Version": d.version,
          "ts:Sections": d.sections?.length ? d.sections.map((s) => s.name).join(" ") : undefined,
        },
        groups.get(d.code)!.map((g, i) =>
          el("ItemGroupRef", {
            ItemGroupOID: g.oid,
            OrderNumber: i + 1,
            Mandatory: "No",
            CollectionExceptionConditionOID:
              g.section && sections.get(g.section)?.showIf ? oid.sectionCondition(d.code, g.section) : undefined,
          }),
        ),
      );
    }),
    defs.flatMap((d) =>
      groups.get(d.code)!.map((g) =>
        el(
          "ItemGroupDef",
          { OID: g.oid, Name: g.name, Repeating: "No", "ts:Section": g.section },
          g.fields.map((f) =>
            el("ItemRef", {
              ItemOID: oid.item(d.code, f.name),
              OrderNumber: d.fields.indexOf(f) + 1,
              Mandatory: yes(isRequired(f)),
              CollectionExceptionConditionOID: f.showIf ? oid.condition(d.code, f.name) : undefined,
              MethodOID: f.type === "calc" ? oid.method(d.code, f.name) : undefined,
            }),
          ),
        ),
      ),
    ),
    defs.flatMap((d) => d.fields.map((f) => itemDef(d, f))),
    defs.flatMap((d) =>
      d.fields.flatMap((f) =>
        f.type === "choice" || f.type === "multichoice"
          ? [
              el(
                "CodeList",
                { OID: oid.codeList(d.code, f.name), Name: f.label, DataType: "text" },
                f.options.map((o) => el("CodeListItem", { CodedValue: o.value }, translated("Decode", o.label))),
              ),
            ]
          : [],
      ),
    ),
    missing
      ? el(
          "CodeList",
          { OID: MISSING_CODE_LIST_OID, Name: "Missing-data codes (HL7 NullFlavor, SDTM NOT DONE)", DataType: "text" },
          MISSING_CODES.map((c) => el("CodeListItem", { CodedValue: c }, translated("Decode", MISSING_CODE_LABELS[c]))),
        )
      : null,
    defs.flatMap((d) => [
      ...(d.sections ?? []).flatMap((s) =>
        s.showIf ? [condition(oid.sectionCondition(d.code, s.name), s.showIf, `Section ${s.title}`)] : [],
      ),
      ...d.fields.flatMap((f) => (f.showIf ? [condition(oid.condition(d.code, f.name), f.showIf, f.label)] : [])),
    ]),
    defs.flatMap((d) =>
      d.fields.flatMap((f) =>
        f.type === "calc"
          ? [
              el(
                "MethodDef",
                { OID: oid.method(d.code, f.name), Name: `${f.label} calculation`, Type: "Computation" },
                translated("Description", `${f.label} = ${f.expression}`),
                el("FormalExpression", { Context: EXPRESSION_CONTEXT }, esc(f.expression)),
              ),
            ]
          : [],
      ),
    ),
  );
  return el(
    "Study",
    { OID: oid.study(study.code) },
    el(
      "GlobalVariables",
      {},
      text("StudyName", study.code),
      text("StudyDescription", study.name),
      text("ProtocolName", study.code),
    ),
    units.length
      ? el(
          "BasicDefinitions",
          {},
          units.map((u) => el("MeasurementUnit", { OID: oid.unit(u), Name: u }, translated("Symbol", unitLabel(u)))),
        )
      : null,
    mdv,
  );
}

/** The attributes of the ODM element every TrialSeal ODM file has (namespaces, version, who made it). */
export function odmRootAttributes(fileOid: string, fileType: "Snapshot" | "Transactional", now: Date) {
  return {
    xmlns: ODM_NS,
    "xmlns:xlink": "http://www.w3.org/1999/xlink",
    "xmlns:ds": "http://www.w3.org/2000/09/xmldsig#",
    "xmlns:ts": TS_NS,
    FileType: fileType,
    Granularity: fileType === "Snapshot" ? "Metadata" : "All",
    FileOID: `${fileOid}.${now.toISOString().replace(/[-:.]/g, "")}`,
    CreationDateTime: now.toISOString(),
    ODMVersion: "1.3.2",
    Originator: "TrialSeal",
    SourceSystem: "TrialSeal",
  };
}

/**
 * A study's forms as an ODM 1.3.2 file (FileType Snapshot, Granularity Metadata): one Study, one MetaDataVersion,
 * with the latest version of each form given.
 */
export function formsToOdmMetadata(
  study: { code: string; name: string },
  defs: FormDefinition[],
  now = new Date(),
): string {
  const root = el("ODM", odmRootAttributes(`TS.${study.code}.FORMS`, "Snapshot", now), studyMetadataXml(study, defs));
  return `<?xml version="1.0" encoding="UTF-8"?>\n${root}\n`;
}
