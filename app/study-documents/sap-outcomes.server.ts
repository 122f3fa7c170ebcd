/**
 * The SAP's outcome list (issue 20, ADR 0049): each version is a sap_outcome_sets row sealed with the SAP document
 * version in force (the latest `sap` study document) by a `sap.outcomes_set` entry carrying the salted hash of the
 * list's canonical JSON. A version written once the study has a participant (a `participant.enrolled` entry, in
 * whatever disposition: ADR 0049) is marked `afterFirstEnrolment` and needs a reason.
 */
import { randomUUID } from "node:crypto";
import { asc, desc, eq, sql } from "drizzle-orm";
import { saltedTextHash } from "../../anchoring/log/text-hash.ts";
import type { DbOrTx } from "../../db/client.ts";
import { rowsOf } from "../../db/queries/rows.ts";
import { sapOutcomeSets, studyDocuments, users } from "../../db/schema/index.ts";
import { audit } from "../audit-trail/record-event.server.ts";
import { appendEntry } from "../log/append-entry.server.ts";
import { auditActor, auditDetail, payloadActor, rowTokenColumns, tokenLabel } from "../platform/attribution.ts";
import type { AppContext } from "../platform/context.server.ts";
import { refuseUnderDatabaseLock } from "../database-lock/refuse-under-lock.server.ts";
import { type Problem, ServiceError } from "../platform/errors.server.ts";
import { requirePermission, type Principal } from "../platform/permissions.server.ts";
import { getStudyOrThrow } from "../studies/studies.server.ts";
import {
  MAX_REASON,
  type Outcome,
  type OutcomeChange,
  OutcomeListSchema,
  outcomeChanges,
  outcomeIssueWords,
  outcomesText,
  parseOutcomesText,
} from "./outcome-list.ts";

/** Check a list (any JSON value); refused with every problem, each naming the outcome and the field in words. */
export function checkOutcomes(input: unknown): Outcome[] {
  const r = OutcomeListSchema.safeParse(input);
  if (r.success) return r.data;
  const problems = r.error.issues.map((i) =>
    outcomeIssueWords(i.path, i.code === "unrecognized_keys" ? `unknown ${i.keys.join(", ")}` : i.message),
  ) as Problem[];
  throw new ServiceError("invalid", problems[0].message, problems[0].field, problems);
}

/**
 * Does the study have a participant? A participants row, in whatever disposition (screening too), is written in
 * one transaction with its `participant.enrolled` entry: the audit reads the same fact from the log (ADR 0049).
 */
export async function studyHasParticipant(db: DbOrTx, studyId: string): Promise<boolean> {
  const r = rowsOf(await db.execute(sql`SELECT 1 FROM participants WHERE study_id = ${studyId} LIMIT 1`));
  return r.length > 0;
}

/** The SAP version in force: the latest `sap` study document (by upload), or null. */
export async function sapInForce(db: DbOrTx, studyId: string) {
  const [d] = await db
    .select({ id: studyDocuments.id, version: studyDocuments.version })
    .from(studyDocuments)
    .where(sql`${studyDocuments.studyId} = ${studyId} AND ${studyDocuments.type} = 'sap'`)
    .orderBy(desc(studyDocuments.createdAt), desc(studyDocuments.id))
    .limit(1);
  return d ?? null;
}

/**
 * Set a new version of the outcome list (permission documents.manage). `reason` is required once the study has a
 * participant, optional before. Row, `sap.outcomes_set` entry and audit event commit together.
 */
export async function setOutcomes(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  input: { outcomes: unknown; reason?: unknown },
) {
  const study = await getStudyOrThrow(ctx, studyCode);
  requirePermission(principal, "documents.manage", { studyId: study.id });
  const list = checkOutcomes(input.outcomes);
  if (input.reason !== undefined && input.reason !== null && typeof input.reason !== "string")
    throw new ServiceError("invalid", "reason: expected text", "reason");
  const reason = typeof input.reason === "string" && input.reason.trim() ? input.reason.trim() : null;
  if (reason && reason.length > MAX_REASON)
    throw new ServiceError("invalid", `reason: at most ${MAX_REASON} characters`, "reason");
  const text = outcomesText(list);
  return ctx.db.transaction(async (tx) => {
    // One writer at a time per study (gapless versions). The study's site rows too: an enrolment holds its site's
    // row while it writes its participant.enrolled entry, so an enrolment either commits before this reads the log
    // (and this version is after first enrolment) or starts its entry after this one (ADR 0049).
    await tx.execute(sql`SELECT 1 FROM studies WHERE id = ${study.id} FOR UPDATE`);
    await tx.execute(sql`SELECT 1 FROM sites WHERE study_id = ${study.id} ORDER BY id FOR UPDATE`);
    await refuseUnderDatabaseLock(tx, study.id, "changing the outcome list");
    const sap = await sapInForce(tx, study.id);
    if (!sap)
      throw new ServiceError(
        "conflict",
        "sap: upload the statistical analysis plan first (the outcome list is sealed with the SAP version in force)",
        "sap",
      );
    const afterFirstEnrolment = await studyHasParticipant(tx, study.id);
    if (afterFirstEnrolment && !reason)
      throw new ServiceError(
        "invalid",
        "reason: a participant is already enrolled, so a change to the outcome list needs a reason",
        "reason",
      );
    const [last] = await tx
      .select({ n: sql<number>`coalesce(max(${sapOutcomeSets.version}), 0)` })
      .from(sapOutcomeSets)
      .where(eq(sapOutcomeSets.studyId, study.id));
    const version = Number(last?.n ?? 0) + 1;
    const id = randomUUID();
    const e = await appendEntry(tx, ctx.crypto, study, "sap.outcomes_set", (salt) => ({
      outcomes: id,
      version,
      sap: sap.id,
      outcomesHash: saltedTextHash(ctx.crypto, salt, text),
      count: list.length,
      primary: list.filter((o) => o.type === "primary").length,
      afterFirstEnrolment,
      reasonHash: reason === null ? null : saltedTextHash(ctx.crypto, salt, reason),
      ...payloadActor(principal),
    }));
    await tx.insert(sapOutcomeSets).values({
      id,
      studyId: study.id,
      version,
      sapDocumentId: sap.id,
      outcomesText: text,
      afterFirstEnrolment,
      reason,
      actorUserId: principal.userId,
      ...rowTokenColumns(principal),
      entryId: e.id,
    });
    await audit(tx, {
      action: "sap.outcomes_set",
      ...auditActor(principal),
      studyId: study.id,
      detail: auditDetail(principal, {
        version,
        sapVersion: sap.version,
        outcomes: list.length,
        afterFirstEnrolment,
        entry: e.id,
      }),
    });
    return { id, version, sapVersion: sap.version, afterFirstEnrolment, count: list.length, entryId: e.id };
  });
}

export interface OutcomeVersion {
  id: string;
  version: number;
  sapVersion: string;
  createdAt: string;
  outcomes: Outcome[];
  changes: OutcomeChange[];
  afterFirstEnrolment: boolean;
  reason: string | null;
  /** Who set it (a user's name, or a token's label); for staff pages only, never the public page. */
  by: string;
  entryId: string;
}

/** Every version of the outcome list, oldest first, each with what changed from the one before. */
export async function outcomeHistory(ctx: AppContext, studyId: string): Promise<OutcomeVersion[]> {
  const rows = await ctx.db
    .select({
      id: sapOutcomeSets.id,
      version: sapOutcomeSets.version,
      sapVersion: studyDocuments.version,
      text: sapOutcomeSets.outcomesText,
      after: sapOutcomeSets.afterFirstEnrolment,
      reason: sapOutcomeSets.reason,
      createdAt: sapOutcomeSets.createdAt,
      actor: users.fullName,
      tokenId: sapOutcomeSets.actorTokenId,
      tokenName: sapOutcomeSets.actorTokenName,
      entryId: sapOutcomeSets.entryId,
    })
    .from(sapOutcomeSets)
    .innerJoin(studyDocuments, eq(studyDocuments.id, sapOutcomeSets.sapDocumentId))
    .leftJoin(users, eq(users.id, sapOutcomeSets.actorUserId))
    .where(eq(sapOutcomeSets.studyId, studyId))
    .orderBy(asc(sapOutcomeSets.version));
  let prev: Outcome[] | null = null;
  return rows.map((r) => {
    const outcomes = parseOutcomesText(r.text) ?? [];
    const changes = outcomeChanges(prev, outcomes);
    prev = outcomes;
    return {
      id: r.id,
      version: r.version,
      sapVersion: r.sapVersion,
      createdAt: r.createdAt.toISOString(),
      outcomes,
      changes,
      afterFirstEnrolment: r.after,
      reason: r.reason,
      by: r.tokenId && r.tokenName ? tokenLabel({ id: r.tokenId, name: r.tokenName }) : (r.actor ?? "an administrator"),
      entryId: r.entryId,
    };
  });
}

/** What the outcomes page needs: the history, the SAP in force, whether a reason is needed now. */
export async function outcomesPage(ctx: AppContext, studyId: string) {
  const [history, sap, enrolled] = await Promise.all([
    outcomeHistory(ctx, studyId),
    sapInForce(ctx.db, studyId),
    studyHasParticipant(ctx.db, studyId),
  ]);
  return { history, sap, reasonRequired: enrolled };
}
