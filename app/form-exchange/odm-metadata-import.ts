/**
 * Reading form definitions from a CDISC ODM 1.3.x MetaDataVersion (ADR 0027): TrialSeal's own files
 * (odm-metadata.ts, with the ts: extension attributes) come back exactly; files from other systems as well as ODM
 * says: REDCap's (redcap: attributes: field type, branching logic, calculation, section header, field note,
 * identifier, checkbox choices) and OpenClinica's (repeating item groups, range checks, code lists). Every problem is
 * listed with where it is ("ItemDef I.VITALS.SBP"); a file that cannot be read at all gives one problem at "file".
 * Input limits: a size cap, no DOCTYPE (so no entity can be declared, let alone expanded), a nesting depth cap.
 */
import { XMLParser } from "fast-xml-parser";
import {
  FIELD_CLASSES,
  FormDefinitionSchema,
  MISSING_CODES,
  type FieldDefinition,
  type FormDefinition,
  type MissingCode,
} from "../../anchoring/forms/definition.ts";
import { compileExpression, ExpressionError } from "../../anchoring/forms/expression.ts";
import { EXPRESSION_CONTEXT, ODM_NS, TS_NS } from "./odm-metadata-names.ts";

export const ODM_MAX_BYTES = 10 * 1024 * 1024;
const MAX_DEPTH = 32;
const REDCAP_NS = "https://projectredcap.org";
const NAME = /^[a-z][a-z0-9_]{0,63}$/;
const CODE = /^[A-Z0-9][A-Z0-9_-]{0,31}$/;
/** The visit of a form when the file has no StudyEventDef at all (a classic REDCap project). */
export const DEFAULT_VISIT = "BASELINE";

export interface OdmProblem {
  where: string;
  message: string;
}

// biome-ignore lint/suspicious/noExplicitAny: fast-xml-parser's output is untyped; read through the helpers below.
type X = any;

const REPEATED = new Set([
  "Study",
  "MetaDataVersion",
  "StudyEventRef",
  "StudyEventDef",
  "FormRef",
  "FormDef",
  "ItemGroupRef",
  "ItemGroupDef",
  "ItemRef",
  "ItemDef",
  "CodeList",
  "CodeListItem",
  "EnumeratedItem",
  "RangeCheck",
  "CheckValue",
  "ConditionDef",
  "MethodDef",
  "FormalExpression",
  "MeasurementUnit",
  "MeasurementUnitRef",
  "TranslatedText",
]);

/** Reads an ODM document's nodes, whatever prefixes it binds to the ODM, TrialSeal and REDCap namespaces. */
class Doc {
  constructor(
    private odm: string,
    private ts: string | null,
    private rc: string | null,
  ) {}
  list(node: X, name: string): X[] {
    const v = node?.[this.odm + name];
    return v === undefined ? [] : Array.isArray(v) ? v : [v];
  }
  one(node: X, name: string): X | undefined {
    return this.list(node, name)[0];
  }
  attr(node: X, name: string): string | undefined {
    const v = node?.[`@${name}`];
    return typeof v === "string" ? v : undefined;
  }
  tsAttr(node: X, name: string): string | undefined {
    return this.ts === null ? undefined : this.attr(node, `${this.ts}${name}`);
  }
  rcAttr(node: X, name: string): string | undefined {
    return this.rc === null ? undefined : this.attr(node, `${this.rc}${name}`);
  }
  get isOurs() {
    return this.ts !== null;
  }
  get isRedcap() {
    return this.rc !== null;
  }
  /** The text of a TranslatedText-holding element (Question, Decode, Description): English, else the first. */
  translated(node: X): string | undefined {
    const texts = this.list(node, "TranslatedText");
    const t = texts.find((x) => this.attr(x, "xml:lang")?.toLowerCase().startsWith("en")) ?? texts[0];
    const s = textOf(t);
    return s === undefined ? undefined : s.trim();
  }
}

const textOf = (n: X): string | undefined =>
  typeof n === "string" ? n : typeof n?.["#text"] === "string" ? n["#text"] : n === "" ? "" : undefined;

/** The prefix (with its colon, or "") an element's attributes bind to a namespace. */
function prefixOf(root: X, ns: string): string | null {
  for (const [k, v] of Object.entries(root ?? {})) {
    if (v !== ns) continue;
    if (k === "@xmlns") return "";
    if (k.startsWith("@xmlns:")) return `${k.slice(7)}:`;
  }
  return null;
}

/** A field name from a name in another system ("SBP" -> "sbp", "Weight (kg)" -> "weight_kg"). */
function toName(s: string): string {
  if (NAME.test(s)) return s;
  let n = s
    .toLowerCase()
    .replace(/[^a-z0-9_]+/g, "_")
    .replace(/^_+|_+$/g, "");
  if (!/^[a-z]/.test(n)) n = `f_${n}`;
  return n.slice(0, 64);
}
/** A form or visit code from an OID or name ("Form.demographics" -> "DEMOGRAPHICS", "SE_VISIT1" -> "SE_VISIT1"). */
function toCode(s: string): string {
  if (CODE.test(s)) return s;
  const n = s
    .toUpperCase()
    .replace(/[^A-Z0-9_-]+/g, "_")
    .replace(/^[_-]+|_+$/g, "");
  return (n || "X").slice(0, 32);
}

/** The showIf of a REDCap-syntax exception condition: `not (X)` gives back X exactly, anything else `not (...)`. */
export function showIfOfException(expr: string): string {
  const m = /^\s*not\s*\(/i.exec(expr);
  if (m && expr.trimEnd().endsWith(")")) {
    const inner = expr.slice(m[0].length, expr.trimEnd().length - 1);
    if (balanced(inner)) return inner;
  }
  return `not (${expr.trim()})`;
}
/** Whether parentheses outside quoted strings balance without ever closing more than were opened. */
function balanced(s: string): boolean {
  let depth = 0;
  let quote: string | null = null;
  for (const c of s) {
    if (quote) {
      if (c === quote) quote = null;
    } else if (c === "'" || c === '"') quote = c;
    else if (c === "(") depth++;
    else if (c === ")" && --depth < 0) return false;
  }
  return depth === 0 && quote === null;
}

function parse(xml: string): { doc: Doc; mdv: X; study: X; root: X } | OdmProblem {
  if (new TextEncoder().encode(xml).length > ODM_MAX_BYTES)
    return { where: "file", message: `the file is larger than ${ODM_MAX_BYTES / 1024 / 1024} MB` };
  if (/<!DOCTYPE/i.test(xml)) return { where: "file", message: "a DOCTYPE is not accepted in an ODM file" };
  if (/<!ENTITY/i.test(xml)) return { where: "file", message: "entity declarations are not accepted" };
  let parsed: X;
  try {
    parsed = new XMLParser({
      ignoreAttributes: false,
      attributeNamePrefix: "@",
      parseAttributeValue: false,
      parseTagValue: false,
      trimValues: false,
      processEntities: true,
      htmlEntities: true,
      maxNestedTags: MAX_DEPTH,
      isArray: (name) => REPEATED.has(name.slice(name.indexOf(":") + 1)),
    }).parse(xml, true);
  } catch (err) {
    return { where: "file", message: `not well-formed XML: ${(err as Error).message.split("\n")[0]}` };
  }
  const rootKey = Object.keys(parsed).find((k) => k === "ODM" || k.endsWith(":ODM"));
  if (!rootKey) return { where: "file", message: "not an ODM file: the root element is not ODM" };
  const root = parsed[rootKey];
  const odm = rootKey === "ODM" ? "" : rootKey.slice(0, -3);
  if (prefixOf(root, ODM_NS) !== odm)
    return { where: "ODM", message: `the ODM element is not in the ODM 1.3 namespace (${ODM_NS})` };
  const version = root["@ODMVersion"];
  if (typeof version === "string" && !/^1\.3(\.\d+)?$/.test(version))
    return { where: "ODM", message: `ODMVersion ${version} is not ODM 1.3.x` };
  const doc = new Doc(odm, prefixOf(root, TS_NS), prefixOf(root, REDCAP_NS));
  const studies = doc.list(root, "Study");
  if (studies.length !== 1)
    return { where: "ODM", message: `the file has ${studies.length} Study elements; exactly one is needed` };
  const mdvs = doc.list(studies[0], "MetaDataVersion");
  if (mdvs.length !== 1)
    return { where: "Study", message: `the study has ${mdvs.length} MetaDataVersions; exactly one is needed` };
  return { doc, mdv: mdvs[0], study: studies[0], root };
}

const byOid = (doc: Doc, node: X, name: string) =>
  new Map(doc.list(node, name).flatMap((n) => (doc.attr(n, "OID") ? [[doc.attr(n, "OID")!, n] as const] : [])));

/** Refs in their OrderNumber order when every one has one, else in document order. */
function ordered(doc: Doc, refs: X[]): X[] {
  const nums = refs.map((r) => Number(doc.attr(r, "OrderNumber")));
  if (nums.some((n) => !Number.isInteger(n))) return refs;
  return refs
    .map((r, i) => [r, nums[i]] as const)
    .sort((a, b) => a[1] - b[1])
    .map(([r]) => r);
}

/** Read a MetaDataVersion's forms; the definitions are returned only when they parse (each problem listed). */
export function odmMetadataToForms(xml: string): { forms: FormDefinition[]; problems: OdmProblem[] } {
  const p = parse(xml);
  if ("where" in p) return { forms: [], problems: [p] };
  const { doc, mdv, study } = p;
  const problems: OdmProblem[] = [];
  const problem = (where: string, message: string) => problems.push({ where, message });
  const groupDefs = byOid(doc, mdv, "ItemGroupDef");
  const itemDefs = byOid(doc, mdv, "ItemDef");
  const codeLists = byOid(doc, mdv, "CodeList");
  const conditions = byOid(doc, mdv, "ConditionDef");
  const methods = byOid(doc, mdv, "MethodDef");
  const units = byOid(doc, doc.one(study, "BasicDefinitions"), "MeasurementUnit");
  const events = doc.list(mdv, "StudyEventDef");
  const visitsOf = new Map<string, string[]>();
  for (const e of events) {
    const oidE = doc.attr(e, "OID") ?? "";
    const visit = toCode(doc.isOurs && oidE.startsWith("SE.") ? oidE.slice(3) : (doc.attr(e, "Name") ?? oidE));
    for (const r of doc.list(e, "FormRef")) {
      const f = doc.attr(r, "FormOID") ?? "";
      visitsOf.set(f, [...new Set([...(visitsOf.get(f) ?? []), visit])]);
    }
  }
  const recordIdField = doc.rcAttr(mdv, "RecordIdField");

  /** An expression from a ConditionDef or MethodDef: its FormalExpression in the forms' language. */
  function expressionOf(where: string, def: X | undefined, oidRef: string): string | undefined {
    if (!def) return void problem(where, `refers to ${oidRef}, which is not in the file`);
    const exprs = doc.list(def, "FormalExpression");
    const e = exprs.find((x) => (doc.attr(x, "Context") ?? "").toLowerCase() === EXPRESSION_CONTEXT.toLowerCase());
    const source = textOf(e)?.trim();
    if (!source) {
      const contexts = exprs.map((x) => doc.attr(x, "Context") ?? "(none)").join(", ") || "none";
      return void problem(
        `${conditions.has(oidRef) ? "ConditionDef" : "MethodDef"} ${oidRef}`,
        `has no FormalExpression in REDCap syntax (Context="${EXPRESSION_CONTEXT}"); contexts found: ${contexts}`,
      );
    }
    return source;
  }
  function checkExpression(where: string, source: string | undefined, what: string): string | undefined {
    if (source === undefined) return undefined;
    try {
      compileExpression(source);
      return source;
    } catch (err) {
      if (!(err instanceof ExpressionError)) throw err;
      return void problem(where, `${what} "${source}" cannot be used: ${err.message} (at character ${err.at + 1})`);
    }
  }

  function options(where: string, clOid: string | undefined): { value: string; label: string }[] | undefined {
    const cl = clOid === undefined ? undefined : codeLists.get(clOid);
    if (!cl) return void problem(where, `its CodeListRef names ${clOid ?? "nothing"}, which is not in the file`);
    const choices = doc.rcAttr(cl, "CheckboxChoices");
    const items = choices
      ? choices.split("|").map((c) => {
          const i = c.indexOf(",");
          return { value: c.slice(0, i).trim(), label: c.slice(i + 1).trim() };
        })
      : [
          ...doc.list(cl, "CodeListItem").map((i) => ({
            value: doc.attr(i, "CodedValue") ?? "",
            label: doc.translated(doc.one(i, "Decode")) ?? doc.attr(i, "CodedValue") ?? "",
          })),
          ...doc.list(cl, "EnumeratedItem").map((i) => ({
            value: doc.attr(i, "CodedValue") ?? "",
            label: doc.attr(i, "CodedValue") ?? "",
          })),
        ];
    if (!items.length) problem(`CodeList ${clOid}`, "has no items");
    return items;
  }

  function field(ref: X, def: X, itemOid: string, section: string | undefined): FieldDefinition | null {
    const where = `ItemDef ${itemOid}`;
    const rcType = doc.rcAttr(def, "FieldType");
    const name = toName(
      doc.isOurs
        ? (doc.attr(def, "Name") ?? itemOid)
        : (doc.rcAttr(def, "Variable") ?? doc.attr(def, "Name") ?? itemOid),
    );
    const label = doc.translated(doc.one(def, "Question")) ?? doc.translated(doc.one(def, "Description")) ?? name;
    const base: Record<string, unknown> = { name, label };
    if (doc.attr(ref, "Mandatory") === "Yes" || doc.rcAttr(def, "RequiredField") === "y") base.required = true;
    const help = doc.tsAttr(def, "Help") ?? doc.rcAttr(def, "FieldNote");
    if (help) base.help = help;
    if (section) base.section = section;
    const cls = doc.tsAttr(def, "Class") ?? (doc.rcAttr(def, "Identifier") === "y" ? "identifier" : undefined);
    if (cls !== undefined) {
      if ((FIELD_CLASSES as readonly string[]).includes(cls)) base.class = cls;
      else problem(where, `ts:Class "${cls}" is not one of ${FIELD_CLASSES.join(", ")}`);
    }
    const missing = doc.tsAttr(def, "MissingCodes");
    if (missing !== undefined) {
      const codes = missing.split(/\s+/).filter(Boolean);
      const bad = codes.filter((c) => !(MISSING_CODES as readonly string[]).includes(c));
      if (bad.length) problem(where, `missing-data codes ${bad.join(", ")} are not among ${MISSING_CODES.join(", ")}`);
      else base.missingCodes = codes as MissingCode[];
    }
    const condOid = doc.attr(ref, "CollectionExceptionConditionOID");
    const showIf = condOid
      ? checkExpression(
          `ConditionDef ${condOid}`,
          (() => {
            const e = expressionOf(where, conditions.get(condOid), condOid);
            return e === undefined ? undefined : showIfOfException(e);
          })(),
          "the condition",
        )
      : checkExpression(where, doc.rcAttr(def, "BranchingLogic") || undefined, "the branching logic");
    if (showIf) base.showIf = showIf;

    const dataType = doc.attr(def, "DataType") ?? "";
    const methodOid = doc.attr(ref, "MethodOID");
    const declared = doc.tsAttr(def, "FieldType");
    const clOid = doc.attr(doc.one(def, "CodeListRef"), "CodeListOID");
    let type = declared;
    if (type === undefined) {
      if (rcType === "descriptive" || rcType === "file" || rcType === "sql") {
        problem(where, `a REDCap ${rcType} field has no counterpart here; remove it before importing`);
        return null;
      }
      if (rcType === "calc" || methodOid) type = "calc";
      else if (rcType === "checkbox") type = "multichoice";
      else if (rcType === "yesno" || rcType === "truefalse" || dataType === "boolean") type = "boolean";
      else if (clOid) type = "choice";
      else if (dataType === "text" || dataType === "string") type = "text";
      else if (dataType === "integer" || dataType === "float" || dataType === "double") type = "number";
      else if (dataType === "date" || dataType === "datetime") type = dataType;
      else {
        problem(
          where,
          `DataType "${dataType}" has no counterpart here (text, integer, float, date, datetime, boolean)`,
        );
        return null;
      }
    }
    const unitOid = doc.attr(doc.one(def, "MeasurementUnitRef"), "MeasurementUnitOID");
    const unit = unitOid
      ? (doc.attr(units.get(unitOid), "Name") ?? doc.translated(doc.one(units.get(unitOid), "Symbol")))
      : undefined;
    if (unitOid && unit === undefined)
      problem(where, `its MeasurementUnitRef names ${unitOid}, which is not in the file`);
    const ranges = doc.list(def, "RangeCheck");
    if (ranges.length && type !== "number")
      problem(where, `range checks are supported on numbers only, not on a ${type} field`);
    const f: Record<string, unknown> = { ...base, type };
    switch (type) {
      case "text": {
        const len = doc.attr(def, "Length");
        if (len !== undefined) f.maxLength = Number(len);
        break;
      }
      case "number": {
        if (dataType === "integer") f.integer = true;
        if (unit) f.unit = unit;
        for (const r of ranges) {
          const cmp = doc.attr(r, "Comparator");
          const soft = doc.attr(r, "SoftHard") === "Soft";
          const values = doc.list(r, "CheckValue").map((v) => textOf(v)?.trim());
          const n = Number(values[0]);
          if (values.length !== 1 || values[0] === "" || !Number.isFinite(n)) {
            problem(where, `a RangeCheck (${cmp}) needs exactly one numeric CheckValue`);
            continue;
          }
          if (cmp === "GE") f[soft ? "softMin" : "min"] = n;
          else if (cmp === "LE") f[soft ? "softMax" : "max"] = n;
          else problem(where, `a RangeCheck with Comparator ${cmp} is not supported: use GE or LE`);
        }
        break;
      }
      case "date":
      case "datetime":
        if (doc.tsAttr(def, "NotFuture") === "true") f.notFuture = true;
        break;
      case "choice":
      case "multichoice": {
        const opts = options(where, clOid);
        if (!opts) return null;
        f.options = opts;
        break;
      }
      case "calc": {
        delete f.required;
        delete f.class;
        delete f.missingCodes;
        const expr = methodOid
          ? expressionOf(where, methods.get(methodOid), methodOid)
          : doc.rcAttr(def, "Calculation");
        const checked = checkExpression(methodOid ? `MethodDef ${methodOid}` : where, expr, "the calculation");
        if (checked === undefined) {
          if (expr === undefined && !methodOid) problem(where, "a calculated field without a calculation");
          return null;
        }
        f.expression = checked;
        if (unit) f.unit = unit;
        const dec = doc.tsAttr(def, "Decimals") ?? doc.attr(def, "SignificantDigits");
        if (dec !== undefined) f.decimals = Number(dec);
        break;
      }
    }
    return f as FieldDefinition;
  }

  const forms: FormDefinition[] = [];
  for (const fd of doc.list(mdv, "FormDef")) {
    const formOid = doc.attr(fd, "OID") ?? "";
    const where = `FormDef ${formOid}`;
    const code = toCode(
      doc.isOurs && formOid.startsWith("F.")
        ? formOid.slice(2)
        : (doc.rcAttr(fd, "FormName") ?? formOid.replace(/^(Form\.|F[._])/, "")),
    );
    const title = (doc.attr(fd, "Name") ?? code).trim();
    const version = Number(doc.tsAttr(fd, "Version") ?? 1);
    const refs = ordered(doc, doc.list(fd, "ItemGroupRef"));
    const groups = refs.map((r) => ({ ref: r, def: groupDefs.get(doc.attr(r, "ItemGroupOID") ?? "") }));
    for (const g of groups)
      if (!g.def) problem(where, `its ItemGroupRef names ${doc.attr(g.ref, "ItemGroupOID")}, which is not in the file`);
    const present = groups.filter((g) => g.def);
    const repeatingGroups = present.filter((g) => doc.attr(g.def, "Repeating") === "Yes");
    if (repeatingGroups.length && repeatingGroups.length !== present.length)
      problem(
        where,
        "some of its item groups repeat and some do not; a form here repeats as a whole (split it into two forms)",
      );
    const repeating =
      doc.attr(fd, "Repeating") === "Yes" || (present.length > 0 && repeatingGroups.length === present.length);
    const sections = new Map<string, { name: string; title: string; showIf?: string }>();
    const fields: FieldDefinition[] = [];
    const oids: string[] = [];
    const seenVariables = new Set<string>();
    /** A field left out for a problem: the definition's own checks would only repeat it (references to it). */
    let dropped = false;
    for (const g of present) {
      const gOid = doc.attr(g.def, "OID")!;
      const itemRefs = ordered(doc, doc.list(g.def, "ItemRef"));
      const firstDef = itemDefs.get(doc.attr(itemRefs[0], "ItemOID") ?? "");
      const gName = (doc.attr(g.def, "Name") ?? gOid).trim();
      let section: string | undefined;
      let sectionTitle = gName;
      if (doc.isOurs) section = doc.tsAttr(g.def, "Section");
      else if (doc.isRedcap) {
        const header = doc.rcAttr(firstDef, "SectionHeader");
        if (header) [section, sectionTitle] = [toName(header), header.trim()];
      } else if (present.length > 1 && gName !== title && itemRefs.length) section = toName(gName);
      const sectionCond = doc.attr(g.ref, "CollectionExceptionConditionOID");
      if (section) {
        if (!sections.has(section)) {
          const s: { name: string; title: string; showIf?: string } = { name: section, title: sectionTitle };
          if (sectionCond) {
            const e = expressionOf(`ItemGroupRef ${gOid}`, conditions.get(sectionCond), sectionCond);
            const showIf = checkExpression(
              `ConditionDef ${sectionCond}`,
              e === undefined ? undefined : showIfOfException(e),
              "the condition",
            );
            if (showIf) s.showIf = showIf;
          }
          sections.set(section, s);
        }
      } else if (sectionCond)
        problem(`ItemGroupRef ${gOid}`, "a condition on an item group is kept only for a section (ts:Section)");
      for (const ref of itemRefs) {
        const itemOid = doc.attr(ref, "ItemOID") ?? "";
        const def = itemDefs.get(itemOid);
        if (!def) {
          problem(`ItemGroupDef ${gOid}`, `its ItemRef names ${itemOid}, which is not in the file`);
          continue;
        }
        if (doc.isRedcap && !doc.isOurs) {
          const variable = doc.rcAttr(def, "Variable") ?? itemOid;
          if (variable === recordIdField) continue;
          if (variable === `${doc.rcAttr(fd, "FormName")}_complete`) continue;
          if (seenVariables.has(variable)) continue;
          seenVariables.add(variable);
        }
        const f = field(ref, def, itemOid, section);
        if (f) {
          fields.push(f);
          oids.push(itemOid);
        } else dropped = true;
      }
    }
    const visits = visitsOf.get(formOid) ?? (doc.list(mdv, "StudyEventDef").length ? [] : [DEFAULT_VISIT]);
    if (!visits.length) problem(where, "no StudyEventDef refers to it, so it belongs to no visit");
    const tsSections = doc.tsAttr(fd, "Sections")?.split(/\s+/).filter(Boolean);
    const sectionList = tsSections
      ? tsSections.map((s) => sections.get(s) ?? { name: s, title: s })
      : [...sections.values()];
    const candidate: Record<string, unknown> = { code, title, version, visits, fields };
    if (repeating) candidate.repeating = true;
    if (sectionList.length) candidate.sections = sectionList;
    if (dropped) continue;
    const r = FormDefinitionSchema.safeParse(candidate);
    if (!r.success) {
      for (const i of r.error.issues) {
        const at = i.path[0] === "fields" && typeof i.path[1] === "number" ? `ItemDef ${oids[i.path[1]]}` : where;
        const rest = i.path.slice(i.path[0] === "fields" ? 2 : 0).join(".");
        problem(at, rest ? `${rest}: ${i.message}` : i.message);
      }
      continue;
    }
    forms.push(r.data);
  }
  if (!doc.list(mdv, "FormDef").length) problem("MetaDataVersion", "it defines no FormDef");
  const codes = forms.map((f) => f.code);
  for (const c of new Set(codes.filter((c, i) => codes.indexOf(c) !== i)))
    problem("MetaDataVersion", `two forms would have the code ${c}`);
  return { forms: problems.length ? [] : forms, problems };
}
