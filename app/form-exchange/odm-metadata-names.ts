/**
 * The names the ODM files use (namespaces, the expression language's Context, OIDs), shared by the writer
 * (odm-metadata.ts) and the reader (odm-metadata-import.ts) of forms as ODM, and the study export.
 */
export const ODM_NS = "http://www.cdisc.org/ns/odm/v1.3";
/** TrialSeal's ODM extension namespace (odm-extension/trialseal-ns-1.xsd). */
export const TS_NS = "https://trialseal.org/odm/1";
/** The expression language's name in a FormalExpression's Context (REDCap's syntax, docs/forms.md). */
export const EXPRESSION_CONTEXT = "REDCap";
/** The code list of missing-data codes, cited by the FlagValue of an ItemData holding one (the study export). */
export const MISSING_CODE_LIST_OID = "CL.TS.MISSING";

export const oid = {
  study: (code: string) => `ST.${code}`,
  mdv: (code: string) => `MDV.${code}`,
  event: (visit: string) => `SE.${visit}`,
  form: (form: string) => `F.${form}`,
  group: (form: string) => `IG.${form}`,
  item: (form: string, field: string) => `I.${form}.${field}`,
  codeList: (form: string, field: string) => `CL.${form}.${field}`,
  unit: (u: string) => `MU.${u.replace(/[^A-Za-z0-9_.-]/g, "_")}`,
  condition: (form: string, field: string) => `CD.${form}.${field}`,
  sectionCondition: (form: string, section: string) => `CD.${form}.S.${section}`,
  method: (form: string, field: string) => `MT.${form}.${field}`,
};
