/**
 * Sign-in and sessions (OWASP ASVS V2/V3): argon2id passwords, lockout with back-off after repeated
 * failures, server-side sessions (token hash in the database) with idle and absolute timeouts, a TOTP second
 * factor (required for admins, investigators and regulators), session rotation at every privilege step.
 */
import { generateTOTP, getTOTPAuthUri, verifyTOTP } from "@epic-web/totp";
import { and, eq, isNull, ne } from "drizzle-orm";
import { newToken, tokenHash } from "./secret-tokens.server.ts";
import { findUserByEmail, findUserById, activeMemberships } from "../../db/queries/users.ts";
import { findLiveSession, insertSession, revokeSession, touchSession } from "../../db/queries/sessions.ts";
import { outbox, passwordResets, sessions, users } from "../../db/schema/index.ts";
import type { Role } from "../../db/schema/index.ts";
import type { AppContext } from "../platform/context.server.ts";
import { audit } from "../audit-trail/record-event.server.ts";
import { ServiceError } from "../platform/errors.server.ts";
import { checkPasswordRules, verifyPassword, hashPassword } from "./passwords.server.ts";
import { decryptField, encryptField } from "../participants/personal-data.server.ts";
import type { Principal } from "../platform/permissions.server.ts";

export interface RequestMeta {
  ip: string | null;
  userAgent: string | null;
}

/** Roles whose holders must use a second factor. */
export const MFA_ROLES: readonly Role[] = ["admin", "investigator", "regulator"];
export const LOCKOUT_AFTER = 5;
const LOCKOUT_BASE_MS = 15 * 60_000;
const LOCKOUT_MAX_MS = 24 * 3600_000;
const MFA_MAX_ATTEMPTS = 5;
const TOTP = { period: 30, digits: 6, algorithm: "SHA-1" } as const; // what authenticator apps support

let dummyHash: Promise<string> | null = null;

export type LoginResult = { token: string; userId: string; stage: "full" | "mfa" | "enroll" };

/** Lock time after `failures` consecutive failures (0 below the threshold): 15 min, doubling, at most 24 h. */
export function lockoutMs(failures: number): number {
  if (failures < LOCKOUT_AFTER) return 0;
  return Math.min(LOCKOUT_MAX_MS, LOCKOUT_BASE_MS * 2 ** (failures - LOCKOUT_AFTER));
}

async function needsMfa(ctx: AppContext, user: { id: string; platformAdmin: boolean }) {
  if (user.platformAdmin) return true;
  return (await activeMemberships(ctx.db, user.id)).some((m) => MFA_ROLES.includes(m.role));
}

export async function login(ctx: AppContext, email: string, password: string, meta: RequestMeta): Promise<LoginResult> {
  const user = await findUserByEmail(ctx.db, email);
  const refused = () => new ServiceError("unauthenticated", "email or password is incorrect");
  if (!user) {
    // Spend the same time as a real check, so response time does not reveal which emails exist.
    dummyHash ??= hashPassword("not-a-real-password-0000");
    await verifyPassword(await dummyHash, password);
    await audit(ctx.db, {
      action: "login",
      outcome: "failure",
      actorLabel: null,
      ip: meta.ip,
      detail: { reason: "unknown_account" },
    });
    throw refused();
  }
  const now = new Date();
  if (user.lockedUntil && user.lockedUntil > now) {
    await audit(ctx.db, {
      action: "login",
      outcome: "failure",
      actorUserId: user.id,
      ip: meta.ip,
      detail: { reason: "locked" },
    });
    throw new ServiceError(
      "locked",
      "too many failed sign-ins: this account is locked for a while; try again later or reset your password",
    );
  }
  const ok = user.status === "active" && (await verifyPassword(user.passwordHash, password));
  if (!ok) {
    const failures = user.failedLogins + 1;
    const lock = lockoutMs(failures);
    await ctx.db
      .update(users)
      .set({ failedLogins: failures, lockedUntil: lock ? new Date(now.getTime() + lock) : null })
      .where(eq(users.id, user.id));
    await audit(ctx.db, {
      action: "login",
      outcome: "failure",
      actorUserId: user.id,
      ip: meta.ip,
      detail: { reason: user.status === "active" ? "bad_password" : "disabled", failures, locked: lock > 0 },
    });
    if (lock)
      throw new ServiceError(
        "locked",
        "too many failed sign-ins: this account is locked for a while; try again later or reset your password",
      );
    throw refused();
  }
  const stage: LoginResult["stage"] = user.totpEnabledAt ? "mfa" : (await needsMfa(ctx, user)) ? "enroll" : "full";
  const token = newToken();
  await ctx.db.transaction(async (tx) => {
    await tx.update(users).set({ failedLogins: 0, lockedUntil: null }).where(eq(users.id, user.id));
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
  return { token, userId: user.id, stage };
}

export async function principalForUser(
  ctx: AppContext,
  userId: string,
): Promise<(Principal & { email: string; fullName: string; totpEnabled: boolean }) | null> {
  const user = await findUserById(ctx.db, userId);
  if (user?.status !== "active") return null;
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
  const user = await findUserById(ctx.db, userId);
  // replay
  if (user?.totpLastStep !== null && user?.totpLastStep !== undefined && step <= user.totpLastStep) return false;
  await ctx.db.update(users).set({ totpLastStep: step }).where(eq(users.id, userId));
  return true;
}

/** Second step of sign-in: the TOTP code for an `mfa` session. Returns the new full session token. */
export async function completeMfa(ctx: AppContext, token: string, code: string, meta: RequestMeta): Promise<string> {
  const s = await liveSession(ctx, token);
  if (s?.stage !== "mfa") throw new ServiceError("unauthenticated", "the sign-in has expired; start again");
  const user = await findUserById(ctx.db, s.userId);
  if (!user?.totpSecretEnc || !user.totpEnabledAt)
    throw new ServiceError("unauthenticated", "the sign-in has expired; start again");
  const secret = decryptField(ctx.env.dataKey, user.totpSecretEnc, secretAad(user.id));
  if (!(await checkCode(ctx, user.id, secret, code.trim()))) {
    const attempts = s.mfaAttempts + 1;
    await ctx.db
      .update(sessions)
      .set({ mfaAttempts: attempts, ...(attempts >= MFA_MAX_ATTEMPTS ? { revokedAt: new Date() } : {}) })
      .where(eq(sessions.id, s.id));
    await audit(ctx.db, {
      action: "login.mfa",
      outcome: "failure",
      actorUserId: user.id,
      ip: meta.ip,
      detail: { attempts },
    });
    if (attempts >= MFA_MAX_ATTEMPTS) throw new ServiceError("unauthenticated", "too many wrong codes; sign in again");
    throw new ServiceError(
      "invalid",
      "that code is not valid; enter the current 6-digit code from your authenticator app",
      "code",
    );
  }
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
  if (!(await verifyPassword(user.passwordHash, current)))
    throw new ServiceError("invalid", "the current password is not correct", "current");
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
  if (user?.status !== "active") throw new ServiceError("unauthenticated", "sign in again");
  if (user.lockedUntil && user.lockedUntil > new Date())
    throw new ServiceError("locked", "too many failed attempts: this account is locked for a while");
  if (!(await verifyPassword(user.passwordHash, password))) {
    const failures = user.failedLogins + 1;
    const lock = lockoutMs(failures);
    await ctx.db
      .update(users)
      .set({ failedLogins: failures, lockedUntil: lock ? new Date(Date.now() + lock) : null })
      .where(eq(users.id, user.id));
    await audit(ctx.db, {
      action: "signature.reauth",
      outcome: "failure",
      actorUserId: user.id,
      ip: meta.ip,
      detail: { reason: "bad_password" },
    });
    throw new ServiceError("invalid", "the password is not correct", "password");
  }
  if (user.totpEnabledAt && user.totpSecretEnc) {
    const secret = decryptField(ctx.env.dataKey, user.totpSecretEnc, secretAad(user.id));
    if (!code || !(await checkCode(ctx, user.id, secret, code.trim()))) {
      await audit(ctx.db, {
        action: "signature.reauth",
        outcome: "failure",
        actorUserId: user.id,
        ip: meta.ip,
        detail: { reason: "bad_code" },
      });
      throw new ServiceError("invalid", "enter the current 6-digit code from your authenticator app", "code");
    }
  }
  if (user.failedLogins) await ctx.db.update(users).set({ failedLogins: 0 }).where(eq(users.id, user.id));
  return user;
}
