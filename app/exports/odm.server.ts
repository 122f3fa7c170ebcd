/**
 * CDISC ODM 1.3.2 export of a study (a Transactional file, so that every version is carried):
 * - Study / MetaDataVersion from the approved form definitions: one StudyEventDef per visit, one FormDef with
 *   one ItemGroupDef per form, an ItemDef per field (data type, question, unit, range checks, code lists).
 * - AdminData: the users who entered or signed data, the sites as Locations, a SignatureDef per meaning.
 * - ClinicalData: SubjectData / StudyEventData / FormData / ItemGroupData / ItemData. Every version of every
 *   record is there: version 1 as TransactionType Insert, each correction as Update of the items it changed,
 *   each ItemData with an AuditRecord (user, location, UTC time, reason for change) whose SourceID carries the
 *   ledger entry (`trialseal:seq=S;leaf=HEX;entry=ID`) that proves the value. E-signatures are Signature elements
 *   referring to the SignatureDef of their meaning.
 * Values: numbers as the JSON number text they were stored as, booleans as true/false, multiple choices as a JSON
 * array of their option codes (codes may contain spaces or commas), dates and date-times as entered, text exactly
 * (LF, TAB and CR as character references, so that attribute-value normalisation leaves them as they were).
 */
import { XML_UNSAFE, isRequired, type FieldDefinition, type FormDefinition } from "../../anchoring/forms/definition.ts";
import type { ExportRecord, StudyExport } from "./study-data.server.ts";

/**
 * Characters XML 1.0 cannot carry at all, not even as a character reference. Record input refuses them
 * (anchoring/forms/definition.ts); data stored before that has them replaced by U+FFFD, visibly, so that the file stays
 * well-formed (the evidence-package check then reports such an item as not matching its sealed value, as it is).
 */
const NOT_XML = new RegExp(XML_UNSAFE.source, "g");
/** The special characters, and CR, which a parser would otherwise turn into LF (end-of-line handling). */
const esc = (s: string) =>
  s
    .replace(NOT_XML, "\ufffd")
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/\r/g, "&#13;");
/**
 * An attribute value: also TAB and LF as references, which attribute-value normalisation leaves alone (a raw TAB,
 * LF or CR in an attribute is read back as a space), so that a parser gives back the exact value.
 */
const escAttr = (s: string) => esc(s).replace(/\n/g, "&#10;").replace(/\t/g, "&#9;");

/** A tiny XML writer: elements with attributes (undefined ones left out) and children or text. */
type Node = string | null | undefined | false | Node[];
function el(name: string, attrs: Record<string, string | number | undefined | null>, ...children: Node[]): string {
  const a = Object.entries(attrs)
    .filter(([, v]) => v !== undefined && v !== null)
    .map(([k, v]) => ` ${k}="${escAttr(String(v))}"`)
    .join("");
  const body = children.flat(Infinity as 1).filter((c): c is string => typeof c === "string" && c.length > 0);
  return body.length ? `<${name}${a}>${body.join("")}</${name}>` : `<${name}${a}/>`;
}
const text = (name: string, t: string) => `<${name}>${esc(t)}</${name}>`;
const translated = (name: string, t: string, lang = "en") =>
  `<${name}><TranslatedText xml:lang="${escAttr(lang)}">${esc(t)}</TranslatedText></${name}>`;

export const oid = {
  study: (code: string) => `ST.${code}`,
  mdv: (code: string) => `MDV.${code}`,
  event: (visit: string) => `SE.${visit}`,
  form: (form: string) => `F.${form}`,
  group: (form: string) => `IG.${form}`,
  item: (form: string, field: string) => `I.${form}.${field}`,
  codeList: (form: string, field: string) => `CL.${form}.${field}`,
  unit: (u: string) => `MU.${u.replace(/[^A-Za-z0-9_.-]/g, "_")}`,
  user: (id: string) => `U.${id}`,
  location: (site: string) => `L.${site}`,
  signatureDef: (meaning: string) => `SD.${meaning}`,
};

function dataType(f: FieldDefinition): string {
  switch (f.type) {
    case "number":
      return f.integer ? "integer" : "float";
    case "date":
      return "date";
    case "datetime":
      return "datetime";
    case "boolean":
      return "boolean";
    case "choice":
      return "text";
    default:
      return "text";
  }
}

/** The text of a value in ODM (and back, in tests and the evidence-package check). */
export function odmValue(f: FieldDefinition | undefined, v: unknown): string | null {
  if (v === null || v === undefined) return null;
  if (Array.isArray(v)) return JSON.stringify(v);
  if (typeof v === "boolean") return v ? "true" : "false";
  if (f?.type === "number" && typeof v === "number") return JSON.stringify(v);
  return String(v);
}

/** The latest definition of each form (what the MetaDataVersion describes). */
function latestForms(forms: FormDefinition[]): FormDefinition[] {
  const m = new Map<string, FormDefinition>();
  for (const f of forms) if (!m.has(f.code) || m.get(f.code)!.version < f.version) m.set(f.code, f);
  return [...m.values()];
}

function metaData(x: StudyExport): string {
  const forms = latestForms(x.forms);
  const visits = [...new Set(forms.flatMap((f) => f.visits))];
  const units = [
    ...new Set(forms.flatMap((f) => f.fields.flatMap((fd) => (fd.type === "number" && fd.unit ? [fd.unit] : [])))),
  ];
  const basic = units.length
    ? el(
        "BasicDefinitions",
        {},
        units.map((u) => el("MeasurementUnit", { OID: oid.unit(u), Name: u }, translated("Symbol", u))),
      )
    : null;
  const mdv = el(
    "MetaDataVersion",
    { OID: oid.mdv(x.study.code), Name: `${x.study.code} CRFs` },
    el(
      "Protocol",
      {},
      visits.map((v, i) => el("StudyEventRef", { StudyEventOID: oid.event(v), OrderNumber: i + 1, Mandatory: "No" })),
    ),
    visits.map((v) =>
      el(
        "StudyEventDef",
        { OID: oid.event(v), Name: v, Repeating: "No", Type: "Scheduled" },
        forms
          .filter((f) => f.visits.includes(v))
          .map((f) => el("FormRef", { FormOID: oid.form(f.code), Mandatory: "No" })),
      ),
    ),
    forms.map((f) =>
      el(
        "FormDef",
        { OID: oid.form(f.code), Name: f.title, Repeating: "No" },
        el("ItemGroupRef", { ItemGroupOID: oid.group(f.code), Mandatory: "Yes" }),
      ),
    ),
    forms.map((f) =>
      el(
        "ItemGroupDef",
        { OID: oid.group(f.code), Name: f.title, Repeating: "No" },
        f.fields.map((fd, i) =>
          el("ItemRef", {
            ItemOID: oid.item(f.code, fd.name),
            OrderNumber: i + 1,
            Mandatory: isRequired(fd) ? "Yes" : "No",
          }),
        ),
      ),
    ),
    forms.flatMap((f) =>
      f.fields.map((fd) =>
        el(
          "ItemDef",
          {
            OID: oid.item(f.code, fd.name),
            Name: fd.name,
            DataType: dataType(fd),
            Length: fd.type === "text" && fd.maxLength ? fd.maxLength : undefined,
          },
          translated("Question", fd.label),
          fd.type === "number" && fd.unit ? el("MeasurementUnitRef", { MeasurementUnitOID: oid.unit(fd.unit) }) : null,
          fd.type === "number" && fd.min !== undefined
            ? el("RangeCheck", { Comparator: "GE", SoftHard: "Hard" }, text("CheckValue", String(fd.min)))
            : null,
          fd.type === "number" && fd.max !== undefined
            ? el("RangeCheck", { Comparator: "LE", SoftHard: "Hard" }, text("CheckValue", String(fd.max)))
            : null,
          fd.type === "choice" || fd.type === "multichoice"
            ? el("CodeListRef", { CodeListOID: oid.codeList(f.code, fd.name) })
            : null,
        ),
      ),
    ),
    forms.flatMap((f) =>
      f.fields.flatMap((fd) =>
        fd.type === "choice" || fd.type === "multichoice"
          ? [
              el(
                "CodeList",
                { OID: oid.codeList(f.code, fd.name), Name: fd.label, DataType: "text" },
                fd.options.map((o) => el("CodeListItem", { CodedValue: o.value }, translated("Decode", o.label))),
              ),
            ]
          : [],
      ),
    ),
  );
  return el(
    "Study",
    { OID: oid.study(x.study.code) },
    el(
      "GlobalVariables",
      {},
      text("StudyName", x.study.code),
      text("StudyDescription", x.study.title),
      text("ProtocolName", x.study.code),
    ),
    basic,
    mdv,
  );
}

/** The API tokens that wrote record versions, by id, with the name of each at its latest write. */
function tokensOf(x: StudyExport): Map<string, string> {
  const out = new Map<string, string>();
  for (const r of x.records) for (const v of r.versions) if (v.actorToken) out.set(v.actorToken.id, v.actorToken.name);
  return new Map([...out.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

function adminData(x: StudyExport, meanings: string[]): string {
  return el(
    "AdminData",
    { StudyOID: oid.study(x.study.code) },
    [...x.users.entries()].map(([id, name]) =>
      el("User", { OID: oid.user(id), UserType: "Investigator" }, text("FullName", name)),
    ),
    [...tokensOf(x).entries()].map(([id, name]) =>
      el("User", { OID: oid.user(`token.${id}`), UserType: "Other" }, text("FullName", `API token ${name}`)),
    ),
    x.records.some((r) => r.versions.some((v) => !v.actorId && !v.actorToken))
      ? el(
          "User",
          { OID: oid.user("integration"), UserType: "Other" },
          text("FullName", "Integration API (study token)"),
        )
      : null,
    x.sites.map((s) =>
      el(
        "Location",
        { OID: oid.location(s.code), Name: s.name, LocationType: "Site" },
        el("MetaDataVersionRef", {
          StudyOID: oid.study(x.study.code),
          MetaDataVersionOID: oid.mdv(x.study.code),
          EffectiveDate: x.study.createdAt.slice(0, 10),
        }),
      ),
    ),
    meanings.map((m) =>
      el(
        "SignatureDef",
        { OID: oid.signatureDef(m), Methodology: "Electronic" },
        text("Meaning", m),
        text(
          "LegalReason",
          "21 CFR Part 11 electronic signature (re-authenticated; bound to the signed version's ledger entry)",
        ),
      ),
    ),
  );
}

export const sourceId = (v: { seq: number | null; leafHash: string | null; entryId: string }) =>
  `trialseal:seq=${v.seq ?? "pending"};leaf=${v.leafHash ?? "pending"};entry=${v.entryId}`;

function recordForm(x: StudyExport, r: ExportRecord): string {
  const def = latestForms(x.forms).find((f) => f.code === r.form);
  const fieldOf = (name: string) =>
    x.forms.find((f) => f.code === r.form)?.fields.find((fd) => fd.name === name) ??
    def?.fields.find((fd) => fd.name === name);
  const items: string[] = [];
  let prev: Record<string, unknown> = {};
  for (const v of r.versions) {
    const names = [...new Set([...Object.keys(prev), ...Object.keys(v.values)])];
    const changed =
      v.version === 1
        ? Object.keys(v.values)
        : names.filter((n) => JSON.stringify(prev[n] ?? null) !== JSON.stringify(v.values[n] ?? null));
    for (const n of changed) {
      const value = odmValue(fieldOf(n), v.values[n]);
      items.push(
        el(
          "ItemData",
          {
            ItemOID: oid.item(r.form, n),
            TransactionType: v.version === 1 ? "Insert" : "Update",
            Value: value ?? undefined,
            IsNull: value === null ? "Yes" : undefined,
          },
          el(
            "AuditRecord",
            { EditPoint: v.version === 1 ? undefined : "DataManagement", ID: `AR.${r.id}.${v.version}.${n}` },
            el("UserRef", {
              UserOID: oid.user(v.actorId ?? (v.actorToken ? `token.${v.actorToken.id}` : "integration")),
            }),
            el("LocationRef", { LocationOID: oid.location(r.site) }),
            text("DateTimeStamp", v.at),
            v.reason ? text("ReasonForChange", v.reason) : null,
            text("SourceID", sourceId(v)),
          ),
        ),
      );
    }
    prev = v.values;
  }
  const sig = r.signatures[r.signatures.length - 1];
  return el(
    "FormData",
    { FormOID: oid.form(r.form), TransactionType: r.versions.length > 1 ? "Update" : "Insert" },
    sig
      ? el(
          "Signature",
          { ID: `SIG.${sig.id}` },
          el("UserRef", { UserOID: oid.user(sig.signerId) }),
          el("LocationRef", { LocationOID: oid.location(r.site) }),
          el("SignatureRef", { SignatureOID: oid.signatureDef(sig.meaning) }),
          text("DateTimeStamp", sig.at),
        )
      : null,
    el(
      "ItemGroupData",
      { ItemGroupOID: oid.group(r.form), TransactionType: r.versions.length > 1 ? "Update" : "Insert" },
      items,
    ),
  );
}

export function studyOdm(x: StudyExport, now = new Date()): string {
  const meanings = [...new Set(x.records.flatMap((r) => r.signatures.map((s) => s.meaning)))].sort();
  const bySubject = new Map<string, ExportRecord[]>();
  for (const r of x.records) bySubject.set(r.subject, [...(bySubject.get(r.subject) ?? []), r]);
  const clinical = el(
    "ClinicalData",
    { StudyOID: oid.study(x.study.code), MetaDataVersionOID: oid.mdv(x.study.code) },
    x.participants.map((p) => {
      const recs = bySubject.get(p.subject) ?? [];
      const visits = [...new Set(recs.map((r) => r.visit))];
      return el(
        "SubjectData",
        { SubjectKey: p.subject, TransactionType: "Insert" },
        el("SiteRef", { LocationOID: oid.location(p.site) }),
        visits.map((v) =>
          el(
            "StudyEventData",
            { StudyEventOID: oid.event(v), TransactionType: "Insert" },
            recs.filter((r) => r.visit === v).map((r) => recordForm(x, r)),
          ),
        ),
      );
    }),
  );
  return `<?xml version="1.0" encoding="UTF-8"?>\n${el(
    "ODM",
    {
      xmlns: "http://www.cdisc.org/ns/odm/v1.3",
      "xmlns:xlink": "http://www.w3.org/1999/xlink",
      "xmlns:ds": "http://www.w3.org/2000/09/xmldsig#",
      FileType: "Transactional",
      Granularity: "All",
      FileOID: `TS.${x.study.code}.${now.toISOString().replace(/[-:.]/g, "")}`,
      CreationDateTime: now.toISOString(),
      ODMVersion: "1.3.2",
      Originator: "TrialSeal",
      SourceSystem: "TrialSeal",
    },
    metaData(x),
    adminData(x, meanings),
    clinical,
  )}\n`;
}
