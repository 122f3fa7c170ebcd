/**
 * Study documents (issue 20, ADR 0048): versions of the protocol, the statistical analysis plan (SAP), the
 * investigator's brochure (IB) and the data management plan (DMP), each a PDF of at most STUDY_DOCUMENT_MAX_BYTES
 * whose SHA-256 is sealed (`study_document.registered`) with its version, approval date and approving body; an
 * amendment names the version it replaces and a reason. File name, approving body and reason enter the payload only
 * as salted hashes. Each site's approval date of a version is sealed too (`study_document.site_approved`); the
 * protocol version in force at a site follows from them (protocol-in-force.server.ts).
 */
import { createHash } from "node:crypto";
import { and, asc, eq, inArray, sql } from "drizzle-orm";
import { z } from "zod";
import { toHex } from "../../anchoring/log/bytes.ts";
import { STUDY_DOCUMENT_TYPES, type StudyDocumentType } from "../../anchoring/log/payloads.ts";
import type { Crypto } from "../../anchoring/log/crypto.ts";
import { hashedTextMatches, saltedTextHash } from "../../anchoring/log/text-hash.ts";
import { firstFinalAnchorsCovering } from "../../db/queries/anchors.ts";
import { documentSiteApprovals, ledgerEntries, sites, studyDocuments, users } from "../../db/schema/index.ts";
import { audit } from "../audit-trail/record-event.server.ts";
import { appendEntry } from "../log/append-entry.server.ts";
import type { Seal } from "../log/seal-text.ts";
import { auditActor, auditDetail, payloadActor, rowTokenColumns, tokenLabel } from "../platform/attribution.ts";
import type { AppContext } from "../platform/context.server.ts";
import { refuseUnderDatabaseLock } from "../database-lock/refuse-under-lock.server.ts";
import { isUniqueViolation, ServiceError } from "../platform/errors.server.ts";
import { can, type Principal } from "../platform/permissions.server.ts";
import { getStudyOrThrow } from "../studies/studies.server.ts";
import { dateInZone } from "./protocol-in-force.ts";

export { STUDY_DOCUMENT_TYPES, type StudyDocumentType };

/** The largest PDF accepted: 20 MiB (a protocol with its appendices fits well within it; README "Limits"). */
export const STUDY_DOCUMENT_MAX_BYTES = 20 * 1024 * 1024;

/** Each document type in words. */
export const DOCUMENT_TYPE_LABELS: Record<StudyDocumentType, string> = {
  protocol: "Protocol",
  sap: "Statistical analysis plan (SAP)",
  ib: "Investigator's brochure",
  dmp: "Data management plan",
};

/** Every PDF starts with these bytes. */
const PDF_MAGIC = Buffer.from("%PDF-", "latin1");

function invalid(message: string, field: string): never {
  throw new ServiceError("invalid", message, field);
}

export interface PdfUpload {
  fileName: string;
  content: Uint8Array;
}

/**
 * Read an uploaded file as it streams in, refusing it (field `file`) once it passes `limit` bytes, so a larger file
 * is never held whole; the caller checks it is a PDF (registerDocument does).
 */
export async function readUpload(
  data: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  limit = STUDY_DOCUMENT_MAX_BYTES,
): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let bytes = 0;
  for await (const chunk of data) {
    bytes += chunk.byteLength;
    if (bytes > limit) invalid(`file: the PDF is larger than ${limit / (1024 * 1024)} MB`, "file");
    chunks.push(chunk);
  }
  return new Uint8Array(Buffer.concat(chunks));
}

const isoDate = (what: string) =>
  z
    .string()
    .trim()
    .regex(/^\d{4}-\d{2}-\d{2}$/, `give the ${what} as YYYY-MM-DD`)
    .refine(
      (d) => !Number.isNaN(Date.parse(`${d}T00:00:00Z`)) && new Date(`${d}T00:00:00Z`).toISOString().startsWith(d),
      "not a calendar date",
    );

export const DocumentInput = z.object({
  type: z.enum(STUDY_DOCUMENT_TYPES, {
    message: "choose protocol, SAP, investigator's brochure or data management plan",
  }),
  version: z
    .string()
    .trim()
    .min(1, "give the version label (for example 1.0)")
    .max(32, "keep the version label to 32 characters"),
  approvedOn: isoDate("approval date"),
  approvingBody: z
    .string()
    .trim()
    .min(1, "name the approving body (ethics committee, authority or sponsor board)")
    .max(200, "keep the approving body to 200 characters"),
  /** The version label this one amends (same type), or empty for a first version. */
  replaces: z.string().trim().max(32).optional().default(""),
  reason: z.string().trim().max(2000, "keep the reason under 2000 characters").optional().default(""),
});

const LABEL: Record<string, string> = {
  type: "Type",
  version: "Version",
  approvedOn: "Approval date",
  approvingBody: "Approving body",
  replaces: "Replaces",
  reason: "Reason",
  site: "Site",
  document: "Document",
};

function parse<T extends z.ZodTypeAny>(schema: T, input: unknown): z.output<T> {
  const r = schema.safeParse(input);
  if (!r.success) {
    const i = r.error.issues[0];
    const field = String(i.path[0] ?? "body");
    invalid(`${LABEL[field] ?? field}: ${i.message}`, field);
  }
  return r.data;
}

/** The latest date anywhere on Earth now (UTC+14): an approval date after it is in the future everywhere. */
const latestToday = () => dateInZone(new Date(), "Pacific/Kiritimati");

/**
 * Register a version of a study document: the PDF, its SHA-256 and the sealed `study_document.registered` entry, and
 * an audit event, in one transaction (permission documents.manage).
 */
export async function registerDocument(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  input: unknown,
  file: PdfUpload,
) {
  const study = await getStudyOrThrow(ctx, studyCode);
  if (!can(principal, "documents.manage", { studyId: study.id }))
    throw new ServiceError("forbidden", "not permitted: documents.manage (only the study's admin registers documents)");
  const v = parse(DocumentInput, input);
  if (v.approvedOn > latestToday()) invalid(`Approval date: ${v.approvedOn} is in the future`, "approvedOn");
  const fileName = String(file.fileName ?? "").trim() || "document.pdf";
  if (fileName.length > 255) invalid("file: the file name is longer than 255 characters", "file");
  const content = file.content;
  if (!content || content.byteLength === 0) invalid("file: choose the PDF (the file is empty)", "file");
  if (content.byteLength > STUDY_DOCUMENT_MAX_BYTES)
    invalid(`file: the PDF is larger than ${STUDY_DOCUMENT_MAX_BYTES / (1024 * 1024)} MB`, "file");
  if (!Buffer.from(content.subarray(0, PDF_MAGIC.length)).equals(PDF_MAGIC))
    invalid(`file: ${fileName} is not a PDF (a PDF starts with %PDF-); export the document as PDF`, "file");
  const sha256 = createHash("sha256").update(content).digest("hex");
  const typeLabel = DOCUMENT_TYPE_LABELS[v.type];
  try {
    return await ctx.db.transaction(async (tx) => {
      // One registration per study and type at a time: the first-version and replaces checks below hold.
      await tx.execute(sql`SELECT pg_advisory_xact_lock(hashtextextended(${`study_documents:${study.id}`}, 0))`);
      const existing = await tx
        .select({
          id: studyDocuments.id,
          type: studyDocuments.type,
          version: studyDocuments.version,
          sha256: studyDocuments.sha256,
          approvedOn: studyDocuments.approvedOn,
          replacesId: studyDocuments.replacesId,
        })
        .from(studyDocuments)
        .where(eq(studyDocuments.studyId, study.id));
      const same = existing.find((d) => toHex(d.sha256) === sha256);
      if (same)
        throw new ServiceError(
          "conflict",
          `file: this PDF is already registered as ${DOCUMENT_TYPE_LABELS[same.type]} version ${same.version}`,
          "file",
        );
      const ofType = existing.filter((d) => d.type === v.type);
      if (ofType.some((d) => d.version === v.version))
        throw new ServiceError("conflict", `Version: ${typeLabel} version ${v.version} already exists`, "version");
      let replaces: (typeof existing)[number] | null = null;
      if (ofType.length === 0) {
        if (v.replaces)
          invalid(
            `Replaces: this is the first ${typeLabel.toLowerCase()} of the study, so it replaces no version; ` +
              "leave Replaces and Reason empty",
            "replaces",
          );
        if (v.reason)
          invalid(
            "Reason: a first version has no amendment reason; " +
              `leave Reason empty for the first ${typeLabel.toLowerCase()}`,
            "reason",
          );
      } else {
        const current = ofType.filter((d) => !ofType.some((o) => o.replacesId === d.id)).map((d) => d.version);
        if (!v.replaces)
          invalid(
            `Replaces: an amendment names the ${typeLabel.toLowerCase()} version it replaces (${current.join(", ")})`,
            "replaces",
          );
        replaces = ofType.find((d) => d.version === v.replaces) ?? null;
        if (!replaces)
          invalid(
            `Replaces: there is no ${typeLabel.toLowerCase()} version ${v.replaces} ` +
              `(the versions are ${ofType.map((d) => d.version).join(", ")})`,
            "replaces",
          );
        const r = replaces as (typeof existing)[number];
        const by = ofType.find((d) => d.replacesId === r.id);
        if (by) invalid(`Replaces: version ${r.version} was already replaced by version ${by.version}`, "replaces");
        if (!v.reason) invalid(`Reason: give the reason for amending version ${r.version}`, "reason");
        if (v.approvedOn < r.approvedOn)
          invalid(
            `Approval date: ${v.approvedOn} is before the approval of version ${r.version} (${r.approvedOn}), ` +
              "which this one replaces",
            "approvedOn",
          );
      }
      const id = crypto.randomUUID();
      const reason = replaces ? v.reason : null;
      const e = await appendEntry(tx, ctx.crypto, study, "study_document.registered", (salt) => ({
        document: id,
        type: v.type,
        version: v.version,
        sha256,
        bytes: content.byteLength,
        fileNameHash: saltedTextHash(ctx.crypto, salt, fileName),
        approvedOn: v.approvedOn,
        approverHash: saltedTextHash(ctx.crypto, salt, v.approvingBody),
        replaces: replaces?.id ?? null,
        reasonHash: reason === null ? null : saltedTextHash(ctx.crypto, salt, reason),
        ...payloadActor(principal),
      }));
      await tx.insert(studyDocuments).values({
        id,
        studyId: study.id,
        type: v.type,
        version: v.version,
        fileName,
        sha256: Buffer.from(sha256, "hex"),
        bytes: content.byteLength,
        content: Buffer.from(content),
        approvedOn: v.approvedOn,
        approvingBody: v.approvingBody,
        replacesId: replaces?.id ?? null,
        reason,
        actorUserId: principal.userId,
        ...rowTokenColumns(principal),
        entryId: e.id,
      });
      await audit(tx, {
        action: "study_document.registered",
        ...auditActor(principal),
        studyId: study.id,
        detail: auditDetail(principal, {
          document: id,
          type: v.type,
          version: v.version,
          replaces: replaces?.version ?? null,
          sha256,
          entry: e.id,
        }),
      });
      return { id, type: v.type, version: v.version, sha256, bytes: content.byteLength, entryId: e.id };
    });
  } catch (err) {
    if (isUniqueViolation(err))
      throw new ServiceError(
        "conflict",
        `Version: ${typeLabel} version ${v.version} or this very PDF was registered at the same moment`,
        "version",
      );
    throw err;
  }
}

export const SiteApprovalInput = z.object({
  document: z.string().trim().uuid("choose the document version"),
  site: z.string().trim().min(1, "choose the site").max(64),
  approvedOn: isoDate("site's approval date"),
});

/**
 * Record a site's approval date of a document version (permission documents.approve_site at that site): the row,
 * its `study_document.site_approved` entry and an audit event. Once per version and site.
 */
export async function approveAtSite(ctx: AppContext, principal: Principal, studyCode: string, input: unknown) {
  const study = await getStudyOrThrow(ctx, studyCode);
  const v = parse(SiteApprovalInput, input);
  const [site] = await ctx.db
    .select()
    .from(sites)
    .where(and(eq(sites.studyId, study.id), eq(sites.code, v.site.toUpperCase())));
  if (!site) invalid(`Site: ${study.code} has no site ${v.site}`, "site");
  if (!can(principal, "documents.approve_site", { studyId: study.id, siteId: site.id }))
    throw new ServiceError("forbidden", `not permitted: documents.approve_site at site ${site.code}`);
  const [doc] = await ctx.db
    .select({
      id: studyDocuments.id,
      type: studyDocuments.type,
      version: studyDocuments.version,
      approvedOn: studyDocuments.approvedOn,
    })
    .from(studyDocuments)
    .where(and(eq(studyDocuments.studyId, study.id), eq(studyDocuments.id, v.document)));
  if (!doc) invalid(`Document: ${study.code} has no such document version`, "document");
  const what = `${DOCUMENT_TYPE_LABELS[doc.type]} version ${doc.version}`;
  const today = dateInZone(new Date(), site.timeZone);
  if (v.approvedOn > today)
    invalid(`Approval date: ${v.approvedOn} is in the future (today at ${site.code} is ${today})`, "approvedOn");
  if (v.approvedOn < doc.approvedOn)
    invalid(`Approval date: ${v.approvedOn} is before ${what} itself was approved (${doc.approvedOn})`, "approvedOn");
  const already = async () => {
    const [a] = await ctx.db
      .select({ approvedOn: documentSiteApprovals.approvedOn })
      .from(documentSiteApprovals)
      .where(and(eq(documentSiteApprovals.documentId, doc.id), eq(documentSiteApprovals.siteId, site.id)));
    return a
      ? new ServiceError("conflict", `Site: ${site.code} already approved ${what} on ${a.approvedOn}`, "site")
      : null;
  };
  const before = await already();
  if (before) throw before;
  try {
    return await ctx.db.transaction(async (tx) => {
      // A site approval changes which protocol version was in force for values already entered (ADR 0054).
      await refuseUnderDatabaseLock(tx, study.id, "recording a site approval");
      const id = crypto.randomUUID();
      const e = await appendEntry(tx, ctx.crypto, study, "study_document.site_approved", {
        approval: id,
        document: doc.id,
        site: site.code,
        approvedOn: v.approvedOn,
        ...payloadActor(principal),
      });
      await tx.insert(documentSiteApprovals).values({
        id,
        studyId: study.id,
        documentId: doc.id,
        siteId: site.id,
        approvedOn: v.approvedOn,
        actorUserId: principal.userId,
        ...rowTokenColumns(principal),
        entryId: e.id,
      });
      await audit(tx, {
        action: "study_document.site_approved",
        ...auditActor(principal),
        studyId: study.id,
        siteId: site.id,
        detail: auditDetail(principal, {
          approval: id,
          document: doc.id,
          type: doc.type,
          version: doc.version,
          approvedOn: v.approvedOn,
          entry: e.id,
        }),
      });
      return { id, entryId: e.id, site: site.code, version: doc.version, approvedOn: v.approvedOn };
    });
  } catch (err) {
    if (isUniqueViolation(err)) throw (await already()) ?? err;
    throw err;
  }
}

/** A study_documents row as the comparison with its sealed entry needs it (everything but the PDF's bytes). */
export interface DocumentSealRow {
  id: string;
  type: string;
  version: string;
  sha256: Uint8Array;
  bytes: number;
  approvedOn: string;
  approvingBody: string;
  fileName: string;
  replacesId: string | null;
  reason: string | null;
  actorUserId: string | null;
  actorTokenId: string | null;
  actorTokenName: string | null;
}

function payloadOf(payloadText: string | null): Record<string, unknown> | null {
  if (payloadText === null) return null;
  try {
    const p = JSON.parse(payloadText) as unknown;
    return p && typeof p === "object" ? (p as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

const tokenOf = (p: Record<string, unknown>) => (p.token ?? null) as { id?: unknown; name?: unknown } | null;

/** Why a comparison found nothing to compare with: no entry (or not a payload). */
export const NO_SEALED_ENTRY = "no sealed entry";

/**
 * Every field of a study document row that differs from its `study_document.registered` entry, in words (empty when
 * all match): type, version, SHA-256 (the column), stored PDF (the SHA-256 of the bytes, `contentSha256`, when given),
 * size, approval date, approving body, file name, amendment reason (salted hashes), version it replaces, registered
 * by. Fields only, never values: the page shows them to everyone who reads documents and the public page to anyone.
 */
export function documentSealDifferences(
  crypto: Crypto,
  row: DocumentSealRow,
  payloadText: string | null,
  contentSha256?: string | null,
): string[] {
  const p = payloadOf(payloadText);
  if (!p) return [NO_SEALED_ENTRY];
  const t = tokenOf(p);
  const checks: [string, boolean][] = [
    ["document", p.document === row.id],
    ["type", p.type === row.type],
    ["version", p.version === row.version],
    ["SHA-256", p.sha256 === toHex(row.sha256)],
    ["stored PDF", contentSha256 === undefined || p.sha256 === contentSha256],
    ["size", p.bytes === Number(row.bytes)],
    ["approval date", p.approvedOn === row.approvedOn],
    ["approving body", hashedTextMatches(crypto, p, "approver", row.approvingBody)],
    ["file name", hashedTextMatches(crypto, p, "fileName", row.fileName)],
    ["amendment reason", hashedTextMatches(crypto, p, "reason", row.reason)],
    ["version it replaces", (p.replaces ?? null) === (row.replacesId ?? null)],
    [
      "registered by",
      (p.actor ?? null) === (row.actorTokenId ? null : row.actorUserId) &&
        (t?.id ?? null) === (row.actorTokenId ?? null) &&
        (t?.name ?? null) === (row.actorTokenName ?? null),
    ],
  ];
  return checks.filter(([, ok]) => !ok).map(([w]) => w);
}

/** A document_site_approvals row as the comparison with its sealed entry needs it (`site` is the site's code). */
export interface SiteApprovalSealRow {
  id: string;
  documentId: string;
  site: string;
  approvedOn: string;
  actorUserId: string | null;
  actorTokenId: string | null;
  actorTokenName: string | null;
}

/**
 * Every field of a site approval row that differs from its `study_document.site_approved` entry, in words (empty
 * when all match): approval, document, site, approval date, recorded by.
 */
export function siteApprovalSealDifferences(row: SiteApprovalSealRow, payloadText: string | null): string[] {
  const p = payloadOf(payloadText);
  if (!p) return [NO_SEALED_ENTRY];
  const t = tokenOf(p);
  const checks: [string, boolean][] = [
    ["approval", p.approval === row.id],
    ["document", p.document === row.documentId],
    ["site", p.site === row.site],
    ["approval date", p.approvedOn === row.approvedOn],
    [
      "recorded by",
      (p.actor ?? null) === (row.actorTokenId ? null : row.actorUserId) &&
        (t?.id ?? null) === (row.actorTokenId ?? null) &&
        (t?.name ?? null) === (row.actorTokenName ?? null),
    ],
  ];
  return checks.filter(([, ok]) => !ok).map(([w]) => w);
}

/** The words a page shows for a row that differs from its sealed entry. */
export function differencesText(differences: readonly string[]): string {
  return differences.includes(NO_SEALED_ENTRY)
    ? "this row has no sealed entry behind it"
    : `this row differs from its sealed entry: ${differences.join(", ")}`;
}

export interface SiteApprovalView {
  id: string;
  site: string;
  approvedOn: string;
  by: string;
  /** False when the row no longer matches its sealed entry: not used for the protocol in force. */
  matchesSeal: boolean;
  /** The fields that differ, in words (empty when it matches). */
  differences: string[];
  seal: Seal;
}

export interface DocumentView {
  id: string;
  type: StudyDocumentType;
  version: string;
  fileName: string;
  sha256: string;
  bytes: number;
  approvedOn: string;
  approvingBody: string;
  replaces: string | null;
  reason: string | null;
  registeredBy: string;
  registeredAt: string;
  /** False when the stored PDF or its row no longer match the sealed entry (never shown as sealed then). */
  matchesSeal: boolean;
  /** The fields that differ, in words (empty when it matches). */
  differences: string[];
  seal: Seal;
  siteApprovals: SiteApprovalView[];
}

/** The study's documents, oldest first, with their site approvals and seal state (permission documents.read). */
export async function listDocuments(ctx: AppContext, principal: Principal, studyCode: string) {
  const study = await getStudyOrThrow(ctx, studyCode);
  if (!can(principal, "documents.read", { studyId: study.id }))
    throw new ServiceError("forbidden", "not permitted: documents.read");
  const docs = await ctx.db
    .select({
      d: studyDocuments,
      name: users.fullName,
      status: ledgerEntries.status,
      seq: ledgerEntries.seq,
      batch: ledgerEntries.batchNo,
      payloadText: ledgerEntries.payloadText,
    })
    .from(studyDocuments)
    .leftJoin(ledgerEntries, eq(ledgerEntries.id, studyDocuments.entryId))
    .leftJoin(users, eq(users.id, studyDocuments.actorUserId))
    .where(eq(studyDocuments.studyId, study.id))
    .orderBy(asc(studyDocuments.type), asc(studyDocuments.createdAt), asc(studyDocuments.id));
  const approvals = docs.length
    ? await ctx.db
        .select({
          a: documentSiteApprovals,
          site: sites.code,
          name: users.fullName,
          status: ledgerEntries.status,
          seq: ledgerEntries.seq,
          batch: ledgerEntries.batchNo,
          payloadText: ledgerEntries.payloadText,
        })
        .from(documentSiteApprovals)
        .innerJoin(sites, eq(sites.id, documentSiteApprovals.siteId))
        .leftJoin(ledgerEntries, eq(ledgerEntries.id, documentSiteApprovals.entryId))
        .leftJoin(users, eq(users.id, documentSiteApprovals.actorUserId))
        .where(
          inArray(
            documentSiteApprovals.documentId,
            docs.map((x) => x.d.id),
          ),
        )
        .orderBy(asc(sites.code))
    : [];
  const anchored = new Map<number, string[]>();
  for (const b of new Set([...docs, ...approvals].map((x) => x.batch).filter((x): x is number => x !== null)))
    anchored.set(
      b,
      (await firstFinalAnchorsCovering(ctx.db, b)).map((a) => a.ledger),
    );
  const seal = (x: { status: string | null; seq: number | null; batch: number | null }, matches = true): Seal => ({
    status: x.status ?? "missing",
    seq: x.seq,
    batch: x.batch,
    anchoredOn: x.batch === null ? [] : (anchored.get(x.batch) ?? []),
    matchesSeal: matches && x.status !== null,
  });
  const who = (r: { actorTokenId: string | null; actorTokenName: string | null }, name: string | null) =>
    r.actorTokenId ? tokenLabel({ id: r.actorTokenId, name: r.actorTokenName ?? "" }) : (name ?? "unknown user");
  const versionOf = new Map(docs.map((x) => [x.d.id, x.d.version]));
  return {
    study: { id: study.id, code: study.code },
    documents: docs.map(({ d, name, ...e }): DocumentView => {
      const content = createHash("sha256").update(d.content).digest("hex");
      const differences = documentSealDifferences(ctx.crypto, d, e.payloadText, content);
      const matches = differences.length === 0;
      return {
        id: d.id,
        type: d.type,
        version: d.version,
        fileName: d.fileName,
        sha256: toHex(d.sha256),
        bytes: d.bytes,
        approvedOn: d.approvedOn,
        approvingBody: d.approvingBody,
        replaces: d.replacesId ? (versionOf.get(d.replacesId) ?? "?") : null,
        reason: d.reason,
        registeredBy: who(d, name),
        registeredAt: d.createdAt.toISOString(),
        matchesSeal: matches,
        differences,
        seal: seal(e, matches),
        siteApprovals: approvals
          .filter((x) => x.a.documentId === d.id)
          .map((x): SiteApprovalView => {
            const diff = siteApprovalSealDifferences({ ...x.a, site: x.site }, x.payloadText);
            return {
              id: x.a.id,
              site: x.site,
              approvedOn: x.a.approvedOn,
              by: who(x.a, x.name),
              matchesSeal: diff.length === 0,
              differences: diff,
              seal: seal(x, diff.length === 0),
            };
          }),
      };
    }),
  };
}

/**
 * A document version's PDF for download (permission documents.read), only when its bytes' SHA-256 is the one its
 * sealed entry holds: altered bytes are refused (409, naming the version), never served.
 */
export async function documentDownload(ctx: AppContext, principal: Principal, studyCode: string, documentId: string) {
  const study = await getStudyOrThrow(ctx, studyCode);
  if (!can(principal, "documents.read", { studyId: study.id }))
    throw new ServiceError("forbidden", "not permitted: documents.read");
  if (!/^[0-9a-f-]{36}$/i.test(documentId)) throw new ServiceError("not_found", "no such document", "document");
  const [r] = await ctx.db
    .select({ d: studyDocuments, payloadText: ledgerEntries.payloadText })
    .from(studyDocuments)
    .leftJoin(ledgerEntries, eq(ledgerEntries.id, studyDocuments.entryId))
    .where(and(eq(studyDocuments.studyId, study.id), eq(studyDocuments.id, documentId)));
  if (!r) throw new ServiceError("not_found", "no such document", "document");
  const what = `${DOCUMENT_TYPE_LABELS[r.d.type]} version ${r.d.version}`;
  const held = payloadOf(r.payloadText)?.sha256;
  const sealed = typeof held === "string" ? held : null;
  const actual = createHash("sha256").update(r.d.content).digest("hex");
  if (sealed === null)
    throw new ServiceError(
      "conflict",
      `${what} has no sealed entry behind it; it is not served. Run the integrity audit`,
    );
  if (actual !== sealed)
    throw new ServiceError(
      "conflict",
      `The stored PDF of ${what} is not the one that was sealed (SHA-256 ${actual} instead of ${sealed}); ` +
        "it was altered outside TrialSeal and is not served. Run the integrity audit",
    );
  return { fileName: r.d.fileName, content: new Uint8Array(r.d.content), sha256: actual, what };
}

/** The sites a principal may record approvals for (documents.approve_site at that site). */
export async function approvableSites(ctx: AppContext, principal: Principal, studyId: string) {
  const all = await ctx.db
    .select({ id: sites.id, code: sites.code, name: sites.name })
    .from(sites)
    .where(eq(sites.studyId, studyId))
    .orderBy(asc(sites.code));
  return all.filter((s) => can(principal, "documents.approve_site", { studyId, siteId: s.id }));
}
