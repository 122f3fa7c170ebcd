/**
 * A participant's disposition (issue 18, ADR 0033): screening, screen failure, enrolled, randomized, discontinued,
 * completed. Each change is a `participant.disposition_set` entry (the reason only as its salted hash), a
 * participant_dispositions row, the participants.disposition column and an audit event, in one transaction.
 */
import { and, asc, eq, sql } from "drizzle-orm";
import { type Disposition, DISPOSITIONS } from "../../anchoring/log/payloads.ts";
import { saltedTextHash } from "../../anchoring/log/text-hash.ts";
import type { DbOrTx } from "../../db/client.ts";
import { participantDispositions, participants, sites, users } from "../../db/schema/index.ts";
import { audit } from "../audit-trail/record-event.server.ts";
import { appendEntry } from "../log/append-entry.server.ts";
import { auditActor, auditDetail, payloadActor, rowTokenColumns, tokenLabel } from "../platform/attribution.ts";
import type { AppContext } from "../platform/context.server.ts";
import { ServiceError } from "../platform/errors.server.ts";
import { can, type Principal } from "../platform/permissions.server.ts";
import { todayIn } from "../records/records.server.ts";
import { committedList } from "../randomization/list-state.server.ts";
import { refuseUnderDatabaseLock } from "../database-lock/refuse-under-lock.server.ts";
import { requireSiteAction } from "../studies/delegations.server.ts";
import { getStudyOrThrow } from "../studies/studies.server.ts";

export { DISPOSITIONS, type Disposition };

/** Each disposition in words, for the portal and error messages. */
export const DISPOSITION_LABELS: Record<Disposition, string> = {
  screening: "Screening",
  screen_failed: "Screen failure",
  enrolled: "Enrolled",
  randomized: "Randomized",
  discontinued: "Discontinued",
  completed: "Completed",
};

/**
 * The changes allowed from each disposition. Screen failure, discontinuation and completion are final (ADR 0033):
 * a participant screened again gets a new subject code, as in REDCap and OpenClinica; a wrong final disposition is
 * a data error handled outside the portal, not reversed with a click.
 */
export const TRANSITIONS: Record<Disposition, readonly Disposition[]> = {
  screening: ["screen_failed", "enrolled"],
  enrolled: ["randomized", "discontinued", "completed"],
  randomized: ["discontinued", "completed"],
  screen_failed: [],
  discontinued: [],
  completed: [],
};

/** The dispositions that need a reason. */
export const NEEDS_REASON: readonly Disposition[] = ["screen_failed", "discontinued"];

const invalid = (message: string, field: string): never => {
  throw new ServiceError("invalid", message, field);
};

/** Inside the caller's transaction: the entry, the row, the participant's column and the audit event. */
export async function writeDisposition(
  tx: DbOrTx,
  ctx: AppContext,
  principal: Principal,
  study: { id: string; code: string },
  p: { id: string; siteId: string; subjectCode: string },
  change: { status: Disposition; previous: Disposition | null; date: string; reason: string | null },
) {
  const e = await appendEntry(tx, ctx.crypto, study, "participant.disposition_set", (salt) => ({
    subject: p.subjectCode,
    status: change.status,
    previous: change.previous,
    date: change.date,
    reasonHash: change.reason === null ? null : saltedTextHash(ctx.crypto, salt, change.reason),
    ...payloadActor(principal),
  }));
  const [row] = await tx
    .insert(participantDispositions)
    .values({
      studyId: study.id,
      participantId: p.id,
      status: change.status,
      previous: change.previous,
      effectiveDate: change.date,
      reason: change.reason,
      actorUserId: principal.userId,
      ...rowTokenColumns(principal),
      entryId: e.id,
    })
    .returning({ id: participantDispositions.id });
  await tx.update(participants).set({ disposition: change.status }).where(eq(participants.id, p.id));
  await audit(tx, {
    action: "participant.disposition",
    ...auditActor(principal),
    studyId: study.id,
    siteId: p.siteId,
    participantId: p.id,
    detail: auditDetail(principal, { status: change.status, previous: change.previous, entry: e.id }),
  });
  return { id: row.id, entryId: e.id };
}

/** Check a disposition's date: YYYY-MM-DD, a real calendar date, not after today at the site. */
export function checkDispositionDate(date: unknown, today: string): string {
  const d = String(date ?? "").trim();
  if (!/^\d{4}-\d{2}-\d{2}$/.test(d) || Number.isNaN(Date.parse(`${d}T00:00:00Z`)))
    invalid("date: give the date the change took effect as YYYY-MM-DD", "date");
  if (new Date(`${d}T00:00:00Z`).toISOString().slice(0, 10) !== d) invalid(`date: ${d} is not a calendar date`, "date");
  if (d > today) invalid(`date: ${d} is in the future (today at the site is ${today})`, "date");
  return d;
}

async function siteZone(ctx: AppContext, siteId: string) {
  const [s] = await ctx.db.select({ timeZone: sites.timeZone }).from(sites).where(eq(sites.id, siteId));
  return s?.timeZone ?? "UTC";
}

/** Set a participant's disposition (permission participants.enroll at the participant's site). */
export async function setDisposition(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  subject: string,
  input: { status?: unknown; date?: unknown; reason?: unknown },
) {
  const study = await getStudyOrThrow(ctx, studyCode);
  const [p] = await ctx.db
    .select()
    .from(participants)
    .where(and(eq(participants.studyId, study.id), eq(participants.subjectCode, String(subject ?? "").toUpperCase())));
  if (!p || !can(principal, "records.read", { studyId: study.id, siteId: p.siteId }))
    throw new ServiceError("not_found", `no subject ${subject} in ${study.code}`, "subject");
  await requireSiteAction(ctx, principal, "participants.enroll", { studyId: study.id, siteId: p.siteId });
  const status = String(input.status ?? "") as Disposition;
  if (!DISPOSITIONS.includes(status))
    invalid(
      `status: choose one of ${DISPOSITIONS.map((d) => DISPOSITION_LABELS[d].toLowerCase()).join(", ")}`,
      "status",
    );
  const date = checkDispositionDate(input.date, todayIn(await siteZone(ctx, p.siteId)));
  const reasonText = String(input.reason ?? "").trim();
  if (reasonText.length > 2000) invalid("reason: keep the reason under 2000 characters", "reason");
  if (NEEDS_REASON.includes(status) && !reasonText)
    invalid(
      `reason: give the reason for the ${status === "discontinued" ? "discontinuation" : "screen failure"}`,
      "reason",
    );
  const reason = reasonText || null;
  // Under a committed randomization list "randomized" means an allocation: only randomizeParticipant sets it.
  if (status === "randomized" && (await committedList(ctx.db, study.id)))
    throw new ServiceError(
      "conflict",
      `status: ${study.code} has a committed randomization list; randomize the participant from the randomization ` +
        "list (the Randomize button), which sets this disposition",
      "status",
    );
  return ctx.db.transaction(async (tx) => {
    // The study's row first (FOR SHARE): a database lock either committed before (refused) or waits for this.
    await refuseUnderDatabaseLock(tx, study.id, "setting a disposition");
    // The participant's row, locked: two changes at once are applied one after the other, each checked.
    await tx.execute(sql`SELECT 1 FROM participants WHERE id = ${p.id} FOR UPDATE`);
    const [cur] = await tx
      .select({ disposition: participants.disposition })
      .from(participants)
      .where(eq(participants.id, p.id));
    const previous = cur.disposition as Disposition;
    if (!TRANSITIONS[previous].includes(status)) {
      const allowed = TRANSITIONS[previous].map((d) => DISPOSITION_LABELS[d].toLowerCase());
      throw new ServiceError(
        "conflict",
        `status: ${p.subjectCode} is ${DISPOSITION_LABELS[previous].toLowerCase()}; ` +
          (allowed.length ? `it can become ${allowed.join(" or ")}` : "that disposition is final"),
        "status",
      );
    }
    const out = await writeDisposition(tx, ctx, principal, study, p, { status, previous, date, reason });
    return { subject: p.subjectCode, status, previous, date, entry: { id: out.entryId, status: "pending" as const } };
  });
}

/** A participant's current disposition (participants.disposition). */
export async function currentDisposition(db: DbOrTx, participantId: string): Promise<Disposition> {
  const [r] = await db
    .select({ d: participants.disposition })
    .from(participants)
    .where(eq(participants.id, participantId));
  return (r?.d ?? "enrolled") as Disposition;
}

export interface DispositionChange {
  id: string;
  status: Disposition;
  previous: Disposition | null;
  date: string;
  reason: string | null;
  by: string;
  at: Date;
  entryId: string;
}

/** A participant's dispositions, oldest first, each with who set it (a user's name or the API token). */
export async function dispositionHistory(db: DbOrTx, participantId: string): Promise<DispositionChange[]> {
  const rows = await db
    .select({ d: participantDispositions, name: users.fullName, email: users.email })
    .from(participantDispositions)
    .leftJoin(users, eq(users.id, participantDispositions.actorUserId))
    .where(eq(participantDispositions.participantId, participantId))
    .orderBy(asc(participantDispositions.createdAt), asc(participantDispositions.id));
  return rows.map(({ d, name, email }) => ({
    id: d.id,
    status: d.status,
    previous: d.previous,
    date: d.effectiveDate,
    reason: d.reason,
    by: d.actorTokenId
      ? tokenLabel({ id: d.actorTokenId, name: d.actorTokenName ?? "" })
      : (name ?? email ?? "unknown user"),
    at: d.createdAt,
    entryId: d.entryId,
  }));
}
