/**
 * Sign-in back-off (ADR 0022): per account and source, and per source alone, counted atomically in SQL before a
 * password is checked. Past a few free failures each further attempt must wait (30 s, doubling, at most 15 min);
 * an attempt inside the wait is refused without checking the password. Keys are built from the e-mail address
 * as typed (hashed), so an unknown address is throttled exactly like a real one: the answers reveal nothing.
 * Nothing here locks an account: a stranger slows only their own guessing from their own source.
 */
import { eq, like, sql } from "drizzle-orm";
import { toHex } from "../../anchoring/log/bytes.ts";
import type { DbOrTx } from "../../db/client.ts";
import { signInThrottle } from "../../db/schema/index.ts";
import type { AppContext } from "../platform/context.server.ts";

export interface BackoffRule {
  /** Failures allowed before any wait. */
  free: number;
  /** The first wait, in seconds; it doubles with every further failure. */
  baseS: number;
  /** The longest wait, in seconds. */
  capS: number;
}

/** One account from one source: a person mistyping gets 5 tries, then 30 s, 1 min, 2 min ... 15 min. */
export const PAIR_RULE: BackoffRule = { free: 5, baseS: 30, capS: 15 * 60 };
/** One source across accounts (password spraying): more room for a shared address (NAT), same back-off. */
export const SOURCE_RULE: BackoffRule = { free: 20, baseS: 30, capS: 15 * 60 };
/** Counters forget failures after this long without one. */
const FORGET_AFTER = "24 hours";

/** The wait in seconds after `failures` consecutive failures under `rule` (0 below the free allowance). */
export function backoffSeconds(rule: BackoffRule, failures: number): number {
  if (failures < rule.free) return 0;
  return Math.min(rule.capS, rule.baseS * 2 ** (failures - rule.free));
}

export interface ThrottleKeys {
  pair: string;
  source: string;
}

/** The keys of one sign-in attempt: the e-mail address as typed (lower-cased, hashed) and the source address. */
export function throttleKeys(ctx: AppContext, email: string, ip: string | null): ThrottleKeys {
  const who = toHex(ctx.crypto.sha256(new TextEncoder().encode(email.trim().toLowerCase()))).slice(0, 32);
  const from = ip ?? "unknown";
  return { pair: `pw:${who}|${from}`, source: `src:${from}` };
}

/**
 * Count one attempt against `key` unless it is inside its wait. Returns the failures counted so far (this one
 * included), or null when the attempt must be refused. One statement: parallel attempts are serialised on the
 * row, so exactly `free` attempts pass a burst.
 */
async function reserve(db: DbOrTx, key: string, rule: BackoffRule): Promise<number | null> {
  const t = signInThrottle;
  const n = sql`(CASE WHEN ${t.updatedAt} < now() - interval '${sql.raw(FORGET_AFTER)}' THEN 1
    ELSE ${t.failures} + 1 END)`;
  const wait = (count: ReturnType<typeof sql>) =>
    sql`now() + make_interval(secs => CASE WHEN ${count} < ${rule.free} THEN 0
      ELSE least(${rule.capS}::float8, ${rule.baseS}::float8 * power(2::float8, ${count} - ${rule.free})) END)`;
  const rows = await db
    .insert(t)
    .values({ key, failures: 1, blockedUntil: wait(sql`1`), updatedAt: sql`now()` })
    .onConflictDoUpdate({
      target: t.key,
      set: { failures: n, blockedUntil: wait(n), updatedAt: sql`now()` },
      setWhere: sql`${t.blockedUntil} <= now()`,
    })
    .returning({ failures: t.failures });
  return rows[0]?.failures ?? null;
}

/** Seconds until `key` accepts an attempt again (for the answer's Retry-After). */
async function secondsLeft(db: DbOrTx, key: string): Promise<number> {
  const [row] = await db
    .select({ s: sql<number>`ceil(extract(epoch from (${signInThrottle.blockedUntil} - now())))::int` })
    .from(signInThrottle)
    .where(eq(signInThrottle.key, key));
  return Math.max(1, Number(row?.s ?? 1));
}

/**
 * Reserve an attempt under both keys (source first, so that a refused pair attempt still counts for the
 * source). Returns null when allowed, or the seconds to wait.
 */
export async function reserveSignInAttempt(db: DbOrTx, keys: ThrottleKeys): Promise<number | null> {
  if ((await reserve(db, keys.source, SOURCE_RULE)) === null) return secondsLeft(db, keys.source);
  if ((await reserve(db, keys.pair, PAIR_RULE)) === null) return secondsLeft(db, keys.pair);
  return null;
}

/** Forget an account's back-off from every source (a password reset or an admin's unlock). */
export async function clearAccountThrottle(ctx: AppContext, db: DbOrTx, email: string): Promise<void> {
  const prefix = throttleKeys(ctx, email, null).pair.split("|")[0];
  await db.delete(signInThrottle).where(like(signInThrottle.key, `${prefix}|%`));
}

/** A sign-in succeeded: the pair starts afresh; the source gets back the one attempt counted for it. */
export async function signInSucceeded(db: DbOrTx, keys: ThrottleKeys): Promise<void> {
  await db.delete(signInThrottle).where(eq(signInThrottle.key, keys.pair));
  await db
    .update(signInThrottle)
    .set({ failures: sql`greatest(${signInThrottle.failures} - 1, 0)` })
    .where(eq(signInThrottle.key, keys.source));
}
