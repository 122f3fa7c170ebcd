/** CRF form versions and consent documents: import, approve (each approval a ledger entry). */
import { toHex } from "../../anchoring/log/bytes.ts";
import { canonicalize } from "../../anchoring/log/canonical.ts";
import { and, eq } from "drizzle-orm";
import { z } from "zod";
import { parseConsentDocument } from "../consent/consent-document.ts";
import {
  findForm,
  insertConsentDocument,
  insertForm,
  listConsentDocuments,
  listForms,
} from "../../db/queries/forms.ts";
import { forms } from "../../db/schema/index.ts";
import { requirePermission, type Principal } from "../platform/permissions.server.ts";
import { type FormDefinition, parseFormDefinition } from "../../anchoring/forms/definition.ts";
import type { Tx } from "../../db/client.ts";
import type { AppContext } from "../platform/context.server.ts";
import { ServiceError, isUniqueViolation } from "../platform/errors.server.ts";
import { appendEntry } from "../log/append-entry.server.ts";
import { queueReconsentNotices } from "../notifications/triggers.server.ts";
import { saltedTextHash } from "../../anchoring/log/text-hash.ts";
import { getStudyOrThrow } from "../studies/studies.server.ts";
import { audit } from "../audit-trail/record-event.server.ts";
import { auditActor } from "../platform/attribution.ts";

/** Import a form definition; approved at once unless `draft` (approval is a ledger entry). */
export async function importForm(
  ctx: AppContext,
  studyCode: string,
  definition: unknown,
  opts: { draft?: boolean; actorId: string | null; actorLabel?: string | null },
) {
  const [row] = await importForms(ctx, studyCode, [definition], opts);
  return row;
}

/**
 * Import several form definitions in one transaction (a file of forms: app/form-exchange/form-files.server.ts): all
 * are imported, each approved (a ledger entry) unless `draft`, or none is.
 */
export async function importForms(
  ctx: AppContext,
  studyCode: string,
  definitions: unknown[],
  opts: { draft?: boolean; actorId: string | null; actorLabel?: string | null },
) {
  const prepared = definitions.map((definition) => {
    const parsed = parseFormDefinition(definition);
    if (!parsed.ok)
      throw new ServiceError("invalid", `form definition: ${parsed.path}: ${parsed.message}`, parsed.path);
    const definitionText = canonicalize(definition);
    return {
      def: parsed.definition,
      definitionText,
      definitionSha256: ctx.crypto.sha256(new TextEncoder().encode(definitionText)),
    };
  });
  const study = await getStudyOrThrow(ctx, studyCode);
  let def = prepared[0]?.def;
  try {
    return await ctx.db.transaction(async (tx) => {
      const rows = [];
      for (const p of prepared) {
        def = p.def;
        rows.push(await insertFormVersion(tx, ctx, study, p, opts));
      }
      return rows;
    });
  } catch (err) {
    if (isUniqueViolation(err) && def)
      throw new ServiceError(
        "conflict",
        `form ${def.code} version ${def.version} already exists in ${study.code}`,
        "version",
      );
    throw err;
  }
}

/** One form version and, unless a draft, its approval entry, in the caller's transaction. */
async function insertFormVersion(
  tx: Tx,
  ctx: AppContext,
  study: Awaited<ReturnType<typeof getStudyOrThrow>>,
  {
    def,
    definitionText,
    definitionSha256,
  }: { def: FormDefinition; definitionText: string; definitionSha256: Uint8Array },
  opts: { draft?: boolean; actorId: string | null; actorLabel?: string | null },
) {
  const now = new Date();
  let approvalEntryId: string | null = null;
  if (!opts.draft) {
    const e = await appendEntry(tx, ctx.crypto, study, "form.approved", {
      form: def.code,
      version: def.version,
      definitionSha256: toHex(definitionSha256),
      actor: opts.actorId,
    });
    approvalEntryId = e.id;
  }
  const row = await insertForm(tx, {
    studyId: study.id,
    code: def.code,
    version: def.version,
    title: def.title,
    definitionText,
    definitionSha256,
    status: opts.draft ? "draft" : "approved",
    createdBy: opts.actorId,
    approvedBy: opts.draft ? null : opts.actorId,
    approvedAt: opts.draft ? null : now,
    approvalEntryId,
  });
  // The trail names the form version (code, version, definition hash); never the definition's text.
  const who = { actorUserId: opts.actorId, actorLabel: opts.actorLabel ?? null, studyId: study.id };
  const form = { form: def.code, version: def.version, definitionSha256: toHex(definitionSha256) };
  await audit(tx, { action: "form.import", ...who, detail: { ...form, status: row.status } });
  if (approvalEntryId) await audit(tx, { action: "form.approve", ...who, detail: { ...form, entry: approvalEntryId } });
  return row;
}

export interface ConsentDocumentInput {
  code: string;
  version: string;
  title: string;
  language?: string;
  bodyMarkdown: string;
  irbName: string;
  irbApprovedOn: string;
}

/** Create a consent document version approved by the IRB (the approval is a ledger entry). */
export async function createApprovedConsentDocument(
  ctx: AppContext,
  studyCode: string,
  doc: ConsentDocumentInput,
  actorId: string | null,
) {
  const study = await getStudyOrThrow(ctx, studyCode);
  const bodySha256 = ctx.crypto.sha256(new TextEncoder().encode(doc.bodyMarkdown));
  return ctx.db.transaction(async (tx) => {
    const e = await appendEntry(tx, ctx.crypto, study, "consent_document.approved", (salt) => ({
      document: doc.code,
      version: doc.version,
      bodySha256: toHex(bodySha256),
      irbNameHash: saltedTextHash(ctx.crypto, salt, doc.irbName),
      irbApprovedOn: doc.irbApprovedOn,
      actor: actorId,
    }));
    const row = await insertConsentDocument(tx, {
      studyId: study.id,
      code: doc.code,
      version: doc.version,
      title: doc.title,
      language: doc.language ?? "en",
      bodyMarkdown: doc.bodyMarkdown,
      bodySha256,
      status: "approved",
      irbName: doc.irbName,
      irbApprovedOn: doc.irbApprovedOn,
      createdBy: actorId,
      approvedBy: actorId,
      approvedAt: new Date(),
      approvalEntryId: e.id,
    });
    // Re-consent needed (issue 18, ADR 0035): who consented to an earlier version is told, with the site staff.
    await queueReconsentNotices(
      ctx,
      tx,
      { studyId: study.id, studyCode: study.code, documentId: row.id, ...doc },
      { userId: actorId },
    );
    return row;
  });
}

/** Every version of every form of a study (the API and `trialseal forms list`). */
export async function listStudyForms(ctx: AppContext, studyCode: string) {
  const study = await getStudyOrThrow(ctx, studyCode);
  return listForms(ctx.db, study.id);
}

/** Every version of every form of a study, by study id (the study's pages). */
export async function studyForms(ctx: AppContext, studyId: string) {
  return listForms(ctx.db, studyId);
}

/** Every approved consent document version of a study, by study id (the study's pages). */
export async function studyConsentDocuments(ctx: AppContext, studyId: string) {
  return listConsentDocuments(ctx.db, studyId);
}

/** The public view of a form version. */
export function formView(f: Awaited<ReturnType<typeof listForms>>[number]) {
  return {
    code: f.code,
    version: f.version,
    title: f.title,
    status: f.status,
    definitionSha256: Buffer.from(f.definitionSha256).toString("hex"),
    approvedAt: f.approvedAt,
    approvalEntryId: f.approvalEntryId,
    definition: JSON.parse(f.definitionText),
  };
}

/** Approve a draft form version (a ledger entry carrying the definition's SHA-256). */
export async function approveForm(
  ctx: AppContext,
  principal: Principal,
  input: { study: string; code: string; version: number },
) {
  const study = await getStudyOrThrow(ctx, input.study);
  requirePermission(principal, "forms.manage", { studyId: study.id });
  const f = await findForm(ctx.db, study.id, input.code, input.version);
  if (!f) throw new ServiceError("not_found", `no form ${input.code} version ${input.version}`, "form");
  if (f.status !== "draft")
    throw new ServiceError("conflict", `form ${f.code} version ${f.version} is ${f.status}, not a draft`, "form");
  return ctx.db.transaction(async (tx) => {
    const e = await appendEntry(tx, ctx.crypto, study, "form.approved", {
      form: f.code,
      version: f.version,
      definitionSha256: toHex(f.definitionSha256),
      actor: principal.userId,
    });
    const [row] = await tx
      .update(forms)
      .set({ status: "approved", approvedBy: principal.userId, approvedAt: new Date(), approvalEntryId: e.id })
      .where(and(eq(forms.id, f.id), eq(forms.status, "draft")))
      .returning();
    if (!row) throw new ServiceError("conflict", "the form was approved meanwhile", "form");
    await audit(tx, {
      action: "form.approve",
      ...auditActor(principal),
      studyId: study.id,
      detail: { form: f.code, version: f.version, definitionSha256: toHex(f.definitionSha256), entry: e.id },
    });
    return row;
  });
}

const calendarDate = z
  .string()
  .trim()
  .regex(/^\d{4}-\d{2}-\d{2}$/, "use YYYY-MM-DD")
  .refine(
    (d) => !Number.isNaN(Date.parse(`${d}T00:00:00Z`)) && new Date(`${d}T00:00:00Z`).toISOString().startsWith(d),
    "not a calendar date",
  )
  .refine((d) => d <= new Date().toISOString().slice(0, 10), "the IRB approval date cannot be in the future");

export const ConsentDocumentSchema = z.object({
  code: z
    .string()
    .trim()
    .regex(/^[A-Z0-9][A-Z0-9_-]{0,31}$/, "use 1-32 capital letters, digits, - or _"),
  version: z
    .string()
    .trim()
    .regex(/^[0-9A-Za-z][0-9A-Za-z.-]{0,31}$/, "e.g. 1.0 or 2.1-es"),
  title: z.string().trim().min(1, "give the document a title").max(300),
  language: z
    .string()
    .trim()
    .regex(/^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$/, "a language tag such as en, es or pt-BR")
    .default("en"),
  bodyMarkdown: z
    .string()
    .min(20, "the document text is missing")
    .max(200_000)
    .superRefine((text, c) => {
      const r = parseConsentDocument(text);
      if (!r.ok) c.addIssue({ code: "custom", message: `line ${r.line}: ${r.message}` });
    }),
  irbName: z.string().trim().min(1, "name the IRB / ethics committee").max(200),
  irbApprovedOn: calendarDate,
});

/** An admin adds an IRB-approved consent document version (validated; the approval is a ledger entry). */
export async function addConsentDocument(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  input: z.input<typeof ConsentDocumentSchema>,
) {
  const r = ConsentDocumentSchema.safeParse(input);
  if (!r.success) {
    const i = r.error.issues[0];
    throw new ServiceError("invalid", `${i.path.join(".")}: ${i.message}`, String(i.path[0] ?? ""));
  }
  const study = await getStudyOrThrow(ctx, studyCode);
  requirePermission(principal, "forms.manage", { studyId: study.id });
  try {
    return await createApprovedConsentDocument(ctx, study.code, r.data, principal.userId);
  } catch (err) {
    if (isUniqueViolation(err))
      throw new ServiceError(
        "conflict",
        `consent document ${r.data.code} version ${r.data.version} already exists`,
        "version",
      );
    throw err;
  }
}
