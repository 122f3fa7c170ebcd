/**
 * The database lock (issue 20, ADR 0054): a data manager locks the whole study with a reason. In one transaction:
 * the study-wide lock (the same `locks` row and `lock.set` entry a study lock always writes: writeLock), the analysis
 * data set (the study's CSV export, a ZIP of one CSV per form with every record's current version, made from the
 * data as this transaction sees it, so it is exactly the locked data; blinded: records hold no arm), its SHA-256 and
 * size sealed in a `database.locked` entry, and an audit event. Unlocking is the study lock's release with a reason
 * (`lock.released`); a new lock writes a new analysis data set.
 */
import { randomUUID } from "node:crypto";
import { unzipSync, zipSync } from "fflate";
import { and, desc, eq, isNull, sql } from "drizzle-orm";
import { toHex } from "../../anchoring/log/bytes.ts";
import type { DbOrTx } from "../../db/client.ts";
import { databaseLocks, ledgerEntries, locks, users } from "../../db/schema/index.ts";
import { audit } from "../audit-trail/record-event.server.ts";
import { releaseLock, writeLock } from "../clinical-monitoring/clinical-monitoring.server.ts";
import { csvRawRows, csvUnquote } from "../../anchoring/verifier/csv-cells.ts";
import { accessDetail } from "../data-sharing/access-detail.server.ts";
import { choicesText } from "../data-sharing/choices-statement.ts";
import { exportParticipantsDetail, participantIdsOfSubjects } from "../data-sharing/export-access.server.ts";
import { studyCsvFiles } from "../exports/csv.server.ts";
import { loadStudyExport } from "../exports/study-data.server.ts";
import { appendEntry } from "../log/append-entry.server.ts";
import { sealAll } from "../log/sealer.server.ts";
import { auditActor, auditDetail, payloadActor, rowTokenColumns } from "../platform/attribution.ts";
import type { AppContext } from "../platform/context.server.ts";
import { ServiceError } from "../platform/errors.server.ts";
import { can, requirePermission, type Principal } from "../platform/permissions.server.ts";
import { lockTimeText } from "./refuse-under-lock.server.ts";
import { studySealMismatches } from "../records/seal-match.server.ts";
import { getStudyOrThrow } from "../studies/studies.server.ts";

const REASON_MAX = 2000;

/** The database lock in force: a database_locks row whose study-wide lock is not released (null when none). */
export async function databaseLockInForce(db: DbOrTx, studyId: string) {
  const [r] = await db
    .select({ d: databaseLocks, l: locks })
    .from(databaseLocks)
    .innerJoin(locks, eq(locks.id, databaseLocks.lockId))
    .where(and(eq(databaseLocks.studyId, studyId), isNull(locks.releasedAt)))
    .orderBy(desc(databaseLocks.createdAt))
    .limit(1);
  return r ? { ...r.d, lockedAt: r.l.lockedAt, reason: r.l.reason } : null;
}

/**
 * How a page under a database lock says so in place of its write controls (ADR 0054): "The database is locked since
 * 2026-12-01 17:20 UTC (reason)"; null when no database lock is in force. Pages link /studies/CODE/lock beside it.
 */
export async function databaseLockNotice(ctx: AppContext, studyId: string): Promise<string | null> {
  const l = await databaseLockInForce(ctx.db, studyId);
  return l ? `The database is locked since ${lockTimeText(l.lockedAt)} (${l.reason})` : null;
}

/** The analysis data set's file name for a lock at `at` (UTC, to the second). */
export function analysisFileName(studyCode: string, at: Date): string {
  const stamp = at.toISOString().slice(0, 19).replace(/[-:]/g, "").replace("T", "-");
  return `${studyCode}-analysis-data-set-${stamp}.zip`;
}

/** Lock the study database with a reason (database.lock: the data manager). */
export async function lockDatabase(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  input: { reason: unknown },
): Promise<{ databaseLockId: string; lockId: string; entryId: string; sha256: string; bytes: number }> {
  const study = await getStudyOrThrow(ctx, studyCode);
  requirePermission(principal, "database.lock", { studyId: study.id });
  const reason = typeof input.reason === "string" ? input.reason.trim() : "";
  if (!reason) throw new ServiceError("invalid", "reason: give a reason for the database lock", "reason");
  if (reason.length > REASON_MAX)
    throw new ServiceError("invalid", `reason: at most ${REASON_MAX} characters`, "reason");
  // The CSV names the entry (seq, leaf hash) behind each version: seal what is pending first, as exports do.
  await sealAll(ctx);
  const bad = await studySealMismatches(ctx, study.id);
  if (bad.length)
    throw new ServiceError(
      "conflict",
      `record ${bad[0].record} no longer matches its sealed entry` +
        (bad.length > 1 ? ` (and ${bad.length - 1} more)` : "") +
        `; the database was not locked (run trialseal audit --study ${study.code})`,
    );
  return ctx.db.transaction(async (tx) => {
    // The study's row first (as a study lock takes it): a data write holds it FOR SHARE while it checks for locks.
    await tx.execute(sql`SELECT 1 FROM studies WHERE id = ${study.id} FOR UPDATE`);
    const [held] = await tx
      .select({ id: locks.id })
      .from(locks)
      .where(and(eq(locks.studyId, study.id), eq(locks.scope, "study"), isNull(locks.releasedAt)))
      .limit(1);
    if (held)
      throw new ServiceError(
        "conflict",
        "the study is already locked: unlock it with a reason before locking the database again",
      );
    const l = await writeLock(ctx, tx, principal, study, {
      scope: "study",
      targetId: null,
      target: study.code,
      reason,
    });
    // The analysis data set, read in this transaction: exactly the data the lock holds.
    const x = (await loadStudyExport({ ...ctx, db: tx }, study.code))!;
    const files = Object.fromEntries(studyCsvFiles(x).map((f) => [f.name, new TextEncoder().encode(f.text)]));
    files["CHOICES.txt"] = new TextEncoder().encode(choicesText()); // the choices it honours (ADR 0071)
    const data = zipSync(files, { level: 6, mtime: l.lockedAt });
    const sha256 = ctx.crypto.sha256(data);
    const records = x.records.filter((r) => r.versions.length).length;
    const id = randomUUID();
    const entry = await appendEntry(tx, ctx.crypto, study, "database.locked", {
      databaseLock: id,
      lock: l.id,
      analysisSha256: toHex(sha256),
      analysisBytes: data.length,
      records,
      ...payloadActor(principal),
    });
    await tx.insert(databaseLocks).values({
      id,
      studyId: study.id,
      lockId: l.id,
      analysisFileName: analysisFileName(study.code, l.lockedAt),
      analysisSha256: sha256,
      analysisBytes: data.length,
      analysisData: data,
      records,
      actorUserId: principal.userId,
      ...rowTokenColumns(principal),
      entryId: entry.id,
    });
    await audit(tx, {
      action: "database.lock",
      ...auditActor(principal),
      studyId: study.id,
      detail: auditDetail(principal, { databaseLock: id, lock: l.id, bytes: data.length, records }),
    });
    return { databaseLockId: id, lockId: l.id, entryId: entry.id, sha256: toHex(sha256), bytes: data.length };
  });
}

/** Unlock the database: the release of its study-wide lock, with a reason (`lock.released`). */
export async function unlockDatabase(ctx: AppContext, principal: Principal, studyCode: string, reason: unknown) {
  const study = await getStudyOrThrow(ctx, studyCode);
  requirePermission(principal, "database.lock", { studyId: study.id });
  const r = typeof reason === "string" ? reason.trim() : "";
  if (!r) throw new ServiceError("invalid", "reason: an unlock needs a reason", "reason");
  if (r.length > REASON_MAX) throw new ServiceError("invalid", `reason: at most ${REASON_MAX} characters`, "reason");
  const d = await databaseLockInForce(ctx.db, study.id);
  if (!d) throw new ServiceError("conflict", "the database is not locked");
  await releaseLock(ctx, principal, study.code, d.lockId, r);
  await audit(ctx.db, {
    action: "database.unlock",
    ...auditActor(principal),
    studyId: study.id,
    detail: auditDetail(principal, { databaseLock: d.id, lock: d.lockId }),
  });
}

/** Who may download the analysis data set: study reviewers (data manager, monitor, regulator, admin), statisticians. */
export function canReadAnalysisDataSet(principal: Principal, studyId: string) {
  return can(principal, "study.review", { studyId }) || can(principal, "randomization.unblind", { studyId });
}

/** The database locks of a study, newest first, with who locked and unlocked each and why. */
export async function databaseLockHistory(ctx: AppContext, principal: Principal, studyCode: string) {
  const study = await getStudyOrThrow(ctx, studyCode);
  requirePermission(principal, "study.view", { studyId: study.id });
  const rows = await ctx.db
    .select({
      id: databaseLocks.id,
      lockId: databaseLocks.lockId,
      fileName: databaseLocks.analysisFileName,
      sha256: databaseLocks.analysisSha256,
      bytes: databaseLocks.analysisBytes,
      records: databaseLocks.records,
      lockedAt: locks.lockedAt,
      reason: locks.reason,
      releasedAt: locks.releasedAt,
      releaseReason: locks.releaseReason,
      releasedBy: locks.releasedBy,
      lockedBy: users.fullName,
      tokenName: databaseLocks.actorTokenName,
    })
    .from(databaseLocks)
    .innerJoin(locks, eq(locks.id, databaseLocks.lockId))
    .leftJoin(users, eq(users.id, databaseLocks.actorUserId))
    .where(eq(databaseLocks.studyId, study.id))
    .orderBy(desc(databaseLocks.createdAt));
  const names = new Map<string, string>();
  for (const r of rows)
    if (r.releasedBy && !names.has(r.releasedBy)) {
      const [u] = await ctx.db.select({ n: users.fullName }).from(users).where(eq(users.id, r.releasedBy));
      names.set(r.releasedBy, u?.n ?? "unknown");
    }
  return rows.map((r) => ({
    id: r.id,
    fileName: r.fileName,
    sha256: toHex(r.sha256),
    bytes: r.bytes,
    records: r.records,
    lockedAt: r.lockedAt.toISOString(),
    lockedBy: r.lockedBy ?? (r.tokenName ? `API token ${r.tokenName}` : "unknown"),
    reason: r.reason,
    releasedAt: r.releasedAt?.toISOString() ?? null,
    releasedBy: r.releasedBy ? (names.get(r.releasedBy) ?? "unknown") : null,
    releaseReason: r.releaseReason,
  }));
}

/**
 * A database lock's analysis data set, for download: its bytes are served only when their SHA-256 is the one sealed
 * in its `database.locked` entry (and the row's); otherwise a conflict naming the mismatch (altered behind the log).
 */
export async function analysisDataSet(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  databaseLockId: string,
): Promise<{ name: string; data: Uint8Array; sha256: string }> {
  const study = await getStudyOrThrow(ctx, studyCode);
  if (!canReadAnalysisDataSet(principal, study.id))
    throw new ServiceError(
      "forbidden",
      "only a data manager, monitor, regulator, admin or statistician can download it",
    );
  const [r] = /^[0-9a-f-]{36}$/.test(databaseLockId)
    ? await ctx.db
        .select({ d: databaseLocks, payload: ledgerEntries.payloadText })
        .from(databaseLocks)
        .leftJoin(
          ledgerEntries,
          and(eq(ledgerEntries.id, databaseLocks.entryId), eq(ledgerEntries.kind, "database.locked")),
        )
        .where(and(eq(databaseLocks.id, databaseLockId), eq(databaseLocks.studyId, study.id)))
    : [];
  if (!r) throw new ServiceError("not_found", "no such database lock", "lock");
  const data = new Uint8Array(r.d.analysisData);
  const actual = toHex(ctx.crypto.sha256(data));
  let sealed: string | null = null;
  try {
    sealed = r.payload ? String((JSON.parse(r.payload) as { analysisSha256?: unknown }).analysisSha256) : null;
  } catch {
    sealed = null;
  }
  if (sealed === null)
    throw new ServiceError("conflict", "the analysis data set has no sealed database.locked entry: it is not served");
  if (actual !== sealed || toHex(r.d.analysisSha256) !== sealed)
    throw new ServiceError(
      "conflict",
      `the stored analysis data set does not match its sealed SHA-256 (sealed ${sealed}, stored bytes ${actual}); ` +
        "it is not served: run the integrity audit",
    );
  // An export event (ADR 0071): the participants whose rows the data set holds (its CSV files' subject column).
  await audit(ctx.db, {
    action: "export.analysis_data_set",
    ...auditActor(principal),
    studyId: study.id,
    detail: auditDetail(principal, {
      databaseLock: r.d.id,
      bytes: data.length,
      ...accessDetail(principal, study.id, null),
      ...exportParticipantsDetail(await participantIdsOfSubjects(ctx, study.id, subjectsOfCsvZip(data))),
    }),
  });
  return { name: r.d.analysisFileName, data, sha256: actual };
}

/** The subject codes of a CSV ZIP's files (each file's `subject` column), as the files hold them. */
function subjectsOfCsvZip(data: Uint8Array): string[] {
  const out: string[] = [];
  for (const [name, bytes] of Object.entries(unzipSync(data))) {
    if (!name.endsWith(".csv")) continue;
    const rows = csvRawRows(new TextDecoder().decode(bytes));
    const col = (rows.shift()?.cells.map(csvUnquote) ?? []).indexOf("subject");
    if (col >= 0) for (const r of rows) out.push(csvUnquote(r.cells[col] ?? ""));
  }
  return out;
}
