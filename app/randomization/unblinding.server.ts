/**
 * The study's unblinding (issue 20, ADR 0054): once the randomization list is committed and the database is locked,
 * an admin or the unblinded statistician reveals the whole list. One randomization_unblindings row, its
 * `randomization.unblinded` entry (naming the list and the database lock in force) and an audit event, in one
 * transaction; from then on everyone who may see the study sees arms (armsVisible), and the allocations file can be
 * exported (allocations-export.server.ts). Once per list: it cannot be undone.
 */
import { randomUUID } from "node:crypto";
import { eq, sql } from "drizzle-orm";
import { rowsOf } from "../../db/queries/rows.ts";
import { randomizationUnblindings, users } from "../../db/schema/index.ts";
import { audit } from "../audit-trail/record-event.server.ts";
import { databaseLockInForce } from "../database-lock/database-lock.server.ts";
import { appendEntry } from "../log/append-entry.server.ts";
import { auditActor, auditDetail } from "../platform/attribution.ts";
import type { AppContext } from "../platform/context.server.ts";
import { isUniqueViolation, ServiceError } from "../platform/errors.server.ts";
import { requirePermission, type Principal } from "../platform/permissions.server.ts";
import { getStudyOrThrow } from "../studies/studies.server.ts";
import { committedList } from "./list-state.server.ts";

/** Unblind the study (randomization.unblind: an admin or the unblinded statistician; a person, never a token). */
export async function unblindStudy(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
): Promise<{ unblindingId: string; entryId: string }> {
  const study = await getStudyOrThrow(ctx, studyCode);
  requirePermission(principal, "randomization.unblind", { studyId: study.id });
  if (principal.kind !== "user" || !principal.userId)
    throw new ServiceError("forbidden", "the study is unblinded by a person signed in, not by an API token");
  const userId = principal.userId;
  const list = await committedList(ctx.db, study.id);
  if (!list)
    throw new ServiceError(
      "conflict",
      `${study.code} has no committed randomization list: there is nothing to unblind`,
    );
  return ctx.db.transaction(async (tx) => {
    // The study's row, as a lock or an unlock takes it: the database lock cannot be released while this commits.
    await tx.execute(sql`SELECT 1 FROM studies WHERE id = ${study.id} FOR UPDATE`);
    const lock = await databaseLockInForce(tx, study.id);
    if (!lock)
      throw new ServiceError(
        "conflict",
        `the ${study.code} database is not locked: lock it (the analysis data set is sealed then) before unblinding`,
      );
    const [done] = await tx
      .select({ id: randomizationUnblindings.id })
      .from(randomizationUnblindings)
      .where(eq(randomizationUnblindings.listId, list.id));
    if (done) throw new ServiceError("conflict", `${study.code} is already unblinded`);
    const id = randomUUID();
    // The counts the allocations file must hold: a file missing an allocation or an emergency unblinding is named.
    const counts = rowsOf<{ key: string; n: number | string }>(
      await tx.execute(
        sql`SELECT s.key, count(a.id) AS n FROM randomization_strata s
            LEFT JOIN randomization_allocations a ON a.stratum_id = s.id
            WHERE s.list_id = ${list.id} GROUP BY s.key, s.position ORDER BY s.position`,
      ),
    );
    const [emergencies] = rowsOf<{ n: number | string }>(
      await tx.execute(sql`SELECT count(*) AS n FROM emergency_unblindings WHERE study_id = ${study.id}`),
    );
    const e = await appendEntry(tx, ctx.crypto, study, "randomization.unblinded", {
      unblinding: id,
      list: list.id,
      databaseLock: lock.id,
      allocations: counts.map((c) => ({ stratum: c.key, count: Number(c.n) })),
      emergencyUnblindings: Number(emergencies.n),
      actor: userId,
    });
    try {
      await tx.insert(randomizationUnblindings).values({
        id,
        studyId: study.id,
        listId: list.id,
        databaseLockId: lock.id,
        actorUserId: userId,
        entryId: e.id,
      });
    } catch (err) {
      if (isUniqueViolation(err)) throw new ServiceError("conflict", `${study.code} is already unblinded`);
      throw err;
    }
    await audit(tx, {
      action: "randomization.unblind",
      ...auditActor(principal),
      studyId: study.id,
      detail: auditDetail(principal, { unblinding: id, list: list.id, databaseLock: lock.id }),
    });
    return { unblindingId: id, entryId: e.id };
  });
}

/** The study's unblinding, if it happened: when, by whom, under which database lock. */
export async function studyUnblinding(ctx: AppContext, studyId: string) {
  const [r] = await ctx.db
    .select({
      id: randomizationUnblindings.id,
      at: randomizationUnblindings.createdAt,
      by: users.fullName,
      databaseLockId: randomizationUnblindings.databaseLockId,
    })
    .from(randomizationUnblindings)
    .leftJoin(users, eq(users.id, randomizationUnblindings.actorUserId))
    .where(eq(randomizationUnblindings.studyId, studyId))
    .limit(1);
  return r ? { id: r.id, at: r.at.toISOString(), by: r.by ?? "unknown", databaseLockId: r.databaseLockId } : null;
}
