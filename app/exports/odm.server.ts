/**
 * CDISC ODM 1.3.2 export of a study (a Transactional file, so that every version is carried):
 * - Study / MetaDataVersion from the latest approved definition of each form, written by the same code as the forms'
 *   own ODM export (app/form-exchange/odm-metadata.ts, ADR 0027): visits, forms, item groups, items, code lists,
 *   conditions (showIf), methods (calculations), with TrialSeal's extension attributes (ts:).
 * - AdminData: the users who entered or signed data, the sites as Locations, a SignatureDef per meaning.
 * - ClinicalData: SubjectData / StudyEventData / FormData / ItemGroupData / ItemData. Every version of every
 *   record is there: version 1 as TransactionType Insert, each correction as Update of the items it changed,
 *   each ItemData with an AuditRecord (user, location, UTC time, reason for change) whose SourceID carries the
 *   ledger entry (`trialseal:seq=S;leaf=HEX;entry=ID`) that proves the value, and whose ts:ProtocolVersion is the
 *   protocol version in force at the site when it was entered (ADR 0048; absent before any was approved there).
 *   E-signatures are Signature elements referring to the SignatureDef of their meaning. A calculated value is an
 *   item like an entered one; a missing-data code is IsNull="Yes" with ts:MissingCode and an Annotation (the reason
 *   as Comment, the code as Flag); the row of a repeating form is a FormData with FormRepeatKey = its instance.
 * Values: numbers as the JSON number text they were stored as, booleans as true/false, multiple choices as a JSON
 * array of their option codes (codes may contain spaces or commas), dates and date-times as entered, text exactly
 * (LF, TAB and CR as character references, so that attribute-value normalisation leaves them as they were).
 */
import { PRIMARY_USE_CHOICES } from "../data-sharing/choices-statement.ts";
import type { FieldDefinition, FormDefinition } from "../../anchoring/forms/definition.ts";
import {
  MISSING_CODE_LIST_OID,
  itemGroupOfField,
  latestForms,
  odmRootAttributes,
  oid as metadataOid,
  studyMetadataXml,
} from "../form-exchange/odm-metadata.ts";
import { el, esc, text } from "../form-exchange/odm-metadata-xml.ts";
import type { ExportRecord, ExportVersion, StudyExport } from "./study-data.server.ts";

export const oid = {
  ...metadataOid,
  user: (id: string) => `U.${id}`,
  location: (site: string) => `L.${site}`,
  signatureDef: (meaning: string) => `SD.${meaning}`,
};

/**
 * What a record version holds beside its entered values (records service, issue 17): the missing-data codes entered
 * with a reason instead of a value, and the calculated values. Optional: versions written before hold neither.
 */
type VersionContent = ExportVersion & {
  missing?: Record<string, { code: string; reason: string }>;
  calculated?: Record<string, number | null>;
};
/** A record, and its instance (the row of a repeating form; 1 otherwise). */
type RecordRow = ExportRecord & { instance?: number };

/** The text of a value in ODM (and back, in tests and the evidence-package check). */
export function odmValue(f: FieldDefinition | undefined, v: unknown): string | null {
  if (v === null || v === undefined) return null;
  if (Array.isArray(v)) return JSON.stringify(v);
  if (typeof v === "boolean") return v ? "true" : "false";
  if (f?.type === "number" && typeof v === "number") return JSON.stringify(v);
  return String(v);
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

/**
 * What a version says of one item: a value (entered, null when stored as no value, or calculated), or a missing-data
 * code with its reason. Version 1 writes every entered item, null ones too, as the evidence-package check expects
 * (anchoring/verifier/verify-package.ts `odmExpected`); a correction writes what changed, no value and an absent item
 * being the same.
 */
type ItemState = { value: unknown } | { missing: { code: string; reason: string } };
function itemStates(v: VersionContent): Map<string, ItemState> {
  const out = new Map<string, ItemState>();
  for (const [n, value] of Object.entries(v.values)) out.set(n, { value });
  for (const [n, value] of Object.entries(v.calculated ?? {})) if (value !== null) out.set(n, { value });
  for (const [n, m] of Object.entries(v.missing ?? {})) out.set(n, { missing: m });
  return out;
}
const stateKey = (s: ItemState | undefined) =>
  s === undefined || ("value" in s && (s.value === null || s.value === undefined)) ? "null" : JSON.stringify(s);
const sameState = (a: ItemState | undefined, b: ItemState | undefined) => stateKey(a) === stateKey(b);

/**
 * One ItemData: a value as `Value`; no value as `IsNull="Yes"`; a missing-data code as `IsNull="Yes"` with
 * `ts:MissingCode` (TrialSeal's extension, ADR 0027) and an Annotation whose Comment is the reason and whose Flag is
 * the code in the missing-data code list (standard ODM, for readers that drop the extension).
 */
function itemData(r: RecordRow, v: VersionContent, n: string, state: ItemState | undefined, f?: FieldDefinition) {
  const value = state && "value" in state ? odmValue(f, state.value) : null;
  const missing = state && "missing" in state ? state.missing : undefined;
  return el(
    "ItemData",
    {
      ItemOID: oid.item(r.form, n),
      TransactionType: v.version === 1 ? "Insert" : "Update",
      Value: value ?? undefined,
      IsNull: value === null ? "Yes" : undefined,
      "ts:MissingCode": missing?.code,
    },
    el(
      "AuditRecord",
      {
        EditPoint: v.version === 1 ? undefined : "DataManagement",
        ID: `AR.${r.id}.${v.version}.${n}`,
        // The protocol version in force at the site when this version was entered (ADR 0048); none: absent.
        "ts:ProtocolVersion": v.protocolVersion ?? undefined,
      },
      el("UserRef", {
        UserOID: oid.user(v.actorId ?? (v.actorToken ? `token.${v.actorToken.id}` : "integration")),
      }),
      el("LocationRef", { LocationOID: oid.location(r.site) }),
      text("DateTimeStamp", v.at),
      v.reason ? text("ReasonForChange", v.reason) : null,
      text("SourceID", sourceId(v)),
    ),
    missing
      ? el(
          "Annotation",
          { SeqNum: 1 },
          text("Comment", missing.reason),
          el("Flag", {}, el("FlagValue", { CodeListOID: MISSING_CODE_LIST_OID }, esc(missing.code))),
        )
      : null,
  );
}

/**
 * A record as FormData (FormRepeatKey = its instance when the form repeats): each version's items as they changed,
 * each in the ItemGroupData of its item group in the form's latest definition.
 */
function recordForm(x: StudyExport, latest: FormDefinition[], r: RecordRow): string {
  const def = latest.find((f) => f.code === r.form);
  const fieldOf = (name: string) =>
    x.forms.find((f) => f.code === r.form)?.fields.find((fd) => fd.name === name) ??
    def?.fields.find((fd) => fd.name === name);
  const groupOf = def ? itemGroupOfField(def) : new Map<string, string>();
  const byGroup = new Map<string, string[]>();
  let prev = new Map<string, ItemState>();
  for (const v of r.versions as VersionContent[]) {
    const cur = itemStates(v);
    const changed =
      v.version === 1
        ? [...cur.keys()]
        : [...new Set([...prev.keys(), ...cur.keys()])].filter((n) => !sameState(prev.get(n), cur.get(n)));
    for (const n of changed) {
      const g = groupOf.get(n) ?? oid.group(r.form);
      byGroup.set(g, [...(byGroup.get(g) ?? []), itemData(r, v, n, cur.get(n), fieldOf(n))]);
    }
    prev = cur;
  }
  if (!byGroup.size) byGroup.set(oid.group(r.form), []);
  const sig = r.signatures[r.signatures.length - 1];
  const transaction = r.versions.length > 1 ? "Update" : "Insert";
  return el(
    "FormData",
    {
      FormOID: oid.form(r.form),
      FormRepeatKey: def?.repeating ? (r.instance ?? 1) : undefined,
      TransactionType: transaction,
    },
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
    [...byGroup.entries()].map(([g, items]) =>
      el("ItemGroupData", { ItemGroupOID: g, TransactionType: transaction }, items),
    ),
  );
}

export function studyOdm(x: StudyExport, now = new Date()): string {
  const latest = latestForms(x.forms);
  const anyMissing = x.records.some((r) =>
    r.versions.some((v) => Object.keys((v as VersionContent).missing ?? {}).length),
  );
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
            recs.filter((r) => r.visit === v).map((r) => recordForm(x, latest, r)),
          ),
        ),
      );
    }),
  );
  return `<?xml version="1.0" encoding="UTF-8"?>\n${el(
    "ODM",
    // The choices it honours (ADR 0071), in ODM's own place for a description of the file.
    { ...odmRootAttributes(`TS.${x.study.code}`, "Transactional", now), Description: PRIMARY_USE_CHOICES },
    studyMetadataXml({ code: x.study.code, name: x.study.title }, x.forms, { missingCodeList: anyMissing }),
    adminData(x, meanings),
    clinical,
  )}\n`;
}
