/**
 * Does a record version still match its sealed entry? The cheap check of a `record.saved` entry against its data
 * rows, done wherever a value is shown or exported: the entry's stored payload with what the rows hold put back in
 * (record, version, subject, form, form version, visit, reason or its salted hash, and values; from version 3 also
 * the identifier and free-text values' salted hashes, the calculated values, the missing-data codes with their
 * reasons' salted hashes, the row of a repeating form and the form version's SHA-256; the salt and every other field
 * as stored), in canonical JSON, must hash to the entry's payload hash. A value altered behind the log
 * (a superuser with the append-only triggers off) fails it, and so does an altered payload text. It is not the
 * integrity audit (app/integrity-audit/): that also checks each entry against its batch, the checkpoints and the
 * anchors.
 */
import { and, asc, eq, inArray } from "drizzle-orm";
import { canonicalize } from "../../anchoring/log/canonical.ts";
import { toHex, utf8 } from "../../anchoring/log/bytes.ts";
import type { Crypto } from "../../anchoring/log/crypto.ts";
import { holdsTextHash, textAsSealed } from "../../anchoring/log/text-hash.ts";
import { hashedFieldsOf, sealRecordValues, type RecordVersionValues } from "../../anchoring/log/record-values.ts";
import { forms, ledgerEntries, participants, records, recordVersions } from "../../db/schema/index.ts";
import type { AppContext } from "../platform/context.server.ts";
import { ServiceError } from "../platform/errors.server.ts";
import { MISMATCH_TEXT } from "../log/seal-text.ts";
import { storedDefinition } from "./stored-definition.server.ts";
import { sealedSource, type ImportSource } from "../data-import/import-source.ts";

/** A record version's rows and its entry's stored payload, as the check needs them. */
export interface SealedVersion {
  recordId: string;
  version: number;
  formVersion: number;
  dataText: string;
  /** Missing-data codes with reasons and calculated values (JCS text; null on versions before v3 payloads). */
  missingText?: string | null;
  calculatedText?: string | null;
  reason: string | null;
  /** An imported version's source (record.saved v4, ADR 0037): checked when given (null: a version entered here). */
  sourceText?: string | null;
  /** From the record's and participant's rows; left out, the stored payload's are kept. */
  subject?: string;
  form?: string;
  visit?: string;
  instance?: number;
  /** The form version's row: its definition classes the fields; its SHA-256 is the payload's `formSha256`. */
  formRow?: { id: string; code: string; version: number; definitionText: string; definitionSha256?: Uint8Array };
  payloadText: string;
  payloadHash: Uint8Array | string;
}

const hexOf = (v: Uint8Array | string) =>
  typeof v === "string" ? (v.startsWith("\\x") ? v.slice(2) : v).toLowerCase() : toHex(v);

function parseObject(text: string | null | undefined): Record<string, unknown> {
  const v = JSON.parse(text ?? "{}") as unknown;
  if (!v || typeof v !== "object" || Array.isArray(v)) throw new Error("not an object");
  return v as Record<string, unknown>;
}

/**
 * What the version's rows say each row-derived field of its payload must be, in the stored payload's own shape
 * (version 1, 2 or 3). Throws when a row cannot be read (unparsable text, no form definition for a v3 payload).
 */
export function rowFieldsAsSealed(crypto: Crypto, stored: Record<string, unknown>, v: SealedVersion) {
  const values = parseObject(v.dataText);
  // The reason as the payload holds it: in clear (version 1) or as its salted hash (version 2 on, ADR 0020).
  const reasonField = holdsTextHash(stored, "reason") ? "reasonHash" : "reason";
  const fromRows: Record<string, unknown> = {
    record: v.recordId,
    version: v.version,
    formVersion: v.formVersion,
    [reasonField]: textAsSealed(crypto, stored, "reason", v.reason),
    values,
  };
  if (v.subject !== undefined) fromRows.subject = v.subject;
  if (v.form !== undefined) fromRows.form = v.form;
  if (v.visit !== undefined) fromRows.visit = v.visit;
  if (stored.v === 3 || stored.v === 4) {
    // Version 3 (ADR 0025, 0026): values by field class, calculations, missing-data codes, the row, the form's hash.
    if (!v.formRow || typeof stored.salt !== "string") throw new Error("no form definition");
    const def = storedDefinition(v.formRow);
    Object.assign(
      fromRows,
      sealRecordValues(crypto, stored.salt, hashedFieldsOf(def), {
        values,
        missing: parseObject(v.missingText) as RecordVersionValues["missing"],
        calculated: parseObject(v.calculatedText) as RecordVersionValues["calculated"],
      }),
    );
    if (v.formRow.definitionSha256 !== undefined) fromRows.formSha256 = toHex(v.formRow.definitionSha256);
    if (v.instance !== undefined) fromRows.instance = v.instance;
    if (v.sourceText !== undefined && (stored.v === 4 || v.sourceText !== null))
      fromRows.source =
        v.sourceText === null
          ? "(no source on the version's row)"
          : sealedSource(crypto, stored.salt, parseObject(v.sourceText) as unknown as ImportSource);
  } else {
    // Never so before v3: the field is named, its text (a reason may be free text) is not put in.
    if (v.missingText) fromRows.missing = "(missing-data codes on a version sealed before v3)";
    if (v.calculatedText) fromRows.calculated = "(calculated values on a version sealed before v3)";
  }
  return fromRows;
}

/** True when the version's rows, put into its entry's stored payload, hash to the entry's payload hash. */
export function matchesSeal(crypto: Crypto, v: SealedVersion): boolean {
  try {
    const stored = parseObject(v.payloadText);
    const text = canonicalize({ ...stored, ...rowFieldsAsSealed(crypto, stored, v) });
    return toHex(crypto.sha256(utf8(text))) === hexOf(v.payloadHash);
  } catch {
    return false;
  }
}

/** The columns of a form version the check needs (select them as `formRow`). */
export const sealFormColumns = {
  id: forms.id,
  code: forms.code,
  version: forms.version,
  definitionText: forms.definitionText,
  definitionSha256: forms.definitionSha256,
};

export interface SealMismatch {
  record: string;
  subject: string;
  form: string;
  visit: string;
  version: number;
}

/** "record ID (subject S, form F, visit V, version N) does not match its sealed entry" */
export function mismatchText(m: SealMismatch): string {
  const where = `subject ${m.subject}, form ${m.form}, visit ${m.visit}, version ${m.version}`;
  return `record ${m.record} (${where}) ${MISMATCH_TEXT}`;
}

/** Every version of a study's records (or of the given records only) that does not match its sealed entry. */
export async function studySealMismatches(
  ctx: AppContext,
  studyId: string,
  recordIds?: string[],
): Promise<SealMismatch[]> {
  if (recordIds && recordIds.length === 0) return [];
  const rows = await ctx.db
    .select({
      recordId: recordVersions.recordId,
      version: recordVersions.version,
      formVersion: recordVersions.formVersion,
      dataText: recordVersions.dataText,
      missingText: recordVersions.missingText,
      calculatedText: recordVersions.calculatedText,
      reason: recordVersions.reason,
      subject: participants.subjectCode,
      form: records.formCode,
      visit: records.visit,
      instance: records.instance,
      formRow: sealFormColumns,
      payloadText: ledgerEntries.payloadText,
      payloadHash: ledgerEntries.payloadHash,
    })
    .from(recordVersions)
    .innerJoin(ledgerEntries, eq(ledgerEntries.id, recordVersions.entryId))
    .innerJoin(records, eq(records.id, recordVersions.recordId))
    .innerJoin(participants, eq(participants.id, records.participantId))
    .innerJoin(forms, eq(forms.id, recordVersions.formId))
    .where(
      recordIds
        ? and(eq(recordVersions.studyId, studyId), inArray(recordVersions.recordId, recordIds))
        : eq(recordVersions.studyId, studyId),
    )
    .orderBy(asc(participants.subjectCode), asc(records.formCode), asc(records.visit), asc(recordVersions.version));
  return rows
    .filter((r) => !matchesSeal(ctx.crypto, r))
    .map((r) => ({ record: r.recordId, subject: r.subject, form: r.form, visit: r.visit, version: r.version }));
}

/** Refuse (409, naming the first record) when any value of the study does not match its sealed entry. */
export async function assertStudyMatchesSeals(ctx: AppContext, study: { id: string; code: string }) {
  const bad = await studySealMismatches(ctx, study.id);
  if (bad.length === 0) return;
  const more = bad.length > 1 ? ` (and ${bad.length - 1} more)` : "";
  throw new ServiceError(
    "conflict",
    `${study.code}: ${mismatchText(bad[0])}${more}; nothing was exported (run trialseal audit --study ${study.code})`,
  );
}
