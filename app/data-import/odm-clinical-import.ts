/**
 * Reading CDISC ODM 1.3.x ClinicalData as REDCap ("CDISC ODM (XML)" export) and OpenClinica write it (issue 18,
 * ADR 0036): SubjectData -> subject (OpenClinica's StudySubjectID when given), StudyEventData -> visit, FormData ->
 * form, the ItemGroupData of one form (and one repeat of a repeating form: REDCap's FormRepeatKey, else the
 * ItemGroupRepeatKey) -> one row, ItemData -> values. The latest AuditRecord of a row's form, groups or items
 * becomes the source system's claims (user, time, reason); Signature elements are not carried over (one note).
 *
 * Rows are numbered by the ItemGroupData's position in the file (1-based: a row is its first group), columns are
 * ItemOIDs. The file must have no DOCTYPE (so no entity can be declared, let alone fetched or expanded).
 */
import { XMLParser, XMLValidator } from "fast-xml-parser";
import type { FormDefinition } from "../../anchoring/forms/definition.ts";
import {
  bookkeeping,
  type Cell,
  conversionOptions,
  convertCells,
  type ImportForm,
  matchCheckbox,
  matchField,
  matchForm,
  matchVisit,
} from "./import-values.ts";
import {
  type ImportProblem,
  type ImportRow,
  type ParsedImport,
  type ReadImportInput,
  type SourceClaims,
  UnusableFileError,
} from "./import-rows.ts";

/** How deep elements may nest (ODM ClinicalData needs 8, with audit records 10). */
const MAX_DEPTH = 24;

const LISTS = new Set([
  "ClinicalData",
  "SubjectData",
  "StudyEventData",
  "FormData",
  "ItemGroupData",
  "ItemData",
  "AuditRecord",
  "Signature",
  "ItemDataString",
  "ItemDataInteger",
  "ItemDataFloat",
  "ItemDataDate",
  "ItemDataDatetime",
  "ItemDataBoolean",
]);

// biome-ignore lint/suspicious/noExplicitAny: fast-xml-parser's output is untyped; read through the helpers below.
type X = any;

const list = (node: X, name: string): X[] => {
  const v = node?.[name];
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
};
const attr = (node: X, name: string): string | undefined => {
  const v = node?.[`@${name}`];
  return typeof v === "string" ? v : undefined;
};
const text = (node: X): string | undefined =>
  typeof node === "string" ? node : typeof node?.["#text"] === "string" ? node["#text"] : undefined;

/** The source system's claims of one AuditRecord, and when it says it was made (ms; NaN when unreadable). */
function claimsOf(a: X): { claims: SourceClaims; at: number } {
  const at = text(list(a, "DateTimeStamp")[0])?.trim() ?? null;
  return {
    claims: {
      user: attr(list(a, "UserRef")[0], "UserOID") ?? null,
      at,
      reason: text(list(a, "ReasonForChange")[0])?.trim() || null,
    },
    at: at === null ? Number.NaN : Date.parse(at),
  };
}

/** The latest of audit records (by DateTimeStamp; one without a readable time counts as earlier than any). */
function latest(records: X[]): SourceClaims | null {
  let best: { claims: SourceClaims; at: number } | null = null;
  for (const r of records) {
    const c = claimsOf(r);
    if (!best || (Number.isNaN(best.at) ? true : !Number.isNaN(c.at) && c.at >= best.at)) best = c;
  }
  return best?.claims ?? null;
}

/** Parse the XML, refusing a DOCTYPE and a file that is not well-formed: both unusable. */
function parseXml(xml: string): X {
  if (/<!DOCTYPE/i.test(xml))
    throw new UnusableFileError(
      "The file declares a DOCTYPE, which an ODM export never needs; it is refused so that no entity is read",
    );
  const valid = XMLValidator.validate(xml);
  if (valid !== true)
    throw new UnusableFileError(`The file is not well-formed XML (line ${valid.err.line}): ${valid.err.msg}`);
  return new XMLParser({
    ignoreAttributes: false,
    attributeNamePrefix: "@",
    removeNSPrefix: true,
    parseTagValue: false,
    parseAttributeValue: false,
    trimValues: true,
    processEntities: true,
    htmlEntities: false,
    maxNestedTags: MAX_DEPTH,
    isArray: (name) => LISTS.has(name),
  }).parse(xml);
}

/** The items of an ItemGroupData: ItemData/@Value, and ODM 1.3.1's typed ItemData* elements' text. */
function itemsOf(group: X): { oid: string; value: string; audit: X[]; isNull: boolean }[] {
  const out: { oid: string; value: string; audit: X[]; isNull: boolean }[] = [];
  for (const [name, nodes] of Object.entries(group ?? {})) {
    if (name !== "ItemData" && !name.startsWith("ItemData")) continue;
    for (const n of nodes as X[]) {
      const oid = attr(n, "ItemOID");
      if (oid === undefined) continue;
      out.push({
        oid,
        value: attr(n, "Value") ?? text(n) ?? "",
        audit: list(n, "AuditRecord"),
        isNull: attr(n, "IsNull") === "Yes",
      });
    }
  }
  return out;
}

interface Subject {
  code: string;
  /** REDCap's record id item, which is the subject, not a field. */
  recordIdField: string;
}

/** Read ODM ClinicalData into rows (nothing written; see import-rows.ts). */
export function readOdmClinicalImport(input: ReadImportInput, xml: string): ParsedImport {
  const doc = parseXml(xml);
  const odm = doc?.ODM;
  if (!odm) throw new UnusableFileError("The file is XML but not CDISC ODM: its root element is not ODM");
  const clinical = list(odm, "ClinicalData");
  if (clinical.length === 0)
    throw new UnusableFileError(
      "The ODM file has no ClinicalData: it holds no subjects' data (export the data, not only the metadata)",
    );

  const problems: ImportProblem[] = [];
  const notes: string[] = [];
  const rows: ImportRow[] = [];
  const mapping = new Map<string, ParsedImport["mapping"][number]>();
  /** Names that did not match, reported once with the first row they are on and how often they occur. */
  const unmatched = new Map<string, { problem: ImportProblem; count: number }>();
  const once = (key: string, problem: ImportProblem) => {
    const u = unmatched.get(key);
    if (u) u.count++;
    else unmatched.set(key, { problem, count: 1 });
  };
  let groupOrdinal = 0;
  let signatures = 0;
  const conversion = conversionOptions(input);

  const readForm = (subject: Subject, visitFor: (f: ImportForm) => string | null, eventName: string, form: X) => {
    signatures += list(form, "Signature").length;
    const groups = list(form, "ItemGroupData");
    const firstRow = groupOrdinal + 1;
    const formOid = attr(form, "FormOID") ?? "";
    const ours = matchForm(formOid, input.forms, input.map);
    if (!ours) {
      groupOrdinal += groups.length;
      once(`form:${formOid}`, {
        row: firstRow,
        column: null,
        message:
          `form ${formOid} matches no form of the study (${input.forms.map((f) => f.code).join(", ")}); ` +
          "map it in the --map file under forms",
      });
      return;
    }
    const def = ours.definition;
    const visit = visitFor(ours);
    if (visit === null) {
      groupOrdinal += groups.length;
      once(`visit:${eventName}:${def.code}`, {
        row: firstRow,
        column: null,
        message:
          `event ${eventName || "(none)"} matches no visit of form ${def.code} (${def.visits.join(", ")}); ` +
          "map it in the --map file under visits",
      });
      return;
    }
    const formKey = attr(form, "FormRepeatKey");
    const byInstance = new Map<number, { row: number; cells: Cell[]; audit: X[] }>();
    for (const g of groups) {
      groupOrdinal++;
      signatures += list(g, "Signature").length;
      const groupKey = attr(g, "ItemGroupRepeatKey");
      const key = def.repeating ? (formKey ?? groupKey ?? "1") : "1";
      const extra = def.repeating ? null : [formKey, groupKey].find((k) => k !== undefined && k !== "1");
      if (extra) {
        problems.push({
          row: groupOrdinal,
          column: null,
          message: `form ${def.code} does not repeat, but the file gives it a repeat key ${extra}`,
        });
        continue;
      }
      if (!/^\d{1,6}$/.test(key) || Number(key) < 1) {
        problems.push({
          row: groupOrdinal,
          column: null,
          message: `the repeat key ${key} is not a whole number from 1`,
        });
        continue;
      }
      const instance = Number(key);
      let slot = byInstance.get(instance);
      if (!slot) {
        slot = { row: groupOrdinal, cells: [], audit: [...list(form, "AuditRecord")] };
        byInstance.set(instance, slot);
      }
      slot.audit.push(...list(g, "AuditRecord"));
      for (const item of itemsOf(g)) {
        slot.audit.push(...item.audit);
        // REDCap repeats the record id as an item of the first form (SubjectData/@redcap:RecordIdField names it).
        if (item.oid === subject.recordIdField) continue;
        const box = matchCheckbox(item.oid, def, input.map);
        const field = box?.field ?? matchField(item.oid, def, input.map);
        const mapKey = `${def.code}|${item.oid}`;
        if (!mapping.has(mapKey)) {
          const note =
            field?.type === "calc" ? "calculated here; not read" : field ? undefined : bookkeeping(item.oid, def);
          mapping.set(mapKey, {
            column: item.oid,
            form: def.code,
            field: field && field.type !== "calc" ? field.name : null,
            ...(note ? { note } : {}),
          });
        }
        if (field?.type === "calc" || (!field && bookkeeping(item.oid, def))) continue;
        if (!field || (field.type === "multichoice" && !box && item.oid.includes("___"))) {
          once(`item:${def.code}:${item.oid}`, {
            row: groupOrdinal,
            column: item.oid,
            message:
              `${item.oid} is not a field of form ${def.code} v${ours.version}; ` +
              `map it in the --map file under fields.${def.code}`,
          });
          continue;
        }
        if (item.isNull || item.value.trim() === "") continue;
        slot.cells.push({ field, column: item.oid, row: groupOrdinal, text: item.value, option: box?.option });
      }
    }
    for (const [instance, slot] of byInstance) {
      if (slot.cells.length === 0) continue;
      const converted = convertCells(def, slot.cells, conversion);
      problems.push(...converted.problems);
      const empty = Object.keys(converted.values).length === 0 && Object.keys(converted.missing).length === 0;
      if (empty && converted.problems.length === 0) continue;
      rows.push({
        row: slot.row,
        subject: subject.code,
        visit,
        form: def.code,
        instance,
        values: converted.values,
        missing: converted.missing,
        claims: latest(slot.audit),
      });
    }
  };

  for (const cd of clinical) {
    for (const s of list(cd, "SubjectData")) {
      signatures += list(s, "Signature").length;
      const subject: Subject = {
        code: (attr(s, "StudySubjectID") ?? attr(s, "SubjectKey") ?? "").trim(),
        recordIdField: attr(s, "RecordIdField") ?? "record_id",
      };
      if (subject.code === "") {
        problems.push({ row: groupOrdinal + 1, column: null, message: "a SubjectData has no SubjectKey" });
        continue;
      }
      for (const e of list(s, "StudyEventData")) {
        signatures += list(e, "Signature").length;
        const oid = attr(e, "StudyEventOID") ?? "";
        const repeat = Number(attr(e, "StudyEventRepeatKey") ?? "1") || 1;
        const visitFor = (f: ImportForm) => matchVisit(oid, visitsOf(f.definition, input.visits), input.map, repeat);
        for (const f of list(e, "FormData"))
          readForm(subject, visitFor, repeat > 1 ? `${oid} (repeat ${repeat})` : oid, f);
      }
      // A classic (non-longitudinal) REDCap project has no events: a form of one visit is at that visit.
      const single = (f: ImportForm) => {
        const v = visitsOf(f.definition, input.visits);
        return v.length === 1 ? v[0] : null;
      };
      for (const f of list(s, "FormData")) readForm(subject, single, "", f);
    }
  }
  for (const { problem, count } of unmatched.values())
    problems.push(count > 1 ? { ...problem, message: `${problem.message} (and ${count - 1} more times)` } : problem);
  problems.sort((a, b) => a.row - b.row);
  if (signatures > 0)
    notes.push(
      `The file carries ${signatures} e-signature${signatures === 1 ? "" : "s"} of the source system; they are not ` +
        "carried over: records are signed here by our investigators",
    );
  if (rows.length === 0 && problems.length === 0) notes.push("The file has no value to import");
  return { format: "odm", rows, problems, mapping: [...mapping.values()], notes };
}

/** The visits a form may be imported at: its own, those of the study (when given). */
function visitsOf(def: FormDefinition, visits: string[]): string[] {
  return def.visits.filter((v) => visits.length === 0 || visits.includes(v));
}
