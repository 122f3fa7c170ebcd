/**
 * The hard account lock (ADR 0022, 21 CFR 11.300(d)): whoever sends wrong second-factor codes already has the
 * password, so after MFA_LOCK_AFTER wrong codes across sign-in attempts the account is locked until an admin
 * (`trialseal users unlock`) or a password reset lifts it, every session ends, and the user and every platform
 * administrator are told at once through the outbox. Also the warning sent when wrong passwords pile up.
 */
import { and, eq, isNull } from "drizzle-orm";
import { findUserByEmail } from "../../db/queries/users.ts";
import type { DbOrTx } from "../../db/client.ts";
import { outbox, sessions, users } from "../../db/schema/index.ts";
import type { AppContext } from "../platform/context.server.ts";
import { ServiceError } from "../platform/errors.server.ts";
import { audit } from "../audit-trail/record-event.server.ts";
import { clearAccountThrottle } from "./sign-in-throttle.server.ts";

/** Wrong second-factor codes in a row (across sign-in attempts) that lock the account. */
export const MFA_LOCK_AFTER = 5;
/** Wrong passwords in a row (from every source) after which the user and admins are warned (no lock). */
export const PASSWORD_ALERT_AFTER = 20;

export const LOCKED_MESSAGE =
  "this account is locked after too many wrong verification codes; reset your password or ask an administrator";

async function notify(tx: DbOrTx, user: { email: string }, kind: string, subject: string, body: string) {
  const admins = await tx
    .select({ email: users.email })
    .from(users)
    .where(and(eq(users.platformAdmin, true), eq(users.status, "active")));
  const to = [...new Set([user.email, ...admins.map((a) => a.email)])];
  await tx
    .insert(outbox)
    .values(to.map((toAddress) => ({ channel: "email" as const, toAddress, kind, subject, body })));
}

/**
 * Lock the account (once: the first caller wins and notifies; later callers do nothing). Ends every session.
 * Returns whether this call locked it.
 */
export async function lockAccount(
  ctx: AppContext,
  user: { id: string; email: string },
  detail: { reason: "mfa_failures"; failures: number },
  ip: string | null,
): Promise<boolean> {
  return ctx.db.transaction(async (tx) => {
    const now = new Date();
    const [row] = await tx
      .update(users)
      .set({ lockedAt: now })
      .where(and(eq(users.id, user.id), isNull(users.lockedAt)))
      .returning({ id: users.id });
    if (!row) return false;
    await tx
      .update(sessions)
      .set({ revokedAt: now })
      .where(and(eq(sessions.userId, user.id), isNull(sessions.revokedAt)));
    await notify(
      tx,
      user,
      "account_locked",
      "TrialSeal account locked: wrong verification codes",
      `The TrialSeal account ${user.email} was locked at ${now.toISOString()} after ${detail.failures} wrong ` +
        `verification codes in a row${ip ? ` (last from ${ip})` : ""}.\n\n` +
        "Whoever entered them knew the account's password. If that was not you, the password is compromised.\n" +
        "To unlock: reset the password (the 'Forgot your password?' link), or an administrator runs\n" +
        `  trialseal users unlock --email ${user.email}\n`,
    );
    await audit(tx, { action: "account.lock", outcome: "failure", actorUserId: user.id, ip, detail });
    return true;
  });
}

/** Warn the user and the admins that wrong passwords pile up on the account (the account stays usable). */
export async function warnPasswordFailures(
  ctx: AppContext,
  user: { id: string; email: string },
  failures: number,
  ip: string | null,
) {
  await ctx.db.transaction(async (tx) => {
    await notify(
      tx,
      user,
      "sign_in_alert",
      "TrialSeal: repeated failed sign-ins",
      `${failures} sign-ins in a row to the TrialSeal account ${user.email} failed with a wrong password` +
        `${ip ? ` (last from ${ip})` : ""}.\nIf that was not you, someone may be guessing the password: ` +
        "choose a long, unique one (account page, or 'Forgot your password?').\n",
    );
    await audit(tx, {
      action: "login.alert",
      outcome: "failure",
      actorUserId: user.id,
      ip,
      detail: { reason: "password_failures", failures },
    });
  });
}

/** An administrator lifts a lock (and the failure counters). */
export async function unlockAccount(ctx: AppContext, email: string, actorId: string | null) {
  const user = await findUserByEmail(ctx.db, email);
  if (!user) throw new ServiceError("not_found", `no user with email ${email.trim().toLowerCase()}`, "email");
  const wasLocked = user.lockedAt !== null;
  await ctx.db.transaction(async (tx) => {
    await tx
      .update(users)
      .set({ lockedAt: null, mfaFailures: 0, failedLogins: 0, lockedUntil: null })
      .where(eq(users.id, user.id));
    await audit(tx, { action: "account.unlock", actorUserId: actorId, detail: { user: user.id, wasLocked } });
    await clearAccountThrottle(ctx, tx, user.email);
  });
  return { email: user.email, wasLocked };
}
