/**
 * Sign-off, monitoring and data management on CRF records, each step a ledger entry:
 * e-signatures (21 CFR 11.50/11.70/11.200: re-authentication, meaning, manifestation, bound to the signed
 * version's payload hash, visibly invalidated by a later correction), source data verification, queries
 * (open -> answer -> close; the text stays in the database, its SHA-256 goes to the ledger), and locks of a
 * record, a subject or the whole study (no edits until a logged unlock by an authorized role).
 */
import { and, asc, desc, eq, isNull, or, sql } from "drizzle-orm";
import type { DbOrTx } from "../../db/client.ts";
import { z } from "zod";
import { toHex } from "../../anchoring/log/bytes.ts";
import {
  databaseLocks,
  ledgerEntries,
  locks,
  participants,
  queries,
  records,
  recordVersions,
  sdvMarks,
  signatures,
} from "../../db/schema/index.ts";
import type { AppContext } from "../platform/context.server.ts";
import { ServiceError, isUniqueViolation } from "../platform/errors.server.ts";
import { appendEntry } from "../log/append-entry.server.ts";
import { saltedTextHash } from "../../anchoring/log/text-hash.ts";
import { audit } from "../audit-trail/record-event.server.ts";
import { reauthenticate, type RequestMeta } from "../accounts/auth.server.ts";
import { requireSiteAction } from "../studies/delegations.server.ts";
import { can, requirePermission, type Principal } from "../platform/permissions.server.ts";
import { getStudyOrThrow } from "../studies/studies.server.ts";
import { auditActor, auditDetail, payloadActor } from "../platform/attribution.ts";
import { lockedError, refuseUnderDatabaseLock } from "../database-lock/refuse-under-lock.server.ts";
import { canRaiseQueries, fieldLabelOf, notifyQueryStep, writeQueryEvent } from "../queries/query-events.server.ts";

async function recordOf(ctx: AppContext, principal: Principal, studyCode: string, recordId: string) {
  const study = await getStudyOrThrow(ctx, studyCode);
  if (!/^[0-9a-f-]{36}$/.test(recordId)) throw new ServiceError("not_found", `no record ${recordId}`, "record");
  const [r] = await ctx.db
    .select()
    .from(records)
    .where(and(eq(records.id, recordId), eq(records.studyId, study.id)));
  if (!r || !can(principal, "records.read", { studyId: study.id, siteId: r.siteId }))
    throw new ServiceError("not_found", `no record ${recordId}`, "record");
  return { study, record: r };
}

/** The lock that stops edits of a record (its own, its subject's, or the study's), if any. */
export async function activeLock(
  ctx: AppContext,
  rec: { id: string; studyId: string; participantId: string },
  db: DbOrTx = ctx.db,
) {
  const [l] = await db
    .select()
    .from(locks)
    .where(
      and(
        eq(locks.studyId, rec.studyId),
        isNull(locks.releasedAt),
        or(
          eq(locks.scope, "study"),
          and(eq(locks.scope, "subject"), eq(locks.targetId, rec.participantId)),
          and(eq(locks.scope, "record"), eq(locks.targetId, rec.id)),
        ),
      ),
    )
    .limit(1);
  return l ?? null;
}

export async function assertUnlocked(
  ctx: AppContext,
  rec: { id: string; studyId: string; participantId: string },
  db: DbOrTx = ctx.db,
) {
  const l = await activeLock(ctx, rec, db);
  if (l)
    throw new ServiceError(
      "locked",
      `this ${l.scope === "study" ? "study" : l.scope === "subject" ? "subject's casebook" : "record"} ` +
        `is locked (${l.reason}); it cannot be edited until an authorized role unlocks it`,
    );
}

const LockInput = z.object({
  scope: z.enum(["record", "subject", "study"]),
  target: z.string().trim().max(64).optional(),
  reason: z.string().trim().min(1, "give a reason").max(2000),
});

/** A data manager locks a record (by id), a subject (by code) or the study. */
export async function setLock(ctx: AppContext, principal: Principal, studyCode: string, input: unknown) {
  const v = LockInput.safeParse(input);
  if (!v.success)
    throw new ServiceError(
      "invalid",
      `${v.error.issues[0].path.join(".")}: ${v.error.issues[0].message}`,
      String(v.error.issues[0].path[0]),
    );
  const study = await getStudyOrThrow(ctx, studyCode);
  requirePermission(principal, "records.lock", { studyId: study.id });
  let targetId: string | null = null;
  let target = study.code;
  if (v.data.scope === "record") {
    const { record } = await recordOf(ctx, principal, study.code, v.data.target ?? "");
    targetId = record.id;
    target = record.id;
  } else if (v.data.scope === "subject") {
    const [p] = await ctx.db
      .select()
      .from(participants)
      .where(
        and(eq(participants.studyId, study.id), eq(participants.subjectCode, (v.data.target ?? "").toUpperCase())),
      );
    if (!p) throw new ServiceError("invalid", `target: no subject ${v.data.target}`, "target");
    targetId = p.id;
    target = p.subjectCode;
  }
  const lock = { scope: v.data.scope, targetId, target, reason: v.data.reason };
  return ctx.db.transaction(async (tx) => {
    // One study-wide lock at a time (a second would outlive the database lock's unlock). A record's or subject's
    // lock under it changes no data and is allowed: it keeps that record locked after a targeted unlock (ADR 0054).
    if (v.data.scope === "study") await refuseUnderDatabaseLock(tx, study.id, "locking the study", { forUpdate: true });
    return writeLock(ctx, tx, principal, study, lock);
  });
}

/**
 * A lock's statements, in the caller's transaction: the locked thing's row FOR UPDATE, the locks row, its `lock.set`
 * entry and the audit event (setLock, and the database lock's study-wide lock: app/database-lock, ADR 0054).
 */
export async function writeLock(
  ctx: AppContext,
  tx: DbOrTx,
  principal: Principal,
  study: { id: string; code: string },
  lock: { scope: "record" | "subject" | "study"; targetId: string | null; target: string; reason: string },
) {
  const { scope, targetId, target, reason } = lock;
  // Take the locked thing's row FOR UPDATE: a data write holds it FOR SHARE while it checks for locks, so the
  // write either commits before this lock or waits for it and then sees it (records.server.ts).
  if (scope === "study") await tx.execute(sql`SELECT 1 FROM studies WHERE id = ${study.id} FOR UPDATE`);
  else if (scope === "subject") await tx.execute(sql`SELECT 1 FROM participants WHERE id = ${targetId} FOR UPDATE`);
  else await tx.execute(sql`SELECT 1 FROM records WHERE id = ${targetId} FOR UPDATE`);
  const [l] = await tx
    .insert(locks)
    .values({ studyId: study.id, scope, targetId, reason, lockedBy: principal.userId })
    .returning();
  await appendEntry(tx, ctx.crypto, study, "lock.set", (salt) => ({
    lock: l.id,
    scope,
    target,
    reasonHash: saltedTextHash(ctx.crypto, salt, reason),
    actor: principal.userId,
  }));
  if (scope === "record") await tx.update(records).set({ status: "locked" }).where(eq(records.id, targetId!));
  await audit(tx, {
    action: "lock.set",
    actorUserId: principal.userId,
    studyId: study.id,
    detail: { lock: l.id, scope },
  });
  return l;
}

/** Unlock (an authorized role: data manager or study admin), with a logged reason. */
export async function releaseLock(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  lockId: string,
  reason: string,
) {
  const study = await getStudyOrThrow(ctx, studyCode);
  if (!can(principal, "records.lock", { studyId: study.id }) && !can(principal, "study.manage", { studyId: study.id }))
    throw new ServiceError("forbidden", "only a data manager or a study admin can unlock");
  if (!reason.trim()) throw new ServiceError("invalid", "reason: an unlock needs a reason", "reason");
  const [l] = /^[0-9a-f-]{36}$/.test(lockId)
    ? await ctx.db
        .select()
        .from(locks)
        .where(and(eq(locks.id, lockId), eq(locks.studyId, study.id)))
    : [];
  if (!l) throw new ServiceError("not_found", "no such lock", "lock");
  if (l.releasedAt) throw new ServiceError("conflict", "this lock was already released", "lock");
  // The study-wide lock of a database lock is released by the data manager only (database.lock, ADR 0054).
  const [dbl] = await ctx.db.select({ id: databaseLocks.id }).from(databaseLocks).where(eq(databaseLocks.lockId, l.id));
  if (dbl && !can(principal, "database.lock", { studyId: study.id }))
    throw new ServiceError(
      "forbidden",
      "this is the study's database lock: only a data manager can unlock it (with a reason, on the database lock page)",
    );
  await ctx.db.transaction(async (tx) => {
    await tx
      .update(locks)
      .set({ releasedAt: new Date(), releasedBy: principal.userId, releaseReason: reason.trim() })
      .where(eq(locks.id, l.id));
    await appendEntry(tx, ctx.crypto, study, "lock.released", (salt) => ({
      lock: l.id,
      reasonHash: saltedTextHash(ctx.crypto, salt, reason.trim()),
      actor: principal.userId,
    }));
    if (l.scope === "record") await tx.update(records).set({ status: "open" }).where(eq(records.id, l.targetId!));
    await audit(tx, {
      action: "lock.release",
      actorUserId: principal.userId,
      studyId: study.id,
      detail: { lock: l.id },
    });
  });
}

const MEANINGS = ["authored", "reviewed", "approved"] as const;
type Meaning = (typeof MEANINGS)[number];
/** The signer's role a meaning names, in words: "as author". */
const SIGNED_AS: Record<Meaning, string> = { authored: "author", reviewed: "reviewer", approved: "approver" };

/**
 * A member of staff signing a version with a meaning they already signed it with (issue 17): refused, since a
 * second identical signature adds nothing and would be counted twice. A new version (after a correction) can be
 * signed again, and so can the same version with another meaning.
 */
export class AlreadySignedError extends ServiceError {
  constructor(
    readonly version: number,
    readonly meaning: Meaning,
  ) {
    super(
      "conflict",
      `You have already signed version ${version} as ${SIGNED_AS[meaning]}; the same signature cannot be given ` +
        "twice. Choose another meaning, or sign again once a correction has made a new version.",
      "meaning",
    );
  }
}

/** The investigator e-signs the current version of a record, re-entering password (and TOTP code). */
export async function signRecord(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  recordId: string,
  input: { meaning: string; password: string; code?: string },
  meta: RequestMeta,
) {
  const { study, record } = await recordOf(ctx, principal, studyCode, recordId);
  await requireSiteAction(ctx, principal, "records.sign", { studyId: study.id, siteId: record.siteId });
  if (!MEANINGS.includes(input.meaning as never))
    throw new ServiceError("invalid", `meaning: choose ${MEANINGS.join(", ")}`, "meaning");
  const meaning = input.meaning as Meaning;
  await refuseSigningUnderLock(ctx, study.id);
  // Refused before the password and code are checked (and the code used up): nothing would be signed.
  const signed = await alreadySigned(ctx, record.id, principal.userId!, meaning);
  if (signed !== null && signed === record.currentVersion) throw new AlreadySignedError(signed, meaning);
  const user = await reauthenticate(ctx, principal.userId!, input.password ?? "", input.code, meta);
  return signVersion(ctx, study, record, user, meaning);
}

/** Before the password and code are checked (and the code used up): a locked study signs nothing (checked again). */
async function refuseSigningUnderLock(ctx: AppContext, studyId: string) {
  const l = await studyLock(ctx, studyId);
  if (l) throw lockedError("signing a record", l);
}

/** The latest version of a record the user signed with this meaning (a repeat from before 0021 aside), or null. */
async function alreadySigned(ctx: AppContext, recordId: string, userId: string, meaning: Meaning, db: DbOrTx = ctx.db) {
  const [s] = await db
    .select({ version: signatures.version })
    .from(signatures)
    .where(
      and(
        eq(signatures.recordId, recordId),
        eq(signatures.signerId, userId),
        eq(signatures.meaning, meaning),
        isNull(signatures.repeats),
      ),
    )
    .orderBy(desc(signatures.version))
    .limit(1);
  return s?.version ?? null;
}

/** Signature manifestations of a record; a signature over an older version is shown as invalidated. */
export async function signaturesOf(ctx: AppContext, recordId: string, currentVersion: number) {
  const rows = await ctx.db
    .select()
    .from(signatures)
    .where(eq(signatures.recordId, recordId))
    .orderBy(asc(signatures.signedAt));
  return rows.map((s) => ({
    id: s.id,
    printedName: s.printedName,
    meaning: s.meaning,
    signedAt: s.signedAt.toISOString(),
    version: s.version,
    signedPayloadHash: toHex(s.signedPayloadHash),
    valid: s.version === currentVersion,
    note:
      s.version === currentVersion
        ? null
        : `invalidated: the record was corrected after this signature (now v${currentVersion})`,
  }));
}

/** A monitor marks the current version as source-data verified. */
export async function markSdv(ctx: AppContext, principal: Principal, studyCode: string, recordId: string) {
  const { study, record } = await recordOf(ctx, principal, studyCode, recordId);
  requirePermission(principal, "records.monitor", { studyId: study.id, siteId: record.siteId });
  return ctx.db.transaction(async (tx) => {
    await refuseUnderDatabaseLock(tx, study.id, "marking source data verified");
    const e = await appendEntry(tx, ctx.crypto, study, "sdv.marked", {
      record: record.id,
      version: record.currentVersion,
      actor: principal.userId,
    });
    const [m] = await tx
      .insert(sdvMarks)
      .values({ recordId: record.id, version: record.currentVersion, markedBy: principal.userId, entryId: e.id })
      .returning();
    await audit(tx, {
      action: "sdv.mark",
      actorUserId: principal.userId,
      studyId: study.id,
      siteId: record.siteId,
      detail: { record: record.id, version: record.currentVersion },
    });
    return m;
  });
}

/** A monitor (or a data manager) opens a query on a field of a record. */
export async function openQuery(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  recordId: string,
  input: { field: string; text: string },
) {
  const { study, record } = await recordOf(ctx, principal, studyCode, recordId);
  if (!canRaiseQueries(principal, { studyId: study.id, siteId: record.siteId }))
    throw new ServiceError("forbidden", "not permitted: only a monitor or a data manager raises queries");
  const text = (input.text ?? "").trim();
  if (!text || text.length > 4000)
    throw new ServiceError("invalid", "text: write the query (up to 4000 characters)", "text");
  if (!/^[a-z][a-z0-9_]{0,63}$/.test(input.field ?? ""))
    throw new ServiceError("invalid", "field: choose a field of the form", "field");
  const label = await fieldLabelOf(ctx.db, record.id, input.field);
  return ctx.db.transaction(async (tx) => {
    await refuseUnderDatabaseLock(tx, study.id, "opening a query");
    const id = crypto.randomUUID();
    const e = await appendEntry(tx, ctx.crypto, study, "query.opened", (salt) => ({
      query: id,
      record: record.id,
      field: input.field,
      textHash: saltedTextHash(ctx.crypto, salt, text),
      ...payloadActor(principal),
    }));
    const [q] = await tx
      .insert(queries)
      .values({ id, studyId: study.id, recordId: record.id, field: input.field, text, openedBy: principal.userId })
      .returning();
    await writeQueryEvent(tx, { queryId: id, studyId: study.id, action: "opened", text, principal, entry: e });
    await audit(tx, {
      action: "query.open",
      ...auditActor(principal),
      studyId: study.id,
      siteId: record.siteId,
      detail: auditDetail(principal, { query: id }),
    });
    await notifyQueryStep(tx, ctx, {
      action: "opened",
      study,
      record,
      field: input.field,
      fieldLabel: label,
      raiserUserId: principal.userId,
      actorUserId: principal.userId,
    });
    return q;
  });
}

/** A query of the study with its record's site, subject and form, or not_found. */
/** A query of the study that the principal may read (any other is "no such query"), with its record and site. */
async function visibleQuery(ctx: AppContext, principal: Principal, studyCode: string, queryId: string) {
  const study = await getStudyOrThrow(ctx, studyCode);
  const q = await queryOf(ctx, study.id, queryId);
  if (!can(principal, "records.read", { studyId: study.id, siteId: q.siteId }))
    throw new ServiceError("not_found", "no such query", "query");
  return { study, q };
}

/** Move a query out of status `from` (another change in between is a conflict, nothing written). */
type QueryStatus = (typeof queries.$inferSelect)["status"];
async function moveQuery(
  tx: DbOrTx,
  queryId: string,
  from: QueryStatus,
  set: Partial<typeof queries.$inferInsert> & { status: QueryStatus },
) {
  const [u] = await tx
    .update(queries)
    .set(set)
    .where(and(eq(queries.id, queryId), eq(queries.status, from)))
    .returning({ id: queries.id });
  if (!u) throw new ServiceError("conflict", "query: this query was changed meanwhile; reload it", "query");
}

async function queryOf(ctx: AppContext, studyId: string, queryId: string) {
  const [q] = /^[0-9a-f-]{36}$/.test(queryId)
    ? await ctx.db
        .select({
          q: queries,
          siteId: records.siteId,
          record: {
            id: records.id,
            siteId: records.siteId,
            participantId: records.participantId,
            formCode: records.formCode,
          },
        })
        .from(queries)
        .innerJoin(records, eq(records.id, queries.recordId))
        .where(and(eq(queries.id, queryId), eq(queries.studyId, studyId)))
    : [];
  if (!q) throw new ServiceError("not_found", "no such query", "query");
  return q;
}

/** Site staff (with data entry delegated) answer an open query. */
export async function answerQuery(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  queryId: string,
  answer: string,
) {
  const { study, q } = await visibleQuery(ctx, principal, studyCode, queryId);
  await requireSiteAction(ctx, principal, "records.enter", { studyId: study.id, siteId: q.siteId });
  if (q.q.status !== "open")
    throw new ServiceError(
      "conflict",
      `query: only an open query can be answered (this one is ${q.q.status})`,
      "query",
    );
  const text = (answer ?? "").trim();
  if (!text || text.length > 4000)
    throw new ServiceError("invalid", "answer: write the answer (up to 4000 characters)", "answer");
  const label = await fieldLabelOf(ctx.db, q.q.recordId, q.q.field);
  await ctx.db.transaction(async (tx) => {
    await refuseUnderDatabaseLock(tx, study.id, "answering a query");
    const e = await appendEntry(tx, ctx.crypto, study, "query.answered", (salt) => ({
      query: q.q.id,
      textHash: saltedTextHash(ctx.crypto, salt, text),
      ...payloadActor(principal),
    }));
    await moveQuery(tx, q.q.id, "open", {
      status: "answered",
      answer: text,
      answeredBy: principal.userId,
      answeredAt: e.at,
    });
    await writeQueryEvent(tx, { queryId: q.q.id, studyId: study.id, action: "answered", text, principal, entry: e });
    await audit(tx, {
      action: "query.answer",
      ...auditActor(principal),
      studyId: study.id,
      siteId: q.siteId,
      detail: auditDetail(principal, { query: q.q.id }),
    });
    await notifyQueryStep(tx, ctx, {
      action: "answered",
      study,
      record: q.record,
      field: q.q.field,
      fieldLabel: label,
      raiserUserId: q.q.openedBy,
      actorUserId: principal.userId,
    });
  });
}

/** The monitor (or a data manager) closes an answered query. */
export async function closeQuery(ctx: AppContext, principal: Principal, studyCode: string, queryId: string) {
  const { study, q } = await visibleQuery(ctx, principal, studyCode, queryId);
  if (!canRaiseQueries(principal, { studyId: study.id, siteId: q.siteId }))
    throw new ServiceError("forbidden", "not permitted: only a monitor or a data manager closes queries");
  if (q.q.status !== "answered")
    throw new ServiceError(
      "conflict",
      `query: only an answered query can be closed (this one is ${q.q.status})`,
      "query",
    );
  await ctx.db.transaction(async (tx) => {
    await refuseUnderDatabaseLock(tx, study.id, "closing a query");
    const e = await appendEntry(tx, ctx.crypto, study, "query.closed", { query: q.q.id, ...payloadActor(principal) });
    await moveQuery(tx, q.q.id, "answered", { status: "closed", closedBy: principal.userId, closedAt: e.at });
    await writeQueryEvent(tx, {
      queryId: q.q.id,
      studyId: study.id,
      action: "closed",
      text: null,
      principal,
      entry: e,
    });
    await audit(tx, {
      action: "query.close",
      ...auditActor(principal),
      studyId: study.id,
      siteId: q.siteId,
      detail: auditDetail(principal, { query: q.q.id }),
    });
  });
}

/**
 * A monitor or data manager opens an answered or closed query again, with a reason (kept in the history row; its
 * salted hash sealed in `query.reopened`). The answer and close columns are cleared: the history keeps them.
 */
export async function reopenQuery(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  queryId: string,
  input: { reason: string },
) {
  const { study, q } = await visibleQuery(ctx, principal, studyCode, queryId);
  if (!canRaiseQueries(principal, { studyId: study.id, siteId: q.siteId }))
    throw new ServiceError("forbidden", "not permitted: only a monitor or a data manager re-opens queries");
  if (q.q.status === "open") throw new ServiceError("conflict", "query: this query is already open", "query");
  const reason = (input?.reason ?? "").trim();
  if (!reason || reason.length > 4000)
    throw new ServiceError("invalid", "reason: say why the query is re-opened (up to 4000 characters)", "reason");
  const label = await fieldLabelOf(ctx.db, q.q.recordId, q.q.field);
  await ctx.db.transaction(async (tx) => {
    await refuseUnderDatabaseLock(tx, study.id, "re-opening a query");
    const e = await appendEntry(tx, ctx.crypto, study, "query.reopened", (salt) => ({
      query: q.q.id,
      textHash: saltedTextHash(ctx.crypto, salt, reason),
      ...payloadActor(principal),
    }));
    await moveQuery(tx, q.q.id, q.q.status, {
      status: "open",
      answer: null,
      answeredBy: null,
      answeredAt: null,
      closedBy: null,
      closedAt: null,
    });
    await writeQueryEvent(tx, {
      queryId: q.q.id,
      studyId: study.id,
      action: "reopened",
      text: reason,
      principal,
      entry: e,
    });
    await audit(tx, {
      action: "query.reopen",
      ...auditActor(principal),
      studyId: study.id,
      siteId: q.siteId,
      detail: auditDetail(principal, { query: q.q.id }),
    });
    await notifyQueryStep(tx, ctx, {
      action: "reopened",
      study,
      record: q.record,
      field: q.q.field,
      fieldLabel: label,
      raiserUserId: q.q.openedBy,
      actorUserId: principal.userId,
    });
  });
}

export async function queriesOf(ctx: AppContext, recordId: string) {
  return ctx.db.select().from(queries).where(eq(queries.recordId, recordId)).orderBy(asc(queries.openedAt));
}

export async function sdvOf(ctx: AppContext, recordId: string) {
  return ctx.db.select().from(sdvMarks).where(eq(sdvMarks.recordId, recordId)).orderBy(asc(sdvMarks.markedAt));
}

/**
 * The investigator signs a subject's whole casebook: one re-authentication, then one signature per record,
 * each bound to that record's current version (so a later correction invalidates just that one).
 */
export async function signCasebook(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  subject: string,
  input: { meaning: string; password: string; code?: string },
  meta: RequestMeta,
) {
  const study = await getStudyOrThrow(ctx, studyCode);
  const [p] = await ctx.db
    .select()
    .from(participants)
    .where(and(eq(participants.studyId, study.id), eq(participants.subjectCode, subject.toUpperCase())));
  if (!p || !can(principal, "records.read", { studyId: study.id, siteId: p.siteId }))
    throw new ServiceError("not_found", `no subject ${subject}`, "subject");
  await requireSiteAction(ctx, principal, "records.sign", { studyId: study.id, siteId: p.siteId });
  if (!MEANINGS.includes(input.meaning as never))
    throw new ServiceError("invalid", `meaning: choose ${MEANINGS.join(", ")}`, "meaning");
  const meaning = input.meaning as Meaning;
  const recs = await ctx.db
    .select()
    .from(records)
    .where(eq(records.participantId, p.id))
    .orderBy(asc(records.formCode), asc(records.visit), asc(records.createdAt));
  if (recs.length === 0) throw new ServiceError("invalid", "the casebook has no records to sign", "subject");
  const skipped: CasebookSkip[] = [];
  const toSign = [];
  for (const r of recs) {
    if ((await alreadySigned(ctx, r.id, principal.userId!, meaning)) === r.currentVersion)
      skipped.push({ record: r.id, form: r.formCode, visit: r.visit, version: r.currentVersion });
    else toSign.push(r);
  }
  if (toSign.length === 0)
    throw new ServiceError(
      "conflict",
      `You have already signed every record of ${p.subjectCode} as ${SIGNED_AS[meaning]} (each in its current ` +
        "version); nothing was signed. Choose another meaning, or sign again once a correction has made a new version.",
      "meaning",
    );
  await refuseSigningUnderLock(ctx, study.id);
  const user = await reauthenticate(ctx, principal.userId!, input.password ?? "", input.code, meta);
  const signed = [];
  for (const r of toSign) {
    try {
      signed.push(await signVersion(ctx, study, r, user, meaning));
    } catch (err) {
      // Signed meanwhile (another tab, another process): reported as skipped, like those found above.
      if (!(err instanceof AlreadySignedError)) throw err;
      skipped.push({ record: r.id, form: r.formCode, visit: r.visit, version: err.version });
    }
  }
  return { signed, skipped };
}

/** What a casebook signing did, in words: how many records were signed, and which were left as already signed. */
export function casebookSigningText(out: { signed: unknown[]; skipped: CasebookSkip[] }, meaning: string): string {
  const as = SIGNED_AS[meaning as Meaning] ?? meaning;
  const n = out.signed.length;
  const signed = `Signed ${n} record${n === 1 ? "" : "s"} as ${as}.`;
  if (out.skipped.length === 0) return signed;
  const list = out.skipped.map((k) => `${k.form} at ${k.visit} (version ${k.version})`).join(", ");
  return `${signed} Not signed again, because you have already signed their current version as ${as}: ${list}.`;
}

/** A record of a casebook left unsigned because the signer already signed its current version with that meaning. */
export interface CasebookSkip {
  record: string;
  form: string;
  visit: string;
  version: number;
}

async function signVersion(
  ctx: AppContext,
  study: { id: string; code: string },
  record: { id: string; siteId: string },
  user: { id: string; fullName: string },
  meaning: Meaning,
) {
  const [cur] = await ctx.db
    .select({ version: recordVersions.version, payloadHash: ledgerEntries.payloadHash })
    .from(recordVersions)
    .innerJoin(ledgerEntries, eq(ledgerEntries.id, recordVersions.entryId))
    .where(eq(recordVersions.recordId, record.id))
    .orderBy(desc(recordVersions.version))
    .limit(1);
  try {
    return await ctx.db.transaction(async (tx) => {
      await refuseUnderDatabaseLock(tx, study.id, "signing a record");
      if ((await alreadySigned(ctx, record.id, user.id, meaning, tx)) === cur.version)
        throw new AlreadySignedError(cur.version, meaning);
      return insertSignature(tx, ctx, study, record, user, meaning, cur);
    });
  } catch (err) {
    // Two signatures at once: the unique index lets one commit; the other is refused in the same words.
    if (isUniqueViolation(err)) throw new AlreadySignedError(cur.version, meaning);
    throw err;
  }
}

async function insertSignature(
  tx: DbOrTx,
  ctx: AppContext,
  study: { id: string; code: string },
  record: { id: string; siteId: string },
  user: { id: string; fullName: string },
  meaning: Meaning,
  cur: { version: number; payloadHash: Uint8Array },
) {
  const id = crypto.randomUUID();
  const e = await appendEntry(tx, ctx.crypto, study, "signature.applied", {
    signature: id,
    record: record.id,
    version: cur.version,
    signedPayloadHash: toHex(cur.payloadHash),
    meaning,
    signer: user.id,
    actor: user.id,
  });
  const [s] = await tx
    .insert(signatures)
    .values({
      id,
      studyId: study.id,
      recordId: record.id,
      version: cur.version,
      signedPayloadHash: cur.payloadHash,
      meaning,
      signerId: user.id,
      printedName: user.fullName,
      entryId: e.id,
    })
    .returning();
  await audit(tx, {
    action: "signature.apply",
    actorUserId: user.id,
    studyId: study.id,
    siteId: record.siteId,
    detail: { record: record.id, version: cur.version, meaning },
  });
  return s;
}

/** The study-wide lock in force, if any. */
export async function studyLock(ctx: AppContext, studyId: string) {
  const [l] = await ctx.db
    .select()
    .from(locks)
    .where(and(eq(locks.studyId, studyId), eq(locks.scope, "study"), isNull(locks.releasedAt)))
    .limit(1);
  return l ?? null;
}
