/**
 * Sign-in and sessions (OWASP ASVS V2/V3): argon2id passwords, lockout with back-off after repeated
 * failures, server-side sessions (token hash in the database) with idle and absolute timeouts, a TOTP second
 * factor (required for admins, investigators and regulators), session rotation at every privilege step.
 */
import { generateTOTP, getTOTPAuthUri, verifyTOTP } from "@epic-web/totp";
import { and, eq, isNull, lt, ne, or, sql } from "drizzle-orm";
import { newToken, tokenHash } from "./secret-tokens.server.ts";
import { findUserByEmail, findUserById, activeMemberships } from "../../db/queries/users.ts";
import { findLiveSession, insertSession, revokeSession, touchSession } from "../../db/queries/sessions.ts";
import { outbox, passwordResets, sessions, users } from "../../db/schema/index.ts";
import type { Role } from "../../db/schema/index.ts";
import type { AppContext } from "../platform/context.server.ts";
import { audit, auditThrottledSignIn, auditUnknownAccountSignIn } from "../audit-trail/record-event.server.ts";
import { ServiceError } from "../platform/errors.server.ts";
import { checkPasswordRules, verifyPassword, hashPassword } from "./passwords.server.ts";
import { decryptField, encryptField } from "../participants/personal-data.server.ts";
import type { Principal } from "../platform/permissions.server.ts";
import {
  clearAccountThrottle,
  reserveSignInAttempt,
  signInSucceeded,
  throttleKeys,
} from "./sign-in-throttle.server.ts";
import {
  LOCKED_MESSAGE,
  MFA_LOCK_AFTER,
  PASSWORD_ALERT_AFTER,
  lockAccount,
  warnPasswordFailures,
} from "./account-lock.server.ts";

export interface RequestMeta {
  ip: string | null;
  userAgent: string | null;
}

/** Roles whose holders must use a second factor. */
export const MFA_ROLES: readonly Role[] = [
  "admin",
  "investigator",
  "regulator",
  // Issue 20: a stolen password of an unblinded role would unblind the study (ADR 0053).
  "unblinded_statistician",
  "unblinded_pharmacist",
  // Issue 21: the depot manager sees kit types (ADR 0057).
  "depot_manager",
  // Issue 22: the data access committee releases participants' data to outside researchers (ADR 0069).
  "data_access_committee",
];
const TOTP = { period: 30, digits: 6, algorithm: "SHA-1" } as const; // what authenticator apps support

let dummyHash: Promise<string> | null = null;

export type LoginResult = { token: string; userId: string; stage: "full" | "mfa" | "enroll" };

async function needsMfa(ctx: AppContext, user: { id: string; platformAdmin: boolean }) {
  if (user.platformAdmin) return true;
  return (await activeMemberships(ctx.db, user.id)).some((m) => MFA_ROLES.includes(m.role));
}

/**
 * The one answer for an unknown e-mail, a wrong password, a disabled and a locked account (ADR 0022): it tells
 * a stranger nothing about which accounts exist or are locked.
 */
export const SIGN_IN_REFUSED =
  "email or password is incorrect (or the account is locked: then reset your password or ask an administrator)";

/**
 * First step of sign-in. Every attempt is counted in SQL before the password is checked: against the account and
 * source and the source alone (back-off, refused while waiting, answer "rate_limited" for unknown and real
 * e-mails alike) and against the account (`failed_logins`, which warns the user and admins but never locks).
 */
export async function login(ctx: AppContext, email: string, password: string, meta: RequestMeta): Promise<LoginResult> {
  const refused = () => new ServiceError("unauthenticated", SIGN_IN_REFUSED);
  const keys = throttleKeys(ctx, email, meta.ip);
  const wait = await reserveSignInAttempt(ctx.db, keys);
  const user = await findUserByEmail(ctx.db, email);
  if (wait !== null) {
    // Aggregated per source and minute for known and unknown e-mails alike (ADR 0016, ADR 0022): refusals cost no
    // password check, so one event each would let a stranger grow the log without bound, and timing would differ.
    await auditThrottledSignIn(ctx.db, meta.ip, user?.id ?? null);
    throw new ServiceError("rate_limited", `too many failed sign-ins; wait ${wait} s and try again`);
  }
  if (!user) {
    // Spend the same time as a real check, so response time does not reveal which emails exist.
    dummyHash ??= hashPassword("not-a-real-password-0000");
    await verifyPassword(await dummyHash, password);
    // Aggregated per source and minute (ADR 0016): guessing at unknown accounts cannot grow the log without bound.
    await auditUnknownAccountSignIn(ctx.db, meta.ip);
    throw refused();
  }
  const now = new Date();
  const [counted] = await ctx.db
    .update(users)
    .set({ failedLogins: sql`${users.failedLogins} + 1` })
    .where(eq(users.id, user.id))
    .returning({ failures: users.failedLogins });
  const passwordOk = await verifyPassword(user.passwordHash, password);
  const reason = user.status !== "active" ? "disabled" : user.lockedAt ? "locked" : passwordOk ? null : "bad_password";
  if (reason) {
    await audit(ctx.db, {
      action: "login",
      outcome: "failure",
      actorUserId: user.id,
      ip: meta.ip,
      detail: { reason, failures: counted.failures },
    });
    if (reason === "bad_password" && counted.failures === PASSWORD_ALERT_AFTER)
      await warnPasswordFailures(ctx, user, counted.failures, meta.ip);
    throw refused();
  }
  const stage: LoginResult["stage"] = user.totpEnabledAt ? "mfa" : (await needsMfa(ctx, user)) ? "enroll" : "full";
  const token = newToken();
  await ctx.db.transaction(async (tx) => {
    await tx.update(users).set({ failedLogins: 0 }).where(eq(users.id, user.id));
    await insertSession(tx, {
      tokenHash: tokenHash(ctx.crypto, token),
      userId: user.id,
      expiresAt: new Date(now.getTime() + (stage === "mfa" ? 10 * 60_000 : ctx.env.sessionTtlMs)),
      ip: meta.ip,
      userAgent: meta.userAgent?.slice(0, 300) ?? null,
      stage,
    });
    await audit(tx, { action: "login", outcome: "success", actorUserId: user.id, ip: meta.ip, detail: { stage } });
  });
  await signInSucceeded(ctx.db, keys);
  return { token, userId: user.id, stage };
}

export async function principalForUser(
  ctx: AppContext,
  userId: string,
): Promise<(Principal & { email: string; fullName: string; totpEnabled: boolean }) | null> {
  const user = await findUserById(ctx.db, userId);
  if (user?.status !== "active" || user.lockedAt) return null;
  const ms = await activeMemberships(ctx.db, user.id);
  return {
    kind: "user",
    userId: user.id,
    label: user.email,
    email: user.email,
    fullName: user.fullName,
    platformAdmin: user.platformAdmin,
    totpEnabled: !!user.totpEnabledAt,
    memberships: ms.map((m) => ({
      role: m.role,
      studyId: m.studyId,
      studyCode: m.studyCode,
      siteId: m.siteId,
      siteCode: m.siteCode,
    })),
  };
}

/** A live session (not revoked, not past its absolute expiry, not idle longer than SESSION_IDLE_MINUTES). */
export async function liveSession(ctx: AppContext, token: string) {
  const now = new Date();
  const s = await findLiveSession(ctx.db, tokenHash(ctx.crypto, token), now);
  if (!s) return null;
  if (now.getTime() - s.lastSeenAt.getTime() > ctx.env.sessionIdleMs) {
    await revokeSession(ctx.db, s.tokenHash, now);
    await audit(ctx.db, { action: "session.expire", actorUserId: s.userId, detail: { reason: "idle" } });
    return null;
  }
  if (now.getTime() - s.lastSeenAt.getTime() > 60_000) await touchSession(ctx.db, s.id, now);
  return s;
}

/** The principal behind a fully signed-in session token, or null. */
export async function sessionPrincipal(ctx: AppContext, token: string) {
  const s = await liveSession(ctx, token);
  if (s?.stage !== "full") return null;
  const p = await principalForUser(ctx, s.userId);
  return p ? { ...p, sessionId: s.id } : null;
}

export async function logout(ctx: AppContext, token: string, meta: RequestMeta) {
  const hash = tokenHash(ctx.crypto, token);
  const s = await findLiveSession(ctx.db, hash, new Date());
  await revokeSession(ctx.db, hash, new Date());
  if (s) await audit(ctx.db, { action: "logout", actorUserId: s.userId, ip: meta.ip });
}

/** Replace a session by a new one at a higher stage (new token: no session fixation across privilege steps). */
async function rotate(
  ctx: AppContext,
  s: { id: string; userId: string; ip: string | null; userAgent: string | null },
  stage: "full" | "enroll",
): Promise<string> {
  const token = newToken();
  await ctx.db.transaction(async (tx) => {
    await tx.update(sessions).set({ revokedAt: new Date() }).where(eq(sessions.id, s.id));
    await insertSession(tx, {
      tokenHash: tokenHash(ctx.crypto, token),
      userId: s.userId,
      expiresAt: new Date(Date.now() + ctx.env.sessionTtlMs),
      ip: s.ip,
      userAgent: s.userAgent,
      stage,
    });
  });
  return token;
}

function secretAad(userId: string) {
  return `users.totp_secret:${userId}`;
}

/** Check a TOTP code against the user's secret; a code (time step) is accepted once only. */
async function checkCode(ctx: AppContext, userId: string, secret: string, code: string): Promise<boolean> {
  if (!/^\d{6}$/.test(code)) return false;
  const r = await verifyTOTP({ otp: code, secret, ...TOTP, window: 1 });
  if (!r) return false;
  const step = Math.floor(Date.now() / 1000 / TOTP.period) + r.delta;
  // No replay: one statement, so two parallel requests with the same code cannot both pass.
  const used = await ctx.db
    .update(users)
    .set({ totpLastStep: step })
    .where(and(eq(users.id, userId), or(isNull(users.totpLastStep), lt(users.totpLastStep, step))))
    .returning({ id: users.id });
  return used.length === 1;
}

/**
 * Check a second-factor code for `user`, counting it first in one SQL statement (across sign-in attempts and
 * e-signature re-authentications, so parallel requests cannot slip past the limit). The MFA_LOCK_AFTER-th wrong
 * code in a row locks the account and notifies the user and the admins; a right code resets the count.
 */
async function secondFactor(
  ctx: AppContext,
  user: { id: string; email: string; totpSecretEnc: Uint8Array },
  code: string,
  meta: RequestMeta,
  action: "login.mfa" | "signature.reauth",
): Promise<void> {
  const [counted] = await ctx.db
    .update(users)
    .set({ mfaFailures: sql`${users.mfaFailures} + 1` })
    .where(and(eq(users.id, user.id), isNull(users.lockedAt)))
    .returning({ failures: users.mfaFailures });
  if (!counted || counted.failures > MFA_LOCK_AFTER) {
    await audit(ctx.db, {
      action,
      outcome: "failure",
      actorUserId: user.id,
      ip: meta.ip,
      detail: { reason: "locked" },
    });
    throw new ServiceError("locked", LOCKED_MESSAGE, "code");
  }
  const secret = decryptField(ctx.env.dataKey, user.totpSecretEnc, secretAad(user.id));
  if (await checkCode(ctx, user.id, secret, code.trim())) {
    await ctx.db.update(users).set({ mfaFailures: 0 }).where(eq(users.id, user.id));
    return;
  }
  await audit(ctx.db, {
    action,
    outcome: "failure",
    actorUserId: user.id,
    ip: meta.ip,
    detail: { reason: "bad_code", failures: counted.failures },
  });
  if (counted.failures >= MFA_LOCK_AFTER) {
    await lockAccount(ctx, user, { reason: "mfa_failures", failures: counted.failures }, meta.ip);
    throw new ServiceError("locked", LOCKED_MESSAGE, "code");
  }
  throw new ServiceError(
    "invalid",
    "that code is not valid; enter the current 6-digit code from your authenticator app",
    "code",
  );
}

/** Second step of sign-in: the TOTP code for an `mfa` session. Returns the new full session token. */
export async function completeMfa(ctx: AppContext, token: string, code: string, meta: RequestMeta): Promise<string> {
  const s = await liveSession(ctx, token);
  if (s?.stage !== "mfa") throw new ServiceError("unauthenticated", "the sign-in has expired; start again");
  const user = await findUserById(ctx.db, s.userId);
  if (!user?.totpSecretEnc || !user.totpEnabledAt)
    throw new ServiceError("unauthenticated", "the sign-in has expired; start again");
  await secondFactor(ctx, { ...user, totpSecretEnc: user.totpSecretEnc }, code, meta, "login.mfa");
  const full = await rotate(ctx, s, "full");
  await audit(ctx.db, { action: "login.mfa", outcome: "success", actorUserId: user.id, ip: meta.ip });
  return full;
}

/** Start (or restart) TOTP enrolment: a new secret, stored encrypted, not active until confirmed. */
export async function beginTotpEnrolment(ctx: AppContext, token: string) {
  const s = await liveSession(ctx, token);
  if (!s || (s.stage !== "full" && s.stage !== "enroll")) throw new ServiceError("unauthenticated", "sign in first");
  const user = (await findUserById(ctx.db, s.userId))!;
  const { secret } = await generateTOTP(TOTP);
  await ctx.db
    .update(users)
    .set({
      totpSecretEnc: encryptField(ctx.env.dataKey, secret, secretAad(user.id)),
      totpEnabledAt: null,
      totpLastStep: null,
    })
    .where(eq(users.id, user.id));
  return { secret, uri: getTOTPAuthUri({ ...TOTP, secret, accountName: user.email, issuer: "TrialSeal" }) };
}

/** Confirm enrolment with a first code; the session becomes a full one (rotated). */
export async function confirmTotpEnrolment(
  ctx: AppContext,
  token: string,
  code: string,
  meta: RequestMeta,
): Promise<string> {
  const s = await liveSession(ctx, token);
  if (!s || (s.stage !== "full" && s.stage !== "enroll")) throw new ServiceError("unauthenticated", "sign in first");
  const user = (await findUserById(ctx.db, s.userId))!;
  if (!user.totpSecretEnc) throw new ServiceError("invalid", "start the enrolment first", "code");
  const secret = decryptField(ctx.env.dataKey, user.totpSecretEnc, secretAad(user.id));
  if (!(await checkCode(ctx, user.id, secret, code.trim())))
    throw new ServiceError(
      "invalid",
      "that code is not valid; enter the current 6-digit code from your authenticator app",
      "code",
    );
  await ctx.db.update(users).set({ totpEnabledAt: new Date() }).where(eq(users.id, user.id));
  await audit(ctx.db, { action: "mfa.enrol", actorUserId: user.id, ip: meta.ip });
  return rotate(ctx, s, "full");
}

/** Change one's password: the current one is required; every other session is signed out. */
export async function changePassword(ctx: AppContext, token: string, current: string, next: string, meta: RequestMeta) {
  const s = await liveSession(ctx, token);
  if (s?.stage !== "full") throw new ServiceError("unauthenticated", "sign in first");
  const user = (await findUserById(ctx.db, s.userId))!;
  // The sign-in back-off applies here too (ADR 0022): a stolen session cannot guess the current password.
  const keys = throttleKeys(ctx, user.email, meta.ip);
  const wait = await reserveSignInAttempt(ctx.db, keys);
  if (wait !== null)
    throw new ServiceError("rate_limited", `too many wrong passwords; wait ${wait} s and try again`, "current");
  if (!(await verifyPassword(user.passwordHash, current)))
    throw new ServiceError("invalid", "the current password is not correct", "current");
  await signInSucceeded(ctx.db, keys);
  checkPasswordRules(next, user.email);
  if (current === next)
    throw new ServiceError("invalid", "choose a password different from the current one", "password");
  const passwordHash = await hashPassword(next);
  await ctx.db.transaction(async (tx) => {
    await tx.update(users).set({ passwordHash, passwordChangedAt: new Date() }).where(eq(users.id, user.id));
    await tx
      .update(sessions)
      .set({ revokedAt: new Date() })
      .where(and(eq(sessions.userId, user.id), ne(sessions.id, s.id), isNull(sessions.revokedAt)));
    await audit(tx, { action: "password.change", actorUserId: user.id, ip: meta.ip });
  });
}

/** One's live sessions (for the account page) and revoking one of them. */
export async function listSessions(ctx: AppContext, userId: string) {
  const rows = await ctx.db
    .select()
    .from(sessions)
    .where(and(eq(sessions.userId, userId), isNull(sessions.revokedAt)));
  const now = Date.now();
  return rows
    .filter((r) => r.expiresAt.getTime() > now && now - r.lastSeenAt.getTime() <= ctx.env.sessionIdleMs)
    .map((r) => ({
      id: r.id,
      createdAt: r.createdAt,
      lastSeenAt: r.lastSeenAt,
      ip: r.ip,
      userAgent: r.userAgent,
      stage: r.stage,
    }));
}

export async function revokeOwnSession(ctx: AppContext, userId: string, sessionId: string, meta: RequestMeta) {
  const [row] = await ctx.db
    .update(sessions)
    .set({ revokedAt: new Date() })
    .where(and(eq(sessions.id, sessionId), eq(sessions.userId, userId), isNull(sessions.revokedAt)))
    .returning({ id: sessions.id });
  if (!row) throw new ServiceError("not_found", "no such session", "session");
  await audit(ctx.db, { action: "session.revoke", actorUserId: userId, ip: meta.ip, detail: { session: sessionId } });
}

/** The enrolment in progress (reusing a pending secret, so reloading the page does not change it). */
export async function pendingTotpEnrolment(ctx: AppContext, token: string) {
  const s = await liveSession(ctx, token);
  if (!s || (s.stage !== "full" && s.stage !== "enroll")) throw new ServiceError("unauthenticated", "sign in first");
  const user = (await findUserById(ctx.db, s.userId))!;
  if (user.totpSecretEnc && !user.totpEnabledAt) {
    const secret = decryptField(ctx.env.dataKey, user.totpSecretEnc, secretAad(user.id));
    return {
      secret,
      uri: getTOTPAuthUri({ ...TOTP, secret, accountName: user.email, issuer: "TrialSeal" }),
      enabled: false,
      required: s.stage === "enroll",
    };
  }
  if (user.totpEnabledAt) return { secret: null, uri: null, enabled: true, required: false };
  return { ...(await beginTotpEnrolment(ctx, token)), enabled: false, required: s.stage === "enroll" };
}

const RESET_TTL_MS = 30 * 60_000;

/**
 * Send a password reset link through the outbox. The answer is the same whether or not the email exists
 * (no account enumeration); the link is single-use and expires in 30 minutes; only its hash is stored.
 */
export async function requestPasswordReset(ctx: AppContext, email: string, baseUrl: string, meta: RequestMeta) {
  const user = await findUserByEmail(ctx.db, email);
  if (user?.status !== "active") {
    await audit(ctx.db, {
      action: "password.reset_request",
      outcome: "failure",
      ip: meta.ip,
      detail: { reason: "unknown_account" },
    });
    return;
  }
  const token = newToken();
  await ctx.db.transaction(async (tx) => {
    await tx.insert(passwordResets).values({
      userId: user.id,
      tokenHash: tokenHash(ctx.crypto, token),
      expiresAt: new Date(Date.now() + RESET_TTL_MS),
    });
    await tx.insert(outbox).values({
      channel: "email",
      toAddress: user.email,
      kind: "password_reset",
      subject: "Reset your TrialSeal password",
      body:
        `Someone (hopefully you) asked to reset the password of ${user.email}.\n\n` +
        "Open this link within 30 minutes to choose a new password:\n" +
        `${baseUrl}/reset-password/${token}\n\n` +
        "If you did not ask for this, ignore this message.",
    });
    await audit(tx, { action: "password.reset_request", actorUserId: user.id, ip: meta.ip });
  });
}

/** Set a new password with a reset link: single use; signs out every session and lifts a lockout. */
export async function resetPassword(ctx: AppContext, token: string, password: string, meta: RequestMeta) {
  const [r] = await ctx.db
    .select()
    .from(passwordResets)
    .where(and(eq(passwordResets.tokenHash, tokenHash(ctx.crypto, token)), isNull(passwordResets.usedAt)));
  if (!r || r.expiresAt.getTime() < Date.now())
    throw new ServiceError("invalid", "this reset link is not valid any more; ask for a new one", "token");
  const user = (await findUserById(ctx.db, r.userId))!;
  checkPasswordRules(password, user.email);
  const passwordHash = await hashPassword(password);
  await ctx.db.transaction(async (tx) => {
    const used = await tx
      .update(passwordResets)
      .set({ usedAt: new Date() })
      .where(and(eq(passwordResets.id, r.id), isNull(passwordResets.usedAt)))
      .returning({ id: passwordResets.id });
    if (used.length === 0)
      throw new ServiceError("invalid", "this reset link is not valid any more; ask for a new one", "token");
    await tx
      .update(users)
      .set({ passwordHash, passwordChangedAt: new Date(), failedLogins: 0, lockedUntil: null })
      .where(eq(users.id, user.id));
    // A reset lifts the hard lock of ADR 0022 too: whoever locked it knew the old password.
    if (user.lockedAt || user.mfaFailures) {
      await tx.update(users).set({ lockedAt: null, mfaFailures: 0 }).where(eq(users.id, user.id));
      await audit(tx, { action: "account.unlock", actorUserId: user.id, ip: meta.ip, detail: { via: "reset" } });
    }
    await clearAccountThrottle(ctx, tx, user.email);
    await tx
      .update(sessions)
      .set({ revokedAt: new Date() })
      .where(and(eq(sessions.userId, user.id), isNull(sessions.revokedAt)));
    await audit(tx, { action: "password.reset", actorUserId: user.id, ip: meta.ip });
  });
}

/**
 * Re-authentication at the moment of an e-signature (21 CFR 11.200): the signer's password, and the current
 * TOTP code when they use one. Failures count towards the lockout like sign-in failures.
 */
export async function reauthenticate(
  ctx: AppContext,
  userId: string,
  password: string,
  code: string | undefined,
  meta: RequestMeta,
) {
  const user = await findUserById(ctx.db, userId);
  if (user?.status !== "active" || user.lockedAt) throw new ServiceError("unauthenticated", "sign in again");
  // The same back-off and counting as at sign-in (ADR 0022): a stolen session cannot guess the password here.
  const keys = throttleKeys(ctx, user.email, meta.ip);
  const wait = await reserveSignInAttempt(ctx.db, keys);
  if (wait !== null)
    throw new ServiceError("rate_limited", `too many wrong passwords; wait ${wait} s and try again`, "password");
  const [counted] = await ctx.db
    .update(users)
    .set({ failedLogins: sql`${users.failedLogins} + 1` })
    .where(eq(users.id, user.id))
    .returning({ failures: users.failedLogins });
  if (!(await verifyPassword(user.passwordHash, password))) {
    await audit(ctx.db, {
      action: "signature.reauth",
      outcome: "failure",
      actorUserId: user.id,
      ip: meta.ip,
      detail: { reason: "bad_password", failures: counted.failures },
    });
    if (counted.failures === PASSWORD_ALERT_AFTER) await warnPasswordFailures(ctx, user, counted.failures, meta.ip);
    throw new ServiceError("invalid", "the password is not correct", "password");
  }
  await ctx.db.update(users).set({ failedLogins: 0 }).where(eq(users.id, user.id));
  await signInSucceeded(ctx.db, keys);
  if (user.totpEnabledAt && user.totpSecretEnc) {
    if (!code) {
      await audit(ctx.db, {
        action: "signature.reauth",
        outcome: "failure",
        actorUserId: user.id,
        ip: meta.ip,
        detail: { reason: "no_code" },
      });
      throw new ServiceError("invalid", "enter the current 6-digit code from your authenticator app", "code");
    }
    await secondFactor(ctx, { ...user, totpSecretEnc: user.totpSecretEnc }, code, meta, "signature.reauth");
  }
  return user;
}
