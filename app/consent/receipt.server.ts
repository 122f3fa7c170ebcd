/**
 * The participant's copy: the receipt's data (page and PDF, see receipt-pdf.server.ts) and the public page behind
 * its QR code, which shows the non-personal facts of one consent and the seal status of its ledger entries.
 */
import { asc, eq } from "drizzle-orm";
import { toHex } from "../../anchoring/log/bytes.ts";
import {
  consentDocuments,
  consentSignatures,
  ledgerEntries,
  participants,
  sites,
  studies,
} from "../../db/schema/index.ts";
import { firstFinalAnchorsCovering } from "../../db/queries/anchors.ts";
import type { AppContext } from "../platform/context.server.ts";
import { ServiceError } from "../platform/errors.server.ts";
import { decryptField } from "../participants/personal-data.server.ts";
import { tokenHash } from "../accounts/secret-tokens.server.ts";
import type { OpenedInvitation } from "./invitation-state.server.ts";
import { consentStatus, withdrawalsOf } from "./status.server.ts";

/** Seal status of a ledger entry: pending, or sealed in batch B (seq) and anchored on the ledgers that cover it. */
export async function entrySeal(ctx: AppContext, entryId: string) {
  const [e] = await ctx.db
    .select({
      status: ledgerEntries.status,
      seq: ledgerEntries.seq,
      batch: ledgerEntries.batchNo,
      at: ledgerEntries.at,
    })
    .from(ledgerEntries)
    .where(eq(ledgerEntries.id, entryId));
  if (!e) return { status: "missing" as const, seq: null, batch: null, anchoredOn: [] as string[], at: null };
  const anchoredOn = e.batch === null ? [] : (await firstFinalAnchorsCovering(ctx.db, e.batch)).map((a) => a.ledger);
  return { status: e.status, seq: e.seq, batch: e.batch, anchoredOn, at: e.at.toISOString() };
}

/**
 * Everything the participant's receipt shows (page and PDF): the signed document, each manifestation, seal
 * status.
 */
export async function consentReceipt(ctx: AppContext, o: OpenedInvitation, baseUrl: string) {
  const status = await consentStatus(ctx, o.participant.id, { withNames: true });
  const roots = new Set(
    status.signatures.filter((s) => s.primary && s.invitationId === o.invitation.id).map((s) => s.id),
  );
  const mine = status.signatures.filter(
    (s) => roots.has(s.id) || (s.countersigns !== null && roots.has(s.countersigns)),
  );
  const primary = mine.find((s) => s.primary);
  if (!primary) throw new ServiceError("conflict", "This invitation has not been signed yet.");
  const [row] = await ctx.db
    .select({ enc: consentSignatures.publicTokenEnc })
    .from(consentSignatures)
    .where(eq(consentSignatures.id, primary.id));
  const publicToken = row?.enc
    ? decryptField(ctx.env.dataKey, row.enc, `consent_signatures.public_token:${primary.id}`)
    : null;
  const seals = await Promise.all(mine.map(async (s) => ({ ...s, seal: await entrySeal(ctx, s.entryId) })));
  return {
    study: { code: o.study.code, title: o.study.title },
    subject: o.participant.subjectCode,
    document: {
      code: o.document.code,
      version: o.document.version,
      title: o.document.title,
      language: o.document.language,
      sha256: toHex(o.document.bodySha256),
      irbName: o.document.irbName,
      irbApprovedOn: o.document.irbApprovedOn,
      body: o.document.bodyMarkdown,
    },
    signatures: seals,
    withdrawals: status.withdrawals,
    state: status.state,
    summary: status.summary,
    verifyUrl: publicToken ? `${baseUrl}/c/${publicToken}` : null,
  };
}

/**
 * The public page behind the QR code: non-personal facts of one consent and its proof status, and the
 * participant's withdrawals (date, full or partial, what a partial one withdrew; never the reason or who recorded
 * it). `status` is `withdrawn` after a full withdrawal, `partially_withdrawn` after a partial one, else `given`.
 */
export async function publicConsent(ctx: AppContext, publicToken: string) {
  if (!/^cv_[A-Za-z0-9_-]{43}$/.test(publicToken)) return null;
  const [row] = await ctx.db
    .select({
      s: consentSignatures,
      doc: consentDocuments,
      study: studies,
      site: sites.code,
      subject: participants.subjectCode,
    })
    .from(consentSignatures)
    .innerJoin(consentDocuments, eq(consentDocuments.id, consentSignatures.documentId))
    .innerJoin(studies, eq(studies.id, consentSignatures.studyId))
    .innerJoin(participants, eq(participants.id, consentSignatures.participantId))
    .innerJoin(sites, eq(sites.id, participants.siteId))
    .where(eq(consentSignatures.publicTokenHash, tokenHash(ctx.crypto, publicToken)));
  if (!row) return null;
  const related = await ctx.db
    .select()
    .from(consentSignatures)
    .where(eq(consentSignatures.countersigns, row.s.id))
    .orderBy(asc(consentSignatures.signedAt));
  const all = [row.s, ...related];
  const signatures = await Promise.all(
    all.map(async (s) => ({
      role: s.signerRole,
      meaning: s.meaning,
      signedAt: s.signedAt.toISOString(),
      fromStaffDevice: s.fromStaffDevice,
      entryId: s.entryId,
      seal: await entrySeal(ctx, s.entryId),
    })),
  );
  const withdrawals = await Promise.all(
    (await withdrawalsOf(ctx, row.s.participantId)).map(async (w) => {
      const allows = w.allows as { followUp: boolean; optionalWithdrawn: string[] };
      return {
        scope: w.scope,
        at: w.withdrawnAt.toISOString(),
        followUp: allows.followUp,
        optionalWithdrawn: allows.optionalWithdrawn,
        entryId: w.entryId,
        seal: await entrySeal(ctx, w.entryId),
      };
    }),
  );
  const status: "given" | "partially_withdrawn" | "withdrawn" = withdrawals.some((w) => w.scope === "full")
    ? "withdrawn"
    : withdrawals.length
      ? "partially_withdrawn"
      : "given";
  return {
    study: row.study.code,
    status,
    withdrawals,
    document: {
      code: row.doc.code,
      version: row.doc.version,
      title: row.doc.title,
      sha256: toHex(row.doc.bodySha256),
      irbName: row.doc.irbName,
      irbApprovedOn: row.doc.irbApprovedOn,
    },
    signatures,
    primaryEntryId: row.s.entryId,
  };
}
