/**
 * The one check every write that changes trial data or its review state makes under a database lock (ADR 0054):
 * inside the write's transaction, the study's row is taken FOR SHARE (lockDatabase and a study lock take it FOR
 * UPDATE), then the study-wide lock in force is read. A concurrent lock therefore either commits before this read
 * (and the write is refused) or waits until the write has committed (and the write is in the analysis data set).
 * Call it first in the transaction, before any other row lock or ledger entry; a write that takes the study's row
 * FOR UPDATE itself calls it right after (or passes `forUpdate`), so no share lock is ever upgraded.
 */
import { and, eq, isNull, sql } from "drizzle-orm";
import type { DbOrTx } from "../../db/client.ts";
import { databaseLocks, locks } from "../../db/schema/index.ts";
import { ServiceError } from "../platform/errors.server.ts";

/** "2026-12-01 17:20 UTC": a lock's time in the refusal message and on pages under a lock. */
export function lockTimeText(at: Date): string {
  return `${at.toISOString().slice(0, 16).replace("T", " ")} UTC`;
}

/** The study-wide lock in force, read in `tx` after the study's row is held (FOR SHARE, or FOR UPDATE). */
export async function studyLockInForceForWrite(tx: DbOrTx, studyId: string, opts: { forUpdate?: boolean } = {}) {
  if (opts.forUpdate) await tx.execute(sql`SELECT 1 FROM studies WHERE id = ${studyId} FOR UPDATE`);
  else await tx.execute(sql`SELECT 1 FROM studies WHERE id = ${studyId} FOR SHARE`);
  const [l] = await tx
    .select({ id: locks.id, lockedAt: locks.lockedAt, reason: locks.reason, databaseLock: databaseLocks.id })
    .from(locks)
    .leftJoin(databaseLocks, eq(databaseLocks.lockId, locks.id))
    .where(and(eq(locks.studyId, studyId), eq(locks.scope, "study"), isNull(locks.releasedAt)))
    .limit(1);
  return l ?? null;
}

/** The refusal (423) of `what` under the study-wide lock `l`. */
export function lockedError(
  what: string,
  l: { lockedAt: Date; reason: string; databaseLock?: string | null },
): ServiceError {
  const locked = l.databaseLock === null ? "the study is locked" : "the study database is locked";
  return new ServiceError(
    "locked",
    `${what} is refused: ${locked} since ${lockTimeText(l.lockedAt)} (reason: ${l.reason}); ` +
      "ask the data manager to unlock it with a reason",
  );
}

/**
 * Refuse `what` (in words: "setting a disposition") while the study is locked: a database lock, or a study-wide lock
 * (the same lock to every write path, ADR 0054). A ServiceError "locked" (HTTP 423); nothing is written.
 */
export async function refuseUnderDatabaseLock(
  tx: DbOrTx,
  studyId: string,
  what: string,
  opts: { forUpdate?: boolean } = {},
): Promise<void> {
  const l = await studyLockInForceForWrite(tx, studyId, opts);
  if (l) throw lockedError(what, l);
}
