/**
 * The bulk sealed write of an import (issue 18, ADR 0037). Given the rows a reader produced (import-rows.ts), it
 * resolves subjects, forms (latest approved version), records (new, or a new version of an existing one with the
 * reason "Imported from <file>"), locks and the consent gate, reporting every problem with its row; then, when there
 * is none, writes ALL rows in ONE transaction: each a record.saved v4 version built from the same value classing as
 * entry (record-values.ts: values / hashed / calculated / missing), its records and record_versions rows, and the
 * ledger entries, all in multi-row INSERTs prepared in memory (no per-row round trip); then import.completed and
 * the importer's audit event. `writeSealedVersions` is the reusable bulk path (issue 19 shares it).
 */
import { randomUUID } from "node:crypto";
import { and, desc, eq, inArray, isNull, sql } from "drizzle-orm";
import { canonicalize } from "../../anchoring/log/canonical.ts";
import { toHex } from "../../anchoring/log/bytes.ts";
import { buildEntry, type BuiltEntry } from "../../anchoring/log/entry.ts";
import { hashedFieldsOf, sealRecordValues } from "../../anchoring/log/record-values.ts";
import { saltedTextHash } from "../../anchoring/log/text-hash.ts";
import { checkEntry, type CheckedEntry } from "../../anchoring/forms/check-entry.ts";
import type { FormDefinition } from "../../anchoring/forms/definition.ts";
import type { DbOrTx } from "../../db/client.ts";
import { insertPendingEntries } from "../../db/queries/log.ts";
import { forms, ledgerEntries, locks, participants, records, recordVersions, sites } from "../../db/schema/index.ts";
import { importJobs } from "../../db/schema/study-operations.ts";
import type { AppContext } from "../platform/context.server.ts";
import { can, type Principal } from "../platform/permissions.server.ts";
import { auditActor, auditDetail, payloadActor, rowTokenColumns } from "../platform/attribution.ts";
import { ServiceError } from "../platform/errors.server.ts";
import { audit } from "../audit-trail/record-event.server.ts";
import { storedDefinition } from "../records/stored-definition.server.ts";
import { todayIn } from "../records/records.server.ts";
import { consentGateReason } from "../consent/consent-gate.server.ts";
import { consentStatus, assertConsentAllowsNewData } from "../consent/status.server.ts";
import { studySettingsOf } from "../studies/settings.server.ts";
import type { ImportProblem, ImportRow, ParsedImport } from "./import-rows.ts";
import { sealedSource, sourceText, type ImportSource } from "./import-source.ts";

/** Rows per multi-row INSERT. */
const CHUNK = 500;

export interface ImportJobRef {
  id: string;
  fileName: string;
  fileSha256: Uint8Array;
  fileBytes: number;
  format: "csv" | "odm";
}

export interface ApprovedForm {
  row: typeof forms.$inferSelect;
  def: FormDefinition;
}

/** The latest approved version of each form of a study, by code. */
export async function approvedForms(db: DbOrTx, studyId: string): Promise<Map<string, ApprovedForm>> {
  const rows = await db
    .select()
    .from(forms)
    .where(and(eq(forms.studyId, studyId), eq(forms.status, "approved")))
    .orderBy(desc(forms.version));
  const out = new Map<string, ApprovedForm>();
  for (const r of rows) if (!out.has(r.code)) out.set(r.code, { row: r, def: storedDefinition(r) });
  return out;
}

/** One version to write: resolved, checked, ready to be built. */
export interface PlannedVersion {
  row: ImportRow;
  participant: { id: string; siteId: string; subjectCode: string; status: string };
  form: ApprovedForm;
  visit: string;
  instance: number;
  /** Existing record (a new version of it) or a new one (id generated here). */
  recordId: string;
  isNewRecord: boolean;
  version: number;
  /** The previous version's payload hash (hex), null for version 1. */
  prev: string | null;
  reason: string | null;
  checked: CheckedEntry;
}

/**
 * What the bulk path (`buildVersions`, `writeSealedVersions`) needs of a version: an import's planned row without
 * its file row (the batch API's items, app/records/batch.server.ts, have none).
 */
export type SealedPlan = Omit<PlannedVersion, "row">;

export interface ResolveResult {
  plan: PlannedVersion[];
  problems: ImportProblem[];
}

/**
 * Resolve every row against the database (subjects, forms, visits, records, locks, consent) and check its values as
 * entry checks them; every problem with its row. Reads only. With a principal, a subject at a site the importer
 * may not import to is a problem of its row (a site-scoped data manager imports into their sites only).
 */
export async function resolveImport(
  ctx: AppContext,
  db: DbOrTx,
  study: { id: string; code: string },
  parsed: ParsedImport,
  fileName: string,
  principal?: Principal,
): Promise<ResolveResult> {
  const problems: ImportProblem[] = [];
  const subjects = new Map(
    (
      await db
        .select({
          id: participants.id,
          siteId: participants.siteId,
          siteCode: sites.code,
          subjectCode: participants.subjectCode,
          status: participants.status,
        })
        .from(participants)
        .innerJoin(sites, eq(sites.id, participants.siteId))
        .where(eq(participants.studyId, study.id))
    ).map((p) => [p.subjectCode.toUpperCase(), p]),
  );
  const formsByCode = await approvedForms(db, study.id);
  const existing = new Map<string, { id: string; version: number; prev: string }>();
  const cur = await db
    .select({
      id: records.id,
      participantId: records.participantId,
      formCode: records.formCode,
      visit: records.visit,
      instance: records.instance,
      version: records.currentVersion,
      hash: ledgerEntries.payloadHash,
    })
    .from(records)
    .innerJoin(
      recordVersions,
      and(eq(recordVersions.recordId, records.id), eq(recordVersions.version, records.currentVersion)),
    )
    .innerJoin(ledgerEntries, eq(ledgerEntries.id, recordVersions.entryId))
    .where(eq(records.studyId, study.id));
  for (const r of cur)
    existing.set(`${r.participantId}|${r.formCode}|${r.visit}|${r.instance}`, {
      id: r.id,
      version: r.version,
      prev: toHex(r.hash),
    });
  const active = await db
    .select({ scope: locks.scope, targetId: locks.targetId, reason: locks.reason })
    .from(locks)
    .where(and(eq(locks.studyId, study.id), isNull(locks.releasedAt)));
  const studyLock = active.find((l) => l.scope === "study");
  const lockedIds = new Map(active.filter((l) => l.targetId).map((l) => [l.targetId as string, l]));
  const settings = await studySettingsOf(ctx, study.id, db);
  const consentChecked = new Map<string, { newData: string | null; gate: string | null }>();
  const consentOf = async (p: { id: string; subjectCode: string }) => {
    let c = consentChecked.get(p.id);
    if (!c) {
      let newData: string | null = null;
      try {
        await assertConsentAllowsNewData(ctx, p.id, db);
      } catch (err) {
        if (!(err instanceof ServiceError)) throw err;
        newData = err.message;
      }
      const gate = consentGateReason(p.subjectCode, await consentStatus(ctx, p.id, { db }));
      c = { newData, gate };
      consentChecked.set(p.id, c);
    }
    return c;
  };
  const today = todayIn();
  const reason = `Imported from ${fileName}`;
  const plan: PlannedVersion[] = [];
  for (const row of parsed.rows) {
    const before = problems.length;
    const whole = (message: string, column: string | null = null) => problems.push({ row: row.row, column, message });
    const p = subjects.get(row.subject.toUpperCase());
    if (!p) whole(`no subject ${row.subject} in ${study.code}`, "subject");
    const form = formsByCode.get(row.form.toUpperCase());
    if (!form) whole(`form ${row.form} has no approved version in ${study.code}`);
    const visit = row.visit.toUpperCase();
    if (form && !form.def.visits.includes(visit))
      whole(`visit ${row.visit} is not a visit of form ${form.def.code} (${form.def.visits.join(", ")})`, "visit");
    if (p && principal && !can(principal, "records.import", { studyId: study.id, siteId: p.siteId }))
      whole(`subject ${p.subjectCode} is at site ${p.siteCode}, where you may not import`, "subject");
    if (!p || !form || problems.length > before) continue;
    const c = checkEntry(
      form.def,
      {
        values: row.values,
        missing: row.missing as never,
        confirmed: form.def.fields.map((f) => f.name),
      },
      { today },
    );
    for (const pr of c.problems) whole(pr.message, pr.field ?? null);
    const key = `${p.id}|${form.def.code}|${visit}|${row.instance}`;
    const ex = existing.get(key);
    const recordId = ex?.id ?? randomUUID();
    if (studyLock) whole(`the study is locked (${studyLock.reason}); nothing can be imported until it is unlocked`);
    else if (lockedIds.has(p.id))
      whole(`subject ${p.subjectCode}'s casebook is locked (${lockedIds.get(p.id)?.reason})`);
    else if (ex && lockedIds.has(ex.id)) whole(`the record of ${p.subjectCode} ${form.def.code} ${visit} is locked`);
    const consent = await consentOf(p);
    if (!ex && consent.newData) whole(consent.newData, "subject");
    else if (!ex && consent.gate && !settings.formsBeforeConsent.includes(form.def.code))
      whole(`${consent.gate}: no CRF data may be recorded before a complete consent`, "subject");
    if (problems.length > before) continue;
    const version = (ex?.version ?? 0) + 1;
    plan.push({
      row,
      participant: { id: p.id, siteId: p.siteId, subjectCode: p.subjectCode, status: p.status },
      form,
      visit,
      instance: row.instance,
      recordId,
      isNewRecord: !ex,
      version,
      prev: ex?.prev ?? null,
      reason: ex ? reason : null,
      checked: c,
    });
    // A later row of the same file for the same record is the next version of it.
    existing.set(key, { id: recordId, version, prev: "" });
  }
  return { plan, problems };
}

export interface BulkVersion<P extends SealedPlan = PlannedVersion> {
  entry: BuiltEntry<"record.saved">;
  entryId: string;
  plan: P;
  sourceText: string | null;
}

/**
 * Build each planned version's record.saved entry in memory (v4 with a `source` when given, else v3), chaining
 * successive versions of one record in the file by `prev`. CPU only; `onProgress` after each `CHUNK` rows.
 */
export async function buildVersions<P extends SealedPlan>(
  ctx: AppContext,
  principal: Principal,
  plan: P[],
  source: ((p: P) => ImportSource) | null,
  onProgress?: (done: number) => void,
): Promise<BulkVersion<P>[]> {
  const out: BulkVersion<P>[] = [];
  const lastHash = new Map<string, string>();
  const actor = payloadActor(principal);
  for (let i = 0; i < plan.length; i++) {
    const x = plan[i];
    const def = x.form.def;
    const src = source?.(x) ?? null;
    const prev = x.prev === "" || x.prev === null ? (lastHash.get(x.recordId) ?? x.prev) : x.prev;
    const entry = buildEntry(
      ctx.crypto,
      "record.saved",
      ((salt: string) => ({
        record: x.recordId,
        version: x.version,
        subject: x.participant.subjectCode,
        form: def.code,
        formVersion: x.form.row.version,
        formSha256: toHex(x.form.row.definitionSha256),
        visit: x.visit,
        instance: x.instance,
        ...actor,
        reasonHash: x.reason === null ? null : saltedTextHash(ctx.crypto, salt, x.reason),
        ...sealRecordValues(ctx.crypto, salt, hashedFieldsOf(def), x.checked),
        prev: prev === "" ? null : prev,
        ...(src ? { source: sealedSource(ctx.crypto, salt, src) } : {}),
      })) as never,
      undefined,
      src ? 4 : 3,
    ) as BuiltEntry<"record.saved">;
    lastHash.set(x.recordId, toHex(entry.payloadHash));
    out.push({
      entry,
      entryId: randomUUID(),
      plan: x,
      sourceText: src ? sourceText(src) : null,
    });
    if ((i + 1) % CHUNK === 0) {
      onProgress?.(i + 1);
      await new Promise((r) => setImmediate(r));
    }
  }
  onProgress?.(plan.length);
  return out;
}

/**
 * Write built versions in the caller's transaction: ledger entries, new records, versions, current versions, in
 * multi-row INSERTs; `onProgress` after each chunk. Returns the number of values (fields) written.
 */
export async function writeSealedVersions(
  tx: DbOrTx,
  principal: Principal,
  study: { id: string; code: string },
  built: BulkVersion<SealedPlan>[],
  onProgress?: (done: number) => void,
): Promise<{ records: number; values: number }> {
  await insertPendingEntries(
    tx,
    built.map((b) => ({
      id: b.entryId,
      studyId: study.id,
      studyCode: study.code,
      kind: "record.saved",
      payloadText: b.entry.payloadText,
      payloadHash: b.entry.payloadHash,
    })),
    CHUNK * 2,
  );
  const fresh = new Map<string, SealedPlan>();
  for (const b of built) if (b.plan.isNewRecord && !fresh.has(b.plan.recordId)) fresh.set(b.plan.recordId, b.plan);
  const newRecords = [...fresh.values()];
  const lastVersion = new Map<string, number>();
  for (const b of built) lastVersion.set(b.plan.recordId, b.plan.version);
  for (let i = 0; i < newRecords.length; i += CHUNK)
    await tx.insert(records).values(
      newRecords.slice(i, i + CHUNK).map((x) => ({
        id: x.recordId,
        studyId: study.id,
        siteId: x.participant.siteId,
        participantId: x.participant.id,
        formCode: x.form.def.code,
        visit: x.visit,
        instance: x.instance,
        currentVersion: lastVersion.get(x.recordId) ?? 1,
      })),
    );
  const tokenCols = rowTokenColumns(principal);
  let values = 0;
  for (let i = 0; i < built.length; i += CHUNK) {
    const part = built.slice(i, i + CHUNK);
    await tx.insert(recordVersions).values(
      part.map((b) => {
        const c = b.plan.checked;
        values += Object.keys(c.values).length + Object.keys(c.missing).length;
        return {
          recordId: b.plan.recordId,
          studyId: study.id,
          version: b.plan.version,
          formId: b.plan.form.row.id,
          formVersion: b.plan.form.row.version,
          dataText: canonicalize(c.values),
          missingText: canonicalize(c.missing),
          calculatedText: canonicalize(c.calculated),
          reason: b.plan.reason,
          sourceText: b.sourceText,
          actorUserId: principal.userId,
          ...tokenCols,
          entryId: b.entryId,
        };
      }),
    );
    onProgress?.(i + part.length);
  }
  const updated = [...lastVersion.entries()].filter(([id]) => !fresh.has(id));
  for (let i = 0; i < updated.length; i += CHUNK) {
    const part = updated.slice(i, i + CHUNK);
    const rows = sql.join(
      part.map(([id, v]) => sql`(${id}::uuid, ${v}::int)`),
      sql`, `,
    );
    await tx.execute(
      sql`UPDATE records r SET current_version = u.v, updated_at = now() FROM (VALUES ${rows}) AS u(id, v)
          WHERE r.id = u.id`,
    );
  }
  return { records: lastVersion.size, values };
}

export interface ImportOutcome {
  problems: ImportProblem[];
  records: number;
  values: number;
  versions: number;
  entryId: string | null;
}

/**
 * Import a file's rows for a job: every problem (reader's and resolution's) or, when there is none and it is not a
 * dry run, everything written in one transaction. `onProgress(done, total)` as rows are built and written.
 */
export async function writeImport(
  ctx: AppContext,
  principal: Principal,
  study: { id: string; code: string },
  job: ImportJobRef,
  parsed: ParsedImport,
  opts: {
    dryRun: boolean;
    onProgress?: (done: number, total: number) => void;
    /** Run after the versions are built, before the write's transaction (tests: a change made meanwhile). */
    beforeWrite?: () => Promise<void>;
  },
): Promise<ImportOutcome> {
  const { plan, problems } = await resolveImport(ctx, ctx.db, study, parsed, job.fileName, principal);
  const all = [...parsed.problems, ...problems].sort((a, b) => a.row - b.row);
  const none = { records: 0, values: 0, versions: 0, entryId: null };
  if (all.length > 0 || opts.dryRun) return { problems: all, ...none };
  const total = plan.length * 2;
  const fileSha256 = toHex(job.fileSha256);
  const built = await buildVersions(
    ctx,
    principal,
    plan,
    (p) => ({ job: job.id, fileSha256, row: p.row.row, claims: p.row.claims }),
    (d) => opts.onProgress?.(d, total),
  );
  await opts.beforeWrite?.();
  return ctx.db.transaction(async (tx) => {
    const ids = [...new Set(plan.map((p) => p.participant.id))];
    await tx.execute(sql`SELECT 1 FROM studies WHERE id = ${study.id} FOR SHARE`);
    const now = new Map<string, string>();
    for (let i = 0; i < ids.length; i += CHUNK)
      for (const r of await tx
        .select({ id: participants.id, status: participants.status })
        .from(participants)
        .where(inArray(participants.id, ids.slice(i, i + CHUNK)))
        .for("share"))
        now.set(r.id, r.status);
    await assertNothingChanged(tx, plan, now);
    const [lock] = await tx
      .select({ id: locks.id })
      .from(locks)
      .where(and(eq(locks.studyId, study.id), isNull(locks.releasedAt)))
      .limit(1);
    if (lock) {
      // A lock set since the check: check again row by row, inside the transaction.
      const again = await resolveImport(ctx, tx, study, parsed, job.fileName, principal);
      if (again.problems.length) throw new ImportProblemsError(again.problems);
    }
    const r = await writeSealedVersions(tx, principal, study, built, (d) => opts.onProgress?.(plan.length + d, total));
    const completed = buildEntry(ctx.crypto, "import.completed", (salt) => ({
      job: job.id,
      format: job.format,
      fileNameHash: saltedTextHash(ctx.crypto, salt, job.fileName),
      sha256: fileSha256,
      bytes: job.fileBytes,
      records: r.records,
      values: r.values,
      ...payloadActor(principal),
    }));
    const entryId = randomUUID();
    await insertPendingEntries(tx, [
      {
        id: entryId,
        studyId: study.id,
        studyCode: study.code,
        kind: "import.completed",
        payloadText: completed.payloadText,
        payloadHash: completed.payloadHash,
      },
    ]);
    await tx.update(importJobs).set({ entryId, records: r.records, values: r.values }).where(eq(importJobs.id, job.id));
    await audit(tx, {
      action: "data.import",
      ...auditActor(principal),
      studyId: study.id,
      detail: auditDetail(principal, {
        job: job.id,
        format: job.format,
        fileSha256,
        bytes: job.fileBytes,
        versions: built.length,
        records: r.records,
        values: r.values,
        entry: entryId,
      }),
    });
    return { problems: [], records: r.records, values: r.values, versions: built.length, entryId };
  });
}

/**
 * Inside the write's transaction (participants held FOR SHARE): every existing record is still at the version the
 * import resolved, no new record took the place of one the import creates, and no subject was fully withdrawn since.
 * Otherwise the job fails with a sentence (nothing written) rather than a database error.
 */
async function assertNothingChanged(tx: DbOrTx, plan: PlannedVersion[], status: Map<string, string>) {
  const stale = (what: string) => {
    throw new ServiceError(
      "conflict",
      `${what} while the import was being prepared; nothing was imported: run it again`,
    );
  };
  for (const x of plan)
    if (status.get(x.participant.id) === "withdrawn" && x.participant.status !== "withdrawn")
      stale(`subject ${x.participant.subjectCode} was withdrawn from the study`);
  const first = new Map<string, PlannedVersion>();
  for (const x of plan) if (!first.has(x.recordId)) first.set(x.recordId, x);
  const ids = [...new Set(plan.map((p) => p.participant.id))];
  const current = new Map<string, { id: string; version: number }>();
  for (let i = 0; i < ids.length; i += CHUNK)
    for (const r of await tx
      .select({
        id: records.id,
        participantId: records.participantId,
        formCode: records.formCode,
        visit: records.visit,
        instance: records.instance,
        version: records.currentVersion,
      })
      .from(records)
      .where(inArray(records.participantId, ids.slice(i, i + CHUNK))))
      current.set(`${r.participantId}|${r.formCode}|${r.visit}|${r.instance}`, { id: r.id, version: r.version });
  for (const x of first.values()) {
    const c = current.get(`${x.participant.id}|${x.form.def.code}|${x.visit}|${x.instance}`);
    const expected = x.isNewRecord ? null : { id: x.recordId, version: x.version - 1 };
    if (c?.id !== expected?.id || c?.version !== expected?.version)
      stale(`the record of ${x.participant.subjectCode} ${x.form.def.code} ${x.visit} (row ${x.row.row}) was changed`);
  }
}

/** Problems found inside the write's transaction (a lock set meanwhile): nothing written. */
export class ImportProblemsError extends Error {
  constructor(readonly problems: ImportProblem[]) {
    super(`${problems.length} problem(s) found while writing; nothing was imported`);
  }
}
