/**
 * Where a participant's consent stands: signatures, withdrawals, the summary state (consented, awaiting
 * countersignature, re-consent needed, withdrawn), and the rule data entry follows after a withdrawal.
 */
import { asc, eq } from "drizzle-orm";
import { toHex } from "../../anchoring/log/bytes.ts";
import {
  consentDocuments,
  consentSignatures,
  consentWithdrawals,
  paperConsents,
  participants,
  users,
  type SignerRole,
} from "../../db/schema/index.ts";
import type { DbOrTx } from "../../db/client.ts";
import type { AppContext } from "../platform/context.server.ts";
import { ServiceError } from "../platform/errors.server.ts";
import { can, type Principal } from "../platform/permissions.server.ts";
import { decryptField } from "../participants/personal-data.server.ts";
import { subjectKey } from "../participants/decrypt-participant.server.ts";
import { currentDocuments } from "./approved-documents.server.ts";
import { printedNameKey } from "./printed-name.server.ts";

/** A participant's withdrawals, oldest first. */
export async function withdrawalsOf(ctx: AppContext, participantId: string, db: DbOrTx = ctx.db) {
  return db
    .select()
    .from(consentWithdrawals)
    .where(eq(consentWithdrawals.participantId, participantId))
    .orderBy(asc(consentWithdrawals.withdrawnAt));
}

/**
 * Data entry follows consent: after a full withdrawal no new data may be collected (corrections of earlier data
 * may).
 */
export async function assertConsentAllowsNewData(ctx: AppContext, participantId: string, db: DbOrTx = ctx.db) {
  const full = (await withdrawalsOf(ctx, participantId, db)).find((w) => w.scope === "full");
  if (full)
    throw new ServiceError(
      "conflict",
      `the participant withdrew consent on ${full.withdrawnAt.toISOString().slice(0, 10)}: ` +
        "no new data may be collected (data collected before the withdrawal are retained and may be corrected)",
      "subject",
    );
}

/**
 * A participant's consent: every signature (names decrypted only when `withNames`), withdrawals, and the summary
 * status.
 */
export async function consentStatus(
  ctx: AppContext,
  participantId: string,
  opts: { withNames?: boolean; db?: DbOrTx } = {},
) {
  const db = opts.db ?? ctx.db;
  const [p] = await db.select().from(participants).where(eq(participants.id, participantId));
  const rows = await db
    .select({ s: consentSignatures, doc: consentDocuments })
    .from(consentSignatures)
    .innerJoin(consentDocuments, eq(consentDocuments.id, consentSignatures.documentId))
    .where(eq(consentSignatures.participantId, participantId))
    .orderBy(asc(consentSignatures.signedAt));
  const key = opts.withNames && p ? subjectKey(ctx, p) : null;
  const signatures = rows.map(({ s, doc }) => ({
    id: s.id,
    role: s.signerRole as SignerRole,
    primary: s.countersigns === null,
    meaning: s.meaning,
    printedName:
      opts.withNames && s.printedNameEnc && key
        ? decryptField(printedNameKey(key), s.printedNameEnc, `consent_signatures.printed_name:${s.id}`)
        : null,
    signedAt: s.signedAt.toISOString(),
    fromStaffDevice: s.fromStaffDevice,
    options: s.options as Record<string, boolean>,
    documentId: doc.id,
    document: { code: doc.code, version: doc.version, title: doc.title, sha256: toHex(doc.bodySha256) },
    countersigns: s.countersigns,
    invitationId: s.invitationId,
    countersignedBy: null as string | null,
    entryId: s.entryId,
  }));
  for (const s of signatures)
    if (s.countersigns) {
      const target = signatures.find((x) => x.id === s.countersigns);
      if (target && s.role === "staff") target.countersignedBy = s.id;
    }
  // Consents obtained on paper (ADR 0021): the scan's sealed SHA-256, complete once an investigator attests it.
  const paperRows = await db
    .select({ pc: paperConsents, doc: consentDocuments, attester: users.fullName })
    .from(paperConsents)
    .innerJoin(consentDocuments, eq(consentDocuments.id, paperConsents.documentId))
    .leftJoin(users, eq(users.id, paperConsents.attestedBy))
    .where(eq(paperConsents.participantId, participantId))
    .orderBy(asc(paperConsents.uploadedAt));
  const paper = paperRows.map(({ pc, doc, attester }) => ({
    id: pc.id,
    documentId: doc.id,
    document: { code: doc.code, version: doc.version, title: doc.title, sha256: toHex(doc.bodySha256) },
    scanSha256: toHex(pc.scanSha256),
    scanBytes: pc.scanBytes,
    uploadedBy: pc.uploadedBy,
    uploadedAt: pc.uploadedAt.toISOString(),
    attestedBy: pc.attestedBy,
    attesterName: attester,
    attestedAt: pc.attestedAt?.toISOString() ?? null,
    entryId: pc.entryId,
    attestEntryId: pc.attestEntryId,
  }));
  const withdrawals = (await withdrawalsOf(ctx, participantId, db)).map((w) => ({
    id: w.id,
    scope: w.scope,
    allows: w.allows as { followUp: boolean; optionalWithdrawn: string[] },
    reason: w.reason,
    byParticipant: w.byParticipant,
    at: w.withdrawnAt.toISOString(),
    entryId: w.entryId,
  }));
  const current = p ? await currentDocuments(ctx, p.studyId, db) : new Map();
  const latestSigned = [...signatures].reverse().find((s) => s.primary);
  const latestPaper = paper[paper.length - 1];
  // The latest consent obtained, electronically or on paper, is the one that counts.
  const onPaper = !!latestPaper && (!latestSigned || latestPaper.uploadedAt >= latestSigned.signedAt);
  const doc = (d: { code: string; version: string }) => `${d.code} ${d.version}`;
  const latestPrimary = onPaper
    ? { document: latestPaper.document, documentId: latestPaper.documentId, countersignedBy: latestPaper.attestedBy }
    : latestSigned;
  let summary: string;
  let state:
    | "none"
    | "awaiting_countersign"
    | "awaiting_attestation"
    | "consented"
    | "reconsent_needed"
    | "withdrawn"
    | "partially_withdrawn";
  const full = withdrawals.find((w) => w.scope === "full");
  if (full) {
    state = "withdrawn";
    summary = `withdrawn ${full.at.slice(0, 10)}`;
  } else if (!latestPrimary) {
    state = "none";
    summary = "not consented";
  } else {
    const cur = current.get(latestPrimary.document.code);
    if (cur && cur.id !== latestPrimary.documentId) {
      state = "reconsent_needed";
      summary = `re-consent needed: signed ${latestPrimary.document.version}, current ${cur.version}`;
    } else if (!latestPrimary.countersignedBy && onPaper) {
      state = "awaiting_attestation";
      summary = `paper consent ${doc(latestPrimary.document)} scanned, awaiting investigator attestation`;
    } else if (!latestPrimary.countersignedBy) {
      state = "awaiting_countersign";
      summary = `signed ${latestPrimary.document.code} ${latestPrimary.document.version}, awaiting countersignature`;
    } else {
      state = "consented";
      summary = `consented ${doc(latestPrimary.document)}${onPaper ? " (on paper)" : ""}`;
    }
    if (withdrawals.length) {
      state = state === "consented" ? "partially_withdrawn" : state;
      summary += " (partially withdrawn: follow-up only)";
    }
  }
  return { state, summary, signatures, withdrawals, paper };
}

/** Consent summary per participant of a study (the participants list and the regulator's review). */
export async function studyConsentSummary(ctx: AppContext, principal: Principal, studyId: string) {
  const ps = await ctx.db
    .select({ id: participants.id, siteId: participants.siteId })
    .from(participants)
    .where(eq(participants.studyId, studyId));
  const visible = ps.filter((p) => can(principal, "records.read", { studyId, siteId: p.siteId }));
  const out = new Map<string, Awaited<ReturnType<typeof consentStatus>>>();
  for (const p of visible) out.set(p.id, await consentStatus(ctx, p.id));
  return out;
}
