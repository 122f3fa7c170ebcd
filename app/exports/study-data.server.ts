/**
 * Everything a study export needs, read once: approved form definitions (every version), sites, participants
 * (pseudonymous), every record (with its row of a repeating form) with every version (values, missing-data codes with
 * reasons, calculated values, reason, who, when, and the ledger entry's seq and leaf hash that prove it), e-signatures,
 * consent signatures, paper consents (ADR 0021) and the users who acted. Shared by the ODM, FHIR, CSV and
 * evidence-package exports so they agree with each other.
 */
import { and, asc, eq, inArray } from "drizzle-orm";
import { toHex } from "../../anchoring/log/bytes.ts";
import {
  consentDocuments,
  consentSignatures,
  forms,
  ledgerEntries,
  participants,
  records,
  recordVersions,
  signatures,
  sites,
  studies,
  users,
} from "../../db/schema/index.ts";
import { parseFormDefinition, type FormDefinition } from "../../anchoring/forms/definition.ts";
import type { AppContext } from "../platform/context.server.ts";
import { consentStatus } from "../consent/status.server.ts";
import { choicesBySignature } from "../data-sharing/choices.server.ts";
import { protocolInForce } from "../study-documents/protocol-in-force.server.ts";

export interface ExportVersion {
  version: number;
  formVersion: number;
  /** The entered values of the shown fields (identifiers and free text in clear: exports are for authorized users). */
  values: Record<string, unknown>;
  /** Missing-data codes with their reasons, by field (empty before record.saved v3). */
  missing: Record<string, { code: string; reason: string }>;
  /** The shown calculated fields: a number, or null when an input is empty (empty before record.saved v3). */
  calculated: Record<string, number | null>;
  reason: string | null;
  actorId: string | null;
  /** The API token the version was written with (its name at the time), when it was. */
  actorToken?: { id: string; name: string } | null;
  at: string;
  entryId: string;
  seq: number | null;
  leafHash: string | null;
  payloadHash: string;
  /** The protocol version in force at the record's site when this version was entered (ADR 0048); null: none yet. */
  protocolVersion: string | null;
}

export interface ExportRecord {
  id: string;
  subject: string;
  site: string;
  form: string;
  visit: string;
  /** The row of a repeating form (1, 2, ...; 1 for any other form: ADR 0026). */
  instance: number;
  status: string;
  versions: ExportVersion[];
  signatures: {
    id: string;
    version: number;
    meaning: string;
    signerId: string;
    printedName: string;
    at: string;
    entryId: string;
    seq: number | null;
  }[];
}

export async function loadStudyExport(ctx: AppContext, studyCode: string) {
  const [study] = await ctx.db.select().from(studies).where(eq(studies.code, studyCode));
  if (!study) return null;
  const formRows = await ctx.db
    .select()
    .from(forms)
    .where(and(eq(forms.studyId, study.id), eq(forms.status, "approved")))
    .orderBy(asc(forms.code), asc(forms.version));
  const formDefs: FormDefinition[] = [];
  for (const f of formRows) {
    const p = parseFormDefinition(JSON.parse(f.definitionText));
    if (p.ok) formDefs.push(p.definition);
  }
  const siteRows = await ctx.db.select().from(sites).where(eq(sites.studyId, study.id)).orderBy(asc(sites.code));
  const people = await ctx.db
    .select({
      id: participants.id,
      subject: participants.subjectCode,
      site: sites.code,
      status: participants.status,
      enrolledAt: participants.enrolledAt,
      entryId: participants.entryId,
    })
    .from(participants)
    .innerJoin(sites, eq(sites.id, participants.siteId))
    .where(eq(participants.studyId, study.id))
    .orderBy(asc(participants.subjectCode));
  const recs = await ctx.db
    .select({ r: records, subject: participants.subjectCode, site: sites.code })
    .from(records)
    .innerJoin(participants, eq(participants.id, records.participantId))
    .innerJoin(sites, eq(sites.id, records.siteId))
    .where(eq(records.studyId, study.id))
    .orderBy(asc(participants.subjectCode), asc(records.formCode), asc(records.visit), asc(records.instance));
  const versions = await ctx.db
    .select({
      v: recordVersions,
      seq: ledgerEntries.seq,
      leaf: ledgerEntries.leafHash,
      payloadHash: ledgerEntries.payloadHash,
      at: ledgerEntries.at,
    })
    .from(recordVersions)
    .innerJoin(ledgerEntries, eq(ledgerEntries.id, recordVersions.entryId))
    .where(eq(recordVersions.studyId, study.id))
    .orderBy(asc(recordVersions.recordId), asc(recordVersions.version));
  const sigs = await ctx.db
    .select({ s: signatures, seq: ledgerEntries.seq })
    .from(signatures)
    .innerJoin(ledgerEntries, eq(ledgerEntries.id, signatures.entryId))
    .where(eq(signatures.studyId, study.id))
    .orderBy(asc(signatures.signedAt));
  const byRecord = new Map<string, ExportRecord>();
  const out: ExportRecord[] = recs.map(({ r, subject, site }) => {
    const x: ExportRecord = {
      id: r.id,
      subject,
      site,
      form: r.formCode,
      visit: r.visit,
      instance: r.instance,
      status: r.status,
      versions: [],
      signatures: [],
    };
    byRecord.set(r.id, x);
    return x;
  });
  const inForce = await protocolInForce(ctx.db, study.id);
  const siteOf = new Map(recs.map(({ r }) => [r.id, r.siteId]));
  for (const { v, seq, leaf, payloadHash, at } of versions) {
    byRecord.get(v.recordId)?.versions.push({
      version: v.version,
      formVersion: v.formVersion,
      values: JSON.parse(v.dataText) as Record<string, unknown>,
      missing: JSON.parse(v.missingText ?? "{}") as Record<string, { code: string; reason: string }>,
      calculated: JSON.parse(v.calculatedText ?? "{}") as Record<string, number | null>,
      reason: v.reason,
      actorId: v.actorUserId,
      actorToken: v.actorTokenId ? { id: v.actorTokenId, name: v.actorTokenName ?? "" } : null,
      at: at.toISOString(),
      entryId: v.entryId,
      seq,
      leafHash: leaf ? toHex(leaf) : null,
      payloadHash: toHex(payloadHash),
      protocolVersion: inForce(siteOf.get(v.recordId) ?? "", at)?.version ?? null,
    });
  }
  for (const { s, seq } of sigs) {
    byRecord.get(s.recordId)?.signatures.push({
      id: s.id,
      version: s.version,
      meaning: s.meaning,
      signerId: s.signerId,
      printedName: s.printedName,
      at: s.signedAt.toISOString(),
      entryId: s.entryId,
      seq,
    });
  }
  const actorIds = [
    ...new Set(
      [...versions.map((v) => v.v.actorUserId), ...sigs.map((s) => s.s.signerId)].filter((x): x is string => !!x),
    ),
  ];
  const actors = actorIds.length
    ? await ctx.db.select({ id: users.id, fullName: users.fullName }).from(users).where(inArray(users.id, actorIds))
    : [];
  const docs = await ctx.db
    .select()
    .from(consentDocuments)
    .where(eq(consentDocuments.studyId, study.id))
    .orderBy(asc(consentDocuments.code), asc(consentDocuments.approvedAt));
  const consents = [];
  for (const p of people) {
    const st = await consentStatus(ctx, p.id);
    if (st.signatures.length || st.withdrawals.length || st.paper.length) consents.push({ subject: p.subject, ...st });
  }
  const consentEntries = new Map<string, { seq: number | null; leafHash: string | null }>();
  /** The member of staff behind each staff consent signature (countersignature), by signature id. */
  const consentSigners = new Map<string, { userId: string; fullName: string }>();
  const cs = await ctx.db
    .select({
      id: consentSignatures.entryId,
      signature: consentSignatures.id,
      seq: ledgerEntries.seq,
      leaf: ledgerEntries.leafHash,
      userId: users.id,
      fullName: users.fullName,
    })
    .from(consentSignatures)
    .innerJoin(ledgerEntries, eq(ledgerEntries.id, consentSignatures.entryId))
    .leftJoin(users, eq(users.id, consentSignatures.userId))
    .where(eq(consentSignatures.studyId, study.id));
  for (const c of cs) {
    consentEntries.set(c.id, { seq: c.seq, leafHash: c.leaf ? toHex(c.leaf) : null });
    if (c.userId && c.fullName !== null) consentSigners.set(c.signature, { userId: c.userId, fullName: c.fullName });
  }
  // Paper consents: the ledger entries of each scan and attestation, and the names of who uploaded and attested.
  const paperEntryIds = consents.flatMap((c) =>
    c.paper.flatMap((x) => (x.attestEntryId ? [x.entryId, x.attestEntryId] : [x.entryId])),
  );
  const paperEntries = new Map<string, { seq: number | null; leafHash: string | null }>();
  if (paperEntryIds.length)
    for (const e of await ctx.db
      .select({ id: ledgerEntries.id, seq: ledgerEntries.seq, leaf: ledgerEntries.leafHash })
      .from(ledgerEntries)
      .where(inArray(ledgerEntries.id, paperEntryIds)))
      paperEntries.set(e.id, { seq: e.seq, leafHash: e.leaf ? toHex(e.leaf) : null });
  const paperStaffIds = [
    ...new Set(consents.flatMap((c) => c.paper.flatMap((x) => [x.uploadedBy, x.attestedBy]))),
  ].filter((x): x is string => !!x);
  /** Full names of the staff who uploaded or attested a paper consent, by user id. */
  const paperStaff = new Map(
    paperStaffIds.length
      ? (
          await ctx.db
            .select({ id: users.id, fullName: users.fullName })
            .from(users)
            .where(inArray(users.id, paperStaffIds))
        ).map((u) => [u.id, u.fullName])
      : [],
  );
  return {
    study: {
      id: study.id,
      code: study.code,
      title: study.title,
      status: study.status,
      createdAt: study.createdAt.toISOString(),
    },
    forms: formDefs,
    sites: siteRows.map((s) => ({ code: s.code, name: s.name })),
    participants: people.map((p) => ({ ...p, enrolledAt: p.enrolledAt.toISOString() })),
    records: out,
    users: new Map(actors.map((a) => [a.id, a.fullName])),
    documents: docs.map((d) => ({
      id: d.id,
      code: d.code,
      version: d.version,
      title: d.title,
      language: d.language,
      sha256: toHex(d.bodySha256),
      /** The text as approved and signed (its UTF-8 bytes are what `sha256` is of). */
      bodyMarkdown: d.bodyMarkdown,
      irbName: d.irbName,
      irbApprovedOn: d.irbApprovedOn,
      status: d.status,
    })),
    consents,
    /** Each signature's optional items with their choice history and purposes (ADR 0066, 0072), by signature id. */
    choicesBySignature: await choicesBySignature(ctx, study.id),
    consentEntries,
    consentSigners,
    paperEntries,
    paperStaff,
  };
}

export type StudyExport = NonNullable<Awaited<ReturnType<typeof loadStudyExport>>>;
