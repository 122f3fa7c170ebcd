/**
 * The exports a study's team expects beside the data (issue 18, ADR 0038): the data dictionary in REDCap's layout,
 * the blank and the annotated CRF as PDF (one page or more per form), and the missing-data report (page and CSV).
 * All are made from the study's latest approved forms, read through `exportForms` (which refuses a version whose
 * stored text no longer matches its approved SHA-256). Every download is an audit event.
 */
import { existsSync } from "node:fs";
import PDFDocument from "pdfkit";
import { and, asc, eq } from "drizzle-orm";
import { MISSING_CODE_LABELS, type FieldDefinition, type FormDefinition } from "../../anchoring/forms/definition.ts";
import { isRequired } from "../../anchoring/forms/definition.ts";
import { visibleFields } from "../../anchoring/forms/check-entry.ts";
import { unitLabel } from "../../anchoring/forms/units.ts";
import { participants, records, recordVersions, sites } from "../../db/schema/index.ts";
import { audit } from "../audit-trail/record-event.server.ts";
import { exportForms } from "../form-exchange/form-files.server.ts";
import type { AppContext } from "../platform/context.server.ts";
import { csvCell, csvValue } from "../platform/csv.ts";
import { can, requirePermission, type Principal } from "../platform/permissions.server.ts";
import { getStudyOrThrow } from "../studies/studies.server.ts";
import { exportParticipantsDetail, participantIdsOfSubjects } from "../data-sharing/export-access.server.ts";

export const CRF_KINDS = ["blank", "annotated"] as const;
export type CrfKind = (typeof CRF_KINDS)[number];

async function exportAudit(
  ctx: AppContext,
  principal: Principal,
  studyId: string,
  action: string,
  detail: Record<string, unknown>,
) {
  await audit(ctx.db, {
    action,
    actorUserId: principal.userId,
    actorLabel: principal.label,
    studyId,
    detail,
  });
}

/** The latest approved version of each form of the study (404 when there is none, 409 when one was altered). */
async function latestForms(ctx: AppContext, studyCode: string): Promise<FormDefinition[]> {
  const file = await exportForms(ctx, studyCode, "json");
  return JSON.parse(file.text) as FormDefinition[];
}

/** The data dictionary (REDCap's layout) of the latest approved forms: the forms export's own file. */
export async function dataDictionaryCsv(ctx: AppContext, principal: Principal, studyCode: string) {
  const study = await getStudyOrThrow(ctx, studyCode.toUpperCase());
  requirePermission(principal, "study.view", { studyId: study.id });
  const file = await exportForms(ctx, study.code, "redcap");
  await exportAudit(ctx, principal, study.id, "export.data_dictionary", {
    participants: [], // form definitions only: no participant's data (ADR 0071)
    forms: file.count,
    bytes: Buffer.byteLength(file.text),
  });
  return { name: `${study.code}-data-dictionary.csv`, text: file.text };
}

// ---------------------------------------------------------------------------------------------------------------
// Blank and annotated CRF.

const TYPE_NAMES: Record<FieldDefinition["type"], string> = {
  text: "text",
  number: "number",
  date: "date",
  datetime: "date and time",
  choice: "single choice",
  multichoice: "multiple choice",
  boolean: "yes/no",
  calc: "calculated",
};

/** The annotation of a field, as regulators expect on an annotated CRF: name, type, limits, codes, logic. */
export function fieldAnnotation(f: FieldDefinition): string[] {
  const out = [`${f.name} · ${TYPE_NAMES[f.type]}${f.type !== "calc" && f.required ? " · required" : ""}`];
  if (f.type === "number") {
    const limits = (lo?: number, hi?: number) => `${lo ?? "…"} to ${hi ?? "…"}`;
    if (f.integer) out.push("whole number");
    if (f.min !== undefined || f.max !== undefined) out.push(`hard limits ${limits(f.min, f.max)}`);
    if (f.softMin !== undefined || f.softMax !== undefined) out.push(`soft limits ${limits(f.softMin, f.softMax)}`);
  }
  if (f.type === "text" && f.maxLength) out.push(`at most ${f.maxLength} characters`);
  if ((f.type === "date" || f.type === "datetime") && f.notFuture) out.push("not in the future");
  if ((f.type === "number" || f.type === "calc") && f.unit) out.push(`unit ${f.unit} (UCUM)`);
  if (f.type === "choice" || f.type === "multichoice")
    out.push(`codes: ${f.options.map((o) => `${o.value} = ${o.label}`).join("; ")}`);
  if (f.type === "boolean") out.push("codes: true = Yes; false = No");
  if (f.type === "calc")
    out.push(`calculation: ${f.expression}${f.decimals !== undefined ? ` (${f.decimals} dp)` : ""}`);
  if (f.showIf) out.push(`shown if: ${f.showIf}`);
  if (f.type !== "calc") {
    if (f.class) out.push(`class ${f.class}`);
    if (f.missingCodes?.length) out.push(`missing-data codes: ${f.missingCodes.join(", ")}`);
  }
  return out;
}

/** The CRF of the study's latest approved forms as a PDF: blank (to fill by hand) or annotated (with the codes). */
export async function crfPdf(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  kind: CrfKind,
  opts: { compress?: boolean } = {},
): Promise<{ name: string; data: Buffer }> {
  const study = await getStudyOrThrow(ctx, studyCode.toUpperCase());
  requirePermission(principal, "study.view", { studyId: study.id });
  const defs = await latestForms(ctx, study.code);
  const { regular: font, bold: boldFont } = ctx.env.pdfFont;
  if (!existsSync(font)) throw new Error(`the PDF font ${font} is missing (install fonts-dejavu-core)`);
  const doc = new PDFDocument({
    size: "A4",
    margin: 50,
    compress: opts.compress ?? true,
    autoFirstPage: false,
    info: { Title: `${kind === "blank" ? "Blank" : "Annotated"} CRF: ${study.code}`, Author: "TrialSeal" },
  });
  doc.registerFont("body", font);
  doc.registerFont("bold", existsSync(boldFont) ? boldFont : font);
  const chunks: Buffer[] = [];
  doc.on("data", (c: Buffer) => chunks.push(c));
  const done = new Promise<Buffer>((resolve) => doc.on("end", () => resolve(Buffer.concat(chunks))));
  const left = 50;
  const width = 495;
  const bottom = 841.89 - 50;
  const room = (h: number) => {
    if (doc.y + h > bottom) doc.addPage();
  };
  const annotate = kind === "annotated";
  const ANN = "#1d4ed8";

  for (const def of defs) {
    doc.addPage();
    doc.font("bold").fontSize(15).fillColor("black").text(`${def.title}`, left, 50, { width });
    doc
      .font("body")
      .fontSize(9)
      .fillColor("#444444")
      .text(
        `Study ${study.code}: ${study.title} · form ${def.code}, version ${def.version} · ` +
          `visits ${def.visits.join(", ")}` +
          `${def.repeating ? " · repeating (one page per row)" : ""}`,
        { width },
      );
    if (annotate)
      doc
        .fillColor(ANN)
        .text(`[${def.code} v${def.version}] annotated CRF: field names, types, limits, codes and logic in blue`, {
          width,
        });
    doc.fillColor("black").moveDown(0.5);
    doc.font("body").fontSize(10).text("Subject ____________   Site ________   Visit ____________   Date ____________");
    doc.moveDown(0.6);
    const sections = new Map((def.sections ?? []).map((s) => [s.name, s]));
    const shownSections = new Set<string>();
    for (const f of def.fields) {
      if (f.section && !shownSections.has(f.section)) {
        shownSections.add(f.section);
        const s = sections.get(f.section);
        room(40);
        doc.moveDown(0.3);
        doc
          .font("bold")
          .fontSize(12)
          .fillColor("black")
          .text(s?.title ?? f.section, left, doc.y, { width });
        if (annotate)
          doc
            .font("body")
            .fontSize(8)
            .fillColor(ANN)
            .text(`section ${f.section}${s?.showIf ? ` · shown if: ${s.showIf}` : ""}`, { width });
        else if (s?.showIf) doc.font("body").fontSize(8).fillColor("#444444").text(`Only when: ${s.showIf}`);
        doc.fillColor("black").moveDown(0.3);
      }
      fieldBlock(f);
    }
  }

  function fieldBlock(f: FieldDefinition) {
    const choices = f.type === "choice" || f.type === "multichoice" ? f.options.length : f.type === "boolean" ? 1 : 0;
    room(50 + choices * 13);
    const required = f.type !== "calc" && f.required;
    doc
      .font("bold")
      .fontSize(10)
      .fillColor("black")
      .text(`${f.label}${required ? " *" : ""}`, left, doc.y, { width });
    if (f.help) doc.font("body").fontSize(8).fillColor("#444444").text(f.help, { width });
    if (!annotate && f.showIf) doc.font("body").fontSize(8).fillColor("#444444").text(`Only when: ${f.showIf}`);
    doc.font("body").fontSize(10).fillColor("black");
    const y = doc.y + 3;
    const unit = (f.type === "number" || f.type === "calc") && f.unit ? unitLabel(f.unit) : "";
    switch (f.type) {
      case "choice":
      case "multichoice":
        doc.moveDown(0.2);
        for (const o of f.options) {
          const oy = doc.y;
          doc.rect(left + 4, oy + 1, 8, 8).stroke();
          doc.text(`${o.label}${annotate ? `  [${o.value}]` : ""}`, left + 18, oy, { width: width - 18 });
        }
        if (f.type === "multichoice")
          doc.fontSize(8).fillColor("#444444").text("Tick all that apply", left, doc.y).fillColor("black");
        break;
      case "boolean": {
        doc.rect(left + 4, y + 1, 8, 8).stroke();
        doc.text("Yes", left + 18, y);
        doc.rect(left + 64, y + 1, 8, 8).stroke();
        doc.text("No", left + 78, y);
        break;
      }
      case "date":
      case "datetime": {
        const w = f.type === "date" ? 140 : 220;
        doc.rect(left, y, w, 18).stroke();
        doc
          .fontSize(8)
          .fillColor("#444444")
          .text(f.type === "date" ? "YYYY-MM-DD" : "YYYY-MM-DD hh:mm (time zone)", left + w + 8, y + 5)
          .fillColor("black");
        doc.y = y + 20;
        break;
      }
      case "calc":
        doc.rect(left, y, 140, 18).dash(2, { space: 2 }).stroke().undash();
        doc
          .fontSize(8)
          .fillColor("#444444")
          .text(`${unit ? `${unit} · ` : ""}calculated by the system, not entered`, left + 148, y + 5)
          .fillColor("black");
        doc.y = y + 20;
        break;
      default: {
        const w = f.type === "number" ? 140 : f.type === "text" && (f.maxLength ?? 200) <= 20 ? 200 : width;
        const h = f.type === "text" && (f.maxLength ?? 200) > 200 ? 54 : 18;
        doc.rect(left, y, w, h).stroke();
        if (unit) doc.text(unit, left + w + 8, y + 4);
        doc.y = y + h + 2;
      }
    }
    if (f.type !== "calc" && f.missingCodes?.length && !annotate)
      doc
        .fontSize(8)
        .fillColor("#444444")
        .text(`If missing, code: ${f.missingCodes.map((c) => `${c} (${MISSING_CODE_LABELS[c]})`).join(", ")}`, left)
        .fillColor("black");
    if (annotate)
      doc
        .font("body")
        .fontSize(8)
        .fillColor(ANN)
        .text(fieldAnnotation(f).join(" · "), left, doc.y + 2, { width })
        .fillColor("black");
    doc.x = left;
    doc.moveDown(0.7);
  }

  doc.end();
  const data = await done;
  await exportAudit(ctx, principal, study.id, `export.crf_${kind}`, {
    participants: [], // blank and annotated forms: no participant's data (ADR 0071)
    forms: defs.length,
    bytes: data.length,
  });
  return { name: `${study.code}-crf-${kind}.pdf`, data };
}

// ---------------------------------------------------------------------------------------------------------------
// Missing-data report.

export interface MissingDataRow {
  subject: string;
  site: string;
  visit: string;
  form: string;
  instance: number;
  recordId: string;
  /** The form version the record's current version was entered on. */
  enteredOn: number;
  field: string;
  label: string;
  /** `empty`: required, shown and without a value or code; `coded`: a missing-data code was entered. */
  kind: "empty" | "coded";
  code: string | null;
  /** The reason given with the code (free text; the viewer may read records). */
  reason: string | null;
}

/**
 * Per record (participant, visit, form and row) that the principal may read: every required field of the form's
 * latest approved version that is shown for the record's values and holds neither a value nor a code, and every
 * field given a missing-data code, with the code and its reason. Forms not started are not listed (ADR 0038).
 */
export async function missingDataReport(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
): Promise<{ study: string; forms: number; records: number; rows: MissingDataRow[] }> {
  const study = await getStudyOrThrow(ctx, studyCode.toUpperCase());
  requirePermission(principal, "records.read", { studyId: study.id });
  let defs: FormDefinition[] = [];
  try {
    defs = await latestForms(ctx, study.code);
  } catch (err) {
    if ((err as { code?: string }).code !== "not_found") throw err;
  }
  const byCode = new Map(defs.map((d) => [d.code, d]));
  const rowsIn = await ctx.db
    .select({
      id: records.id,
      siteId: records.siteId,
      site: sites.code,
      subject: participants.subjectCode,
      form: records.formCode,
      visit: records.visit,
      instance: records.instance,
      formVersion: recordVersions.formVersion,
      dataText: recordVersions.dataText,
      missingText: recordVersions.missingText,
    })
    .from(records)
    .innerJoin(
      recordVersions,
      and(eq(recordVersions.recordId, records.id), eq(recordVersions.version, records.currentVersion)),
    )
    .innerJoin(participants, eq(participants.id, records.participantId))
    .innerJoin(sites, eq(sites.id, records.siteId))
    .where(eq(records.studyId, study.id))
    .orderBy(asc(participants.subjectCode), asc(records.visit), asc(records.formCode), asc(records.instance));
  const out: MissingDataRow[] = [];
  let seen = 0;
  for (const r of rowsIn) {
    if (!can(principal, "records.read", { studyId: study.id, siteId: r.siteId })) continue;
    seen++;
    const def = byCode.get(r.form);
    const values = JSON.parse(r.dataText) as Record<string, unknown>;
    const missing = JSON.parse(r.missingText ?? "{}") as Record<string, { code: string; reason: string }>;
    const base = {
      subject: r.subject,
      site: r.site,
      visit: r.visit,
      form: r.form,
      instance: r.instance,
      recordId: r.id,
      enteredOn: r.formVersion,
    };
    const labels = new Map(def?.fields.map((f) => [f.name, f.label]) ?? []);
    const visible = def ? visibleFields(def, values) : new Set<string>();
    for (const f of def?.fields ?? []) {
      if (!isRequired(f) || !visible.has(f.name) || Object.hasOwn(missing, f.name)) continue;
      const v = values[f.name];
      const empty = v === undefined || v === null || v === "" || (Array.isArray(v) && v.length === 0);
      if (empty) out.push({ ...base, field: f.name, label: f.label, kind: "empty", code: null, reason: null });
    }
    for (const [name, m] of Object.entries(missing))
      out.push({
        ...base,
        field: name,
        label: labels.get(name) ?? name,
        kind: "coded",
        code: m.code,
        reason: m.reason,
      });
  }
  return { study: study.code, forms: defs.length, records: seen, rows: out };
}

export const MISSING_DATA_COLUMNS = [
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
];

/** The missing-data report as CSV (an audit event). */
export async function missingDataCsv(ctx: AppContext, principal: Principal, studyCode: string) {
  const r = await missingDataReport(ctx, principal, studyCode);
  const lines = [
    MISSING_DATA_COLUMNS.join(","),
    ...r.rows.map((x) =>
      [
        csvCell(x.subject),
        csvCell(x.site),
        csvCell(x.visit),
        csvCell(x.form),
        csvValue(x.instance),
        csvCell(x.recordId),
        csvValue(x.enteredOn),
        csvCell(x.field),
        csvCell(x.label),
        csvCell(x.kind),
        csvCell(x.code),
        csvCell(x.reason),
      ].join(","),
    ),
  ];
  const text = `${lines.join("\r\n")}\r\n`;
  const study = await getStudyOrThrow(ctx, r.study);
  await exportAudit(ctx, principal, study.id, "export.missing_data", {
    rows: r.rows.length,
    bytes: text.length,
    ...exportParticipantsDetail(
      await participantIdsOfSubjects(
        ctx,
        study.id,
        r.rows.map((x) => x.subject),
      ),
    ),
  });
  return { name: `${r.study}-missing-data.csv`, text };
}
