/** Read-only queries for the sponsor's and regulator's study review. */
import { and, asc, desc, eq, gte, lt, sql } from "drizzle-orm";
import type { DbOrTx } from "../client.ts";
import {
  anchors,
  checkpoints,
  ledgerEntries,
  participants,
  records,
  recordVersions,
  sites,
  consentDocuments,
  consentSignatures,
} from "../schema/index.ts";

/** A page of a study's ledger entries, newest first (by write time; sealed ones carry seq and batch). */
export async function studyEntries(db: DbOrTx, studyId: string, opts: { limit: number; before?: Date }) {
  return db
    .select({
      id: ledgerEntries.id,
      kind: ledgerEntries.kind,
      status: ledgerEntries.status,
      seq: ledgerEntries.seq,
      studySeq: ledgerEntries.studySeq,
      batch: ledgerEntries.batchNo,
      at: ledgerEntries.at,
    })
    .from(ledgerEntries)
    .where(and(eq(ledgerEntries.studyId, studyId), opts.before ? lt(ledgerEntries.at, opts.before) : undefined))
    .orderBy(desc(ledgerEntries.at), desc(ledgerEntries.id))
    .limit(opts.limit);
}

/** The latest checkpoints (newest first) with each ledger's anchor status, for the timeline. */
export async function checkpointTimeline(db: DbOrTx, limit: number) {
  const cps = await db
    .select({ treeSize: checkpoints.treeSize, createdAt: checkpoints.createdAt })
    .from(checkpoints)
    .orderBy(desc(checkpoints.treeSize))
    .limit(limit);
  if (cps.length === 0) return [];
  const min = cps[cps.length - 1].treeSize;
  const an = await db
    .select({
      treeSize: anchors.treeSize,
      ledger: anchors.ledger,
      status: anchors.status,
      anchoredAt: anchors.anchoredAt,
    })
    .from(anchors)
    .where(gte(anchors.treeSize, min))
    .orderBy(asc(anchors.treeSize));
  return cps.reverse().map((c) => ({
    ...c,
    anchors: an
      .filter((a) => a.treeSize === c.treeSize)
      .map((a) => ({ ledger: a.ledger, status: a.status, anchoredAt: a.anchoredAt })),
  }));
}

/** Records of a study with their version count, current version's entry and its seal state. */
export async function studyRecords(db: DbOrTx, studyId: string, limit: number) {
  return db
    .select({
      id: records.id,
      subject: participants.subjectCode,
      site: sites.code,
      form: records.formCode,
      visit: records.visit,
      version: records.currentVersion,
      status: records.status,
      entryId: recordVersions.entryId,
      entryStatus: ledgerEntries.status,
      seq: ledgerEntries.seq,
      batch: ledgerEntries.batchNo,
    })
    .from(records)
    .innerJoin(participants, eq(participants.id, records.participantId))
    .innerJoin(sites, eq(sites.id, records.siteId))
    .innerJoin(
      recordVersions,
      and(eq(recordVersions.recordId, records.id), eq(recordVersions.version, records.currentVersion)),
    )
    .innerJoin(ledgerEntries, eq(ledgerEntries.id, recordVersions.entryId))
    .where(eq(records.studyId, studyId))
    .orderBy(asc(participants.subjectCode), asc(records.formCode), asc(records.visit))
    .limit(limit);
}

/** Per consent document version: signatures by role. */
export async function consentCountsByVersion(db: DbOrTx, studyId: string) {
  return db
    .select({
      code: consentDocuments.code,
      version: consentDocuments.version,
      status: consentDocuments.status,
      approvedAt: consentDocuments.approvedAt,
      role: consentSignatures.signerRole,
      n: sql<number>`count(${consentSignatures.id})::int`,
    })
    .from(consentDocuments)
    .leftJoin(consentSignatures, eq(consentSignatures.documentId, consentDocuments.id))
    .where(eq(consentDocuments.studyId, studyId))
    .groupBy(
      consentDocuments.code,
      consentDocuments.version,
      consentDocuments.status,
      consentDocuments.approvedAt,
      consentSignatures.signerRole,
    )
    .orderBy(asc(consentDocuments.code), asc(consentDocuments.approvedAt));
}
