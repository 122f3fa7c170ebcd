/**
 * Files of form definitions in and out of a study: TrialSeal's JSON, a REDCap data dictionary (redcap-dictionary.ts,
 * ADR 0029) or a CDISC ODM 1.3.2 MetaDataVersion (odm-metadata.ts). One import for the CLI and the forms page: the
 * file is read with the right reader, every problem of it is reported at once, and its forms are imported through
 * `importForms` in one transaction, all or none (each approval a ledger entry unless `draft`).
 */
import { z } from "zod";
import { FormDefinitionSchema, type FormDefinition } from "../../anchoring/forms/definition.ts";
import type { AppContext } from "../platform/context.server.ts";
import { ServiceError } from "../platform/errors.server.ts";
import { requirePermission, type Principal } from "../platform/permissions.server.ts";
import { auditActor } from "../platform/attribution.ts";
import { importForms } from "../records/forms.server.ts";
import { getStudyOrThrow } from "../studies/studies.server.ts";
import { listForms } from "../../db/queries/forms.ts";
import { toHex, utf8 } from "../../anchoring/log/bytes.ts";
import {
  FORM_FILE_FORMATS,
  FORM_FILE_MAX_BYTES,
  FORM_FILE_TYPES,
  detectFormFormat,
  type FormFileFormat,
} from "./form-format.ts";
import { formsToRedcapDictionary, redcapDictionaryToForms } from "./redcap-dictionary.ts";
import { formsToOdmMetadata } from "./odm-metadata.ts";
import { odmMetadataToForms } from "./odm-metadata-import.ts";

/** One problem of a file: where (a row and column, an ODM element, a JSON path) and what, in words. */
export interface FormFileProblem {
  where: string;
  message: string;
  /** REDCap dictionaries: the CSV line the row starts on, and the column. */
  row?: number;
  column?: string;
}

/**
 * A file that was refused: `unusable` when it could not be read at all (too large, unknown format, not JSON or
 * XML: the CLI's exit 2), else every problem of its content (exit 1). Nothing was imported.
 */
export class FormFileError extends ServiceError {
  constructor(
    message: string,
    readonly fileProblems: FormFileProblem[],
    readonly unusable: boolean,
  ) {
    super(
      "invalid",
      message,
      "file",
      fileProblems.map((p) => ({ field: p.where, message: p.message })),
    );
  }
}

const unusable = (message: string) => new FormFileError(message, [], true);

export const VISIT_CODE = /^[A-Z0-9][A-Z0-9_-]{0,31}$/;

export const ImportFormsInput = z.object({
  text: z.string(),
  fileName: z.string().max(500).optional(),
  format: z.enum(FORM_FILE_FORMATS, { error: `format: one of ${FORM_FILE_FORMATS.join(", ")}` }).optional(),
  draft: z.boolean().default(false),
  /** Forms to import as repeating (REDCap instrument names or form codes). */
  repeating: z.array(z.string().trim().min(1).max(64)).default([]),
  /** The visits of every imported form (REDCap has none in its dictionary); the file's own when omitted. */
  visits: z
    .array(z.string().trim().toUpperCase().regex(VISIT_CODE, "visits are codes such as SCREENING or WEEK4"))
    .optional(),
});
export type ImportFormsInput = z.input<typeof ImportFormsInput>;

/** Visits given to a REDCap dictionary's forms when none are named. */
export const DEFAULT_VISITS = ["SCREENING"];

/** The forms a file holds, or every problem of it; the file's own format (detected when not given). */
export function readFormsFile(input: z.output<typeof ImportFormsInput>): {
  format: FormFileFormat;
  forms: FormDefinition[];
  problems: FormFileProblem[];
} {
  const bytes = Buffer.byteLength(input.text, "utf8");
  if (bytes > FORM_FILE_MAX_BYTES)
    throw unusable(
      `the file is ${(bytes / 1024 / 1024).toFixed(1)} MB; a file of forms may be at most ` +
        `${FORM_FILE_MAX_BYTES / 1024 / 1024} MB`,
    );
  if (input.text.trim() === "") throw unusable("the file is empty");
  const format = input.format ?? detectFormFormat(input.text, input.fileName);
  if (!format)
    throw unusable(
      "cannot tell the file's format: give a TrialSeal JSON definition, a REDCap data dictionary (CSV) or a " +
        "CDISC ODM file (XML), or name its format",
    );
  const repeating = new Set(input.repeating.map((r) => r.toUpperCase()));
  if (format === "redcap") {
    const r = redcapDictionaryToForms(input.text, {
      visits: input.visits ?? DEFAULT_VISITS,
      repeating: input.repeating,
    });
    return {
      format,
      forms: r.forms,
      problems: r.problems.map((p) => ({
        where: `row ${p.row}${p.column ? `, ${p.column}` : ""}`,
        row: p.row,
        ...(p.column ? { column: p.column } : {}),
        message: p.message,
      })),
    };
  }
  let forms: FormDefinition[] = [];
  const problems: FormFileProblem[] = [];
  if (format === "json") {
    let value: unknown;
    try {
      value = JSON.parse(input.text.replace(/^\uFEFF/, ""));
    } catch (err) {
      throw unusable(`${input.fileName ?? "the file"} is not JSON: ${(err as Error).message}`);
    }
    const items = Array.isArray(value) ? value : [value];
    if (items.length === 0) problems.push({ where: "$", message: "the file holds no form definition" });
    items.forEach((item, i) => {
      const r = FormDefinitionSchema.safeParse(item);
      const at = Array.isArray(value) ? `[${i}]` : "";
      if (r.success) forms.push(r.data);
      else
        for (const issue of r.error.issues) {
          const path = issue.path.map((p) => (typeof p === "number" ? `[${p}]` : `.${String(p)}`)).join("");
          problems.push({ where: `${at}${path}`.replace(/^\./, "") || "$", message: issue.message });
        }
    });
  } else {
    const r = odmMetadataToForms(input.text);
    forms = r.forms;
    problems.push(...r.problems);
  }
  // REDCap marks repeating instruments itself (above); JSON and ODM forms are marked here, and take the visits.
  for (const code of repeating)
    if (!forms.some((f) => f.code === code) && problems.length === 0)
      problems.push({ where: "--repeating", message: `the file has no form ${code} to mark repeating` });
  forms = forms.map((f) => ({
    ...f,
    ...(repeating.has(f.code) ? { repeating: true } : {}),
    ...(input.visits ? { visits: input.visits } : {}),
  }));
  return { format, forms, problems };
}

/**
 * Import every form of a file into a study, all or none. JSON definitions keep their version; the forms of a REDCap
 * dictionary or an ODM file become the next version of each form code (version 1 for a new form).
 */
export async function importFormsFile(ctx: AppContext, principal: Principal, studyCode: string, raw: ImportFormsInput) {
  const parsedInput = ImportFormsInput.safeParse(raw);
  if (!parsedInput.success) {
    const i = parsedInput.error.issues[0];
    throw new ServiceError("invalid", `${i.path.join(".") || "input"}: ${i.message}`, String(i.path[0] ?? ""));
  }
  const input = parsedInput.data;
  const study = await getStudyOrThrow(ctx, studyCode.toUpperCase());
  requirePermission(principal, "forms.manage", { studyId: study.id });
  const { format, forms, problems } = readFormsFile(input);
  const existing = await listForms(ctx.db, study.id);
  const seen = new Set<string>();
  const versioned = forms.map((f) => {
    if (seen.has(f.code)) problems.push({ where: f.code, message: `the file holds form ${f.code} twice` });
    seen.add(f.code);
    if (format === "json") {
      if (existing.some((e) => e.code === f.code && e.version === f.version))
        problems.push({
          where: f.code,
          message: `form ${f.code} version ${f.version} already exists in ${study.code}: give it a new version`,
        });
      return f;
    }
    const latest = Math.max(0, ...existing.filter((e) => e.code === f.code).map((e) => e.version));
    return { ...f, version: latest + 1 };
  });
  if (problems.length)
    throw new FormFileError(
      `the file was refused, nothing was imported: ${problems.length} problem${problems.length > 1 ? "s" : ""}`,
      problems,
      false,
    );
  const actor = auditActor(principal);
  const rows = await importForms(ctx, study.code, versioned, {
    draft: input.draft,
    actorId: principal.userId,
    actorLabel: actor.actorLabel,
  });
  return { study: study.code, format, forms: rows };
}

/**
 * The latest approved version of every form of a study as one file of the format: TrialSeal JSON (an array of
 * definitions), a REDCap data dictionary, or a CDISC ODM 1.3.2 file of the study's metadata. Drafts are left out;
 * a version whose stored text no longer matches its SHA-256 refuses the export (409), nothing is exported.
 */
export async function exportForms(ctx: AppContext, studyCode: string, format: FormFileFormat) {
  const study = await getStudyOrThrow(ctx, studyCode.toUpperCase());
  const latest = new Map<string, FormDefinition>();
  for (const f of await listForms(ctx.db, study.id)) {
    if (f.status !== "approved") continue; // drafts are not the study's forms yet
    if (toHex(ctx.crypto.sha256(utf8(f.definitionText))) !== toHex(f.definitionSha256))
      throw new ServiceError(
        "conflict",
        `form ${f.code} version ${f.version}: its stored definition does not match its approved SHA-256; ` +
          `nothing was exported (run trialseal audit --study ${study.code})`,
        "forms",
      );
    latest.set(f.code, JSON.parse(f.definitionText));
  }
  const defs = [...latest.values()];
  if (defs.length === 0) throw new ServiceError("not_found", `${study.code} has no approved forms to export`, "forms");
  const text =
    format === "json"
      ? `${JSON.stringify(defs, null, 2)}\n`
      : format === "redcap"
        ? formsToRedcapDictionary(defs)
        : formsToOdmMetadata({ code: study.code, name: study.title }, defs);
  const type = FORM_FILE_TYPES[format];
  return { name: `${study.code}-${type.suffix}`, mediaType: type.mediaType, text, count: defs.length };
}
