/**
 * Consent obtained on paper (ADR 0021). Site staff who obtain consent upload the scan of the signed paper form:
 * the portal reads it as a stream (at most PAPER_SCAN_MAX_BYTES), seals its SHA-256 bound to the consent document
 * version (`consent.paper_scanned`) and keeps no copy (the paper original and its scan stay in the investigator
 * site file). An investigator of the participant's site, not the uploader, then attests it with their password
 * (`consent.paper_attested`): from then on the consent counts as complete.
 */
import { createHash } from "node:crypto";
import { and, eq, isNull } from "drizzle-orm";
import { z } from "zod";
import { consentDocuments, paperConsents } from "../../db/schema/index.ts";
import type { AppContext } from "../platform/context.server.ts";
import { refuseUnderDatabaseLock } from "../database-lock/refuse-under-lock.server.ts";
import { ServiceError } from "../platform/errors.server.ts";
import type { Principal } from "../platform/permissions.server.ts";
import { appendEntry } from "../log/append-entry.server.ts";
import { audit } from "../audit-trail/record-event.server.ts";
import { reauthenticate, type RequestMeta } from "../accounts/auth.server.ts";
import { requireSiteAction } from "../studies/delegations.server.ts";
import { getStudyOrThrow } from "../studies/studies.server.ts";
import { participantBySubject } from "../participants/find-participant.server.ts";
import { toHex } from "../../anchoring/log/bytes.ts";

/** The largest scan accepted (a multi-page PDF or photo set of a consent form fits well within it). */
export const PAPER_SCAN_MAX_BYTES = 20 * 1024 * 1024;

export interface ScanDigest {
  sha256: string;
  bytes: number;
}

/** Hash a scan as it streams in, refusing it (422, field `scan`) once it passes the limit or when it is empty. */
export async function hashScan(
  data: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  limit = PAPER_SCAN_MAX_BYTES,
): Promise<ScanDigest> {
  const h = createHash("sha256");
  let bytes = 0;
  for await (const chunk of data) {
    bytes += chunk.byteLength;
    if (bytes > limit)
      throw new ServiceError(
        "invalid",
        `scan: the file is larger than ${Math.floor(limit / (1024 * 1024))} MiB; scan at a lower resolution`,
        "scan",
      );
    h.update(chunk);
  }
  if (bytes === 0)
    throw new ServiceError("invalid", "scan: choose the scanned consent form (the file is empty)", "scan");
  return { sha256: h.digest("hex"), bytes };
}

export const PaperConsentInput = z.object({
  document: z.string().trim().min(1, "choose the consent document").max(64),
  version: z.string().trim().min(1, "give the document version").max(32),
});

function invalid(message: string, field: string): never {
  throw new ServiceError("invalid", message, field);
}

/** Seal a paper consent's scan digest for a participant (staff who may obtain consent at the site). */
export async function recordPaperConsent(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  subject: string,
  input: unknown,
  scan: ScanDigest,
) {
  const r = PaperConsentInput.safeParse(input);
  if (!r.success)
    invalid(`${r.error.issues[0].path.join(".")}: ${r.error.issues[0].message}`, String(r.error.issues[0].path[0]));
  if (!/^[0-9a-f]{64}$/.test(scan.sha256) || !(scan.bytes > 0)) invalid("scan: no scanned file was received", "scan");
  const study = await getStudyOrThrow(ctx, studyCode);
  const p = await participantBySubject(ctx, study.id, subject);
  if (!p) invalid(`subject: no subject ${subject} in ${study.code}`, "subject");
  await requireSiteAction(ctx, principal, "consent.obtain", { studyId: study.id, siteId: p.siteId });
  if (!principal.userId) throw new ServiceError("forbidden", "a paper consent is recorded by a signed-in person");
  const [doc] = await ctx.db
    .select()
    .from(consentDocuments)
    .where(
      and(
        eq(consentDocuments.studyId, study.id),
        eq(consentDocuments.code, r.data.document.toUpperCase()),
        eq(consentDocuments.version, r.data.version),
        eq(consentDocuments.status, "approved"),
      ),
    );
  if (!doc)
    invalid(
      `document: ${r.data.document} ${r.data.version} is not an approved consent document of ${study.code}`,
      "document",
    );
  const uploadedAt = new Date();
  return ctx.db.transaction(async (tx) => {
    await refuseUnderDatabaseLock(tx, study.id, "recording a paper consent");
    const id = crypto.randomUUID();
    const e = await appendEntry(tx, ctx.crypto, study, "consent.paper_scanned", {
      paper: id,
      subject: p.subjectCode,
      document: doc.code,
      version: doc.version,
      documentSha256: toHex(doc.bodySha256),
      scanSha256: scan.sha256,
      scanBytes: scan.bytes,
      actor: principal.userId,
    });
    await tx.insert(paperConsents).values({
      id,
      studyId: study.id,
      participantId: p.id,
      documentId: doc.id,
      scanSha256: Buffer.from(scan.sha256, "hex"),
      scanBytes: scan.bytes,
      uploadedBy: principal.userId!,
      uploadedAt,
      entryId: e.id,
    });
    await audit(tx, {
      action: "consent.paper_scanned",
      actorUserId: principal.userId,
      actorLabel: principal.label,
      studyId: study.id,
      siteId: p.siteId,
      participantId: p.id,
      detail: { paper: id, document: doc.code, version: doc.version, scanSha256: scan.sha256, entry: e.id },
    });
    return { id, entry: e.id, scanSha256: scan.sha256 };
  });
}

export const AttestInput = z.object({
  password: z.string().min(1, "enter your password"),
  code: z.string().trim().optional(),
});

/** An investigator of the participant's site (not the uploader) attests a scanned paper consent. */
export async function attestPaperConsent(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  subject: string,
  paperId: string,
  input: unknown,
  meta: RequestMeta,
) {
  const r = AttestInput.safeParse(input);
  if (!r.success)
    invalid(`${r.error.issues[0].path.join(".")}: ${r.error.issues[0].message}`, String(r.error.issues[0].path[0]));
  const study = await getStudyOrThrow(ctx, studyCode);
  const p = await participantBySubject(ctx, study.id, subject);
  if (!p) invalid(`subject: no subject ${subject} in ${study.code}`, "subject");
  if (!/^[0-9a-f-]{36}$/.test(paperId)) throw new ServiceError("not_found", `no paper consent ${paperId}`, "paper");
  const [pc] = await ctx.db
    .select()
    .from(paperConsents)
    .where(and(eq(paperConsents.id, paperId), eq(paperConsents.participantId, p.id)));
  if (!pc) throw new ServiceError("not_found", `no paper consent ${paperId} for subject ${p.subjectCode}`, "paper");
  const investigator = principal.memberships.some(
    (m) => m.studyId === study.id && m.role === "investigator" && (m.siteId === null || m.siteId === p.siteId),
  );
  if (!investigator || !principal.userId)
    throw new ServiceError("forbidden", "only an investigator of the participant's site may attest a paper consent");
  if (pc.uploadedBy === principal.userId)
    throw new ServiceError(
      "forbidden",
      "the investigator who attests a paper consent must not be the person who uploaded its scan",
    );
  if (pc.attestedAt) throw new ServiceError("conflict", "this paper consent is already attested", "paper");
  await reauthenticate(ctx, principal.userId, r.data.password, r.data.code, meta);
  return ctx.db.transaction(async (tx) => {
    await refuseUnderDatabaseLock(tx, study.id, "attesting a paper consent");
    const e = await appendEntry(tx, ctx.crypto, study, "consent.paper_attested", {
      paper: pc.id,
      subject: p.subjectCode,
      scanSha256: toHex(pc.scanSha256),
      investigator: principal.userId!,
      actor: principal.userId,
    });
    const done = await tx
      .update(paperConsents)
      // The entry's own time, so that the integrity audit can compare the two exactly.
      .set({ attestedBy: principal.userId, attestedAt: e.at, attestEntryId: e.id })
      .where(and(eq(paperConsents.id, pc.id), isNull(paperConsents.attestedAt)))
      .returning({ id: paperConsents.id });
    if (done.length === 0) throw new ServiceError("conflict", "this paper consent is already attested", "paper");
    await audit(tx, {
      action: "consent.paper_attested",
      actorUserId: principal.userId,
      actorLabel: principal.label,
      studyId: study.id,
      siteId: p.siteId,
      participantId: p.id,
      detail: { paper: pc.id, scanSha256: toHex(pc.scanSha256), entry: e.id },
    });
    return { id: pc.id, entry: e.id };
  });
}
