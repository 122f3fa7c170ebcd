/**
 * The audit trail: security and data events. Never pass personal data or secrets in `detail`.
 * Every event is sealed (ADR 0016): its row and its `audit.event` ledger entry commit together, in the caller's
 * transaction when given one (a savepoint), in a transaction of their own otherwise.
 */
import { and, eq, gte, isNull, lt, sql } from "drizzle-orm";
import type { Db, DbOrTx } from "../../db/client.ts";
import type { NewAuditEvent } from "../../db/queries/audit.ts";
import { auditEvents } from "../../db/schema/index.ts";
import { accessDetail } from "../data-sharing/access-detail.server.ts";
import { principalToken, type TokenRef, tokenLabel } from "../platform/attribution.ts";
import type { Principal } from "../platform/permissions.server.ts";
import { insertSealedEvent } from "./seal-event.server.ts";

export async function audit(db: DbOrTx, e: NewAuditEvent): Promise<void> {
  await db.transaction(async (tx) => {
    await insertSealedEvent(tx, e);
  });
}

const MINUTE = 60_000;
const HOUR = 3_600_000;

/**
 * Failed sign-ins for unknown accounts, and sign-ins refused by the back-off (ADR 0022) for any account known or
 * not, aggregated per source address, minute and reason (ADR 0016): the first of a source in a minute is sealed at
 * once (count 1); the further ones are counted here and sealed as one event (`aggregated`, with their count and
 * the known accounts they were for) when the minute closes: at the next such attempt after it, from any source,
 * or by a timer a moment after it ends. A known and an unknown e-mail cost the same (one sealed write for the
 * first, an in-memory count after). Each process counts its own; a crash loses at most that minute's remainder.
 */
type Reason = "unknown_account" | "throttled";
const pending = new Map<
  string,
  { db: Db; ip: string | null; minute: number; more: number; reason: Reason; accounts: Set<string>; anon: boolean }
>();
let timer: ReturnType<typeof setTimeout> | null = null;
/** Counts are kept per database (one per process in a deployment; the tests open many in one process). */
const databaseNumbers = new WeakMap<Db, number>();
let databasesSeen = 0;
const databaseNumber = (db: Db) => {
  let n = databaseNumbers.get(db);
  if (n === undefined) {
    n = ++databasesSeen;
    databaseNumbers.set(db, n);
  }
  return n;
};
/** At most this many account ids are named in one aggregated event. */
const MAX_NAMED = 20;

export async function auditUnknownAccountSignIn(
  db: Db,
  ip: string | null,
  at: Date = new Date(),
  reason: Reason = "unknown_account",
): Promise<void> {
  await aggregateSignIn(db, ip, at, reason, null);
}

/** A sign-in refused by the back-off (ADR 0022), for `userId` (null: the e-mail matches no account). */
export async function auditThrottledSignIn(
  db: Db,
  ip: string | null,
  userId: string | null,
  at: Date = new Date(),
): Promise<void> {
  await aggregateSignIn(db, ip, at, "throttled", userId);
}

async function aggregateSignIn(db: Db, ip: string | null, at: Date, reason: Reason, userId: string | null) {
  await flushAuditAggregates(at);
  const minute = Math.floor(at.getTime() / MINUTE) * MINUTE;
  const key = `${databaseNumber(db)}\n${ip ?? ""}\n${minute}\n${reason}`;
  const open = pending.get(key);
  if (open) {
    open.more++;
    if (userId === null) open.anon = true;
    else if (open.accounts.size < MAX_NAMED) open.accounts.add(userId);
    return;
  }
  pending.set(key, { db, ip, minute, more: 0, reason, accounts: new Set(), anon: false });
  if (!timer) {
    const wait = Math.min(Math.max(minute + MINUTE - Date.now(), 0), MINUTE) + 1000;
    timer = setTimeout(() => {
      timer = null;
      flushAuditAggregates().catch((err) => console.error(`audit trail: ${(err as Error).message}`));
    }, wait);
    timer.unref?.();
  }
  await audit(db, {
    action: "login",
    outcome: "failure",
    actorUserId: userId,
    actorLabel: null,
    ip,
    at,
    detail: { reason, count: 1, minute: new Date(minute).toISOString() },
  });
}

/** Seal the counts of the minutes that have closed by `now` (all of them when `now` is omitted and time passed). */
export async function flushAuditAggregates(now: Date = new Date()): Promise<void> {
  for (const [key, b] of [...pending]) {
    if (b.minute + MINUTE > now.getTime()) continue;
    pending.delete(key);
    if (b.more === 0) continue;
    const accounts = [...b.accounts].sort();
    // One minute's count that cannot be written (its database closed or unreachable) is reported and does not
    // stop the others, nor fail the sign-in that triggered the flush.
    await audit(b.db, {
      action: "login",
      outcome: "failure",
      // Named as the actor when every attempt counted here was for that one account.
      actorUserId: accounts.length === 1 && !b.anon ? accounts[0] : null,
      actorLabel: null,
      ip: b.ip,
      at: new Date(Math.max(now.getTime(), b.minute + MINUTE)),
      detail: {
        reason: b.reason,
        aggregated: true,
        count: b.more,
        minute: new Date(b.minute).toISOString(),
        ...(accounts.length > 0 ? { accounts } : {}),
      },
    }).catch((err) =>
      console.error(
        `audit trail: ${b.more} sign-in failures of ${new Date(b.minute).toISOString()} not written: ${
          (err as Error).message
        }`,
      ),
    );
  }
  if (pending.size > 0 && !timer) {
    timer = setTimeout(() => {
      timer = null;
      flushAuditAggregates().catch((err) => console.error(`audit trail: ${(err as Error).message}`));
    }, MINUTE + 1000);
    timer.unref?.();
  }
}

/**
 * A read of a participant's data (a view, a download), coalesced per reader (user, or API token: ADR 0067),
 * participant, kind and hour (ADR 0016): the first read in the hour is sealed, later ones in the same hour are
 * covered by it. Returns whether an event was written. Serialized per key with a transaction-scoped advisory lock,
 * so replicas do not both write.
 */
export async function auditRead(
  db: DbOrTx,
  e: NewAuditEvent & { participantId: string; at?: Date } & (
      | { actorUserId: string; token?: undefined }
      | { actorUserId?: null; token: TokenRef }
    ),
): Promise<boolean> {
  const { token, ...row } = e;
  const at = e.at ?? new Date();
  const hour = new Date(Math.floor(at.getTime() / HOUR) * HOUR);
  const reader = token ? `token:${token.id}` : (e.actorUserId as string);
  return db.transaction(async (tx) => {
    const key = `audit-read\n${reader}\n${e.participantId}\n${e.action}\n${hour.toISOString()}`;
    await tx.execute(sql`SELECT pg_advisory_xact_lock(hashtextextended(${key}, 0))`);
    const [seen] = await tx
      .select({ id: auditEvents.id })
      .from(auditEvents)
      .where(
        and(
          token
            ? and(isNull(auditEvents.actorUserId), sql`${auditEvents.detail}->'token'->>'id' = ${token.id}`)
            : eq(auditEvents.actorUserId, e.actorUserId as string),
          gte(auditEvents.at, hour),
          lt(auditEvents.at, new Date(hour.getTime() + HOUR)),
          eq(auditEvents.participantId, e.participantId),
          eq(auditEvents.action, e.action),
        ),
      )
      .limit(1);
    if (seen) return false;
    await insertSealedEvent(
      tx,
      token
        ? {
            ...row,
            actorUserId: null,
            actorLabel: row.actorLabel ?? tokenLabel(token),
            detail: { ...((row.detail as Record<string, unknown> | undefined) ?? {}), token },
            at,
          }
        : { ...row, at },
    );
    return true;
  });
}

/**
 * A read by whoever `principal` is: a user by id, an API token by its id and name (ADR 0067). A user's event stores
 * the role (and site code) of the membership the read was made under (`accessDetail`), so the participant's list
 * shows who the reader was that day.
 */
export async function auditPrincipalRead(
  db: DbOrTx,
  principal: Principal,
  e: {
    action: string;
    studyId: string;
    siteId: string | null;
    participantId: string;
    at?: Date;
    detail?: Record<string, unknown>;
  },
): Promise<boolean> {
  const token = principalToken(principal);
  if (token) return auditRead(db, { ...e, token });
  if (!principal.userId) return false;
  const detail = { ...(e.detail ?? {}), ...accessDetail(principal, e.studyId, e.siteId) };
  return auditRead(db, { ...e, actorUserId: principal.userId, detail });
}
