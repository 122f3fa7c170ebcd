/** Sign-in with email + password, server-side sessions (token hash in the database), sign-out. */
import { newToken, tokenHash } from "./secret-tokens.server.ts";
import { findUserByEmail, findUserById, activeMemberships, recordLoginFailure } from "../../db/queries/users.ts";
import { findLiveSession, insertSession, revokeSession, touchSession } from "../../db/queries/sessions.ts";
import type { AppContext } from "./context.server.ts";
import { audit } from "./audit.server.ts";
import { ServiceError } from "./errors.server.ts";
import { verifyPassword, hashPassword } from "./passwords.server.ts";
import type { Principal } from "./permissions.server.ts";

export interface RequestMeta {
  ip: string | null;
  userAgent: string | null;
}

let dummyHash: Promise<string> | null = null;

export async function login(ctx: AppContext, email: string, password: string, meta: RequestMeta) {
  const user = await findUserByEmail(ctx.db, email);
  if (!user) {
    // Spend the same time as a real check, so response time does not reveal which emails exist.
    dummyHash ??= hashPassword("not-a-real-password-0000");
    await verifyPassword(await dummyHash, password);
    await audit(ctx.db, { action: "login", outcome: "failure", actorLabel: null, ip: meta.ip, detail: { reason: "unknown_account" } });
    throw new ServiceError("unauthenticated", "email or password is incorrect");
  }
  const ok = user.status === "active" && (await verifyPassword(user.passwordHash, password));
  if (!ok) {
    await recordLoginFailure(ctx.db, user.id, user.failedLogins + 1);
    await audit(ctx.db, { action: "login", outcome: "failure", actorUserId: user.id, ip: meta.ip, detail: { reason: user.status === "active" ? "bad_password" : "disabled" } });
    throw new ServiceError("unauthenticated", "email or password is incorrect");
  }
  const token = newToken();
  const now = new Date();
  await ctx.db.transaction(async (tx) => {
    if (user.failedLogins) await recordLoginFailure(tx, user.id, 0);
    await insertSession(tx, {
      tokenHash: tokenHash(ctx.crypto, token),
      userId: user.id,
      expiresAt: new Date(now.getTime() + ctx.env.sessionTtlMs),
      ip: meta.ip,
      userAgent: meta.userAgent?.slice(0, 300) ?? null,
    });
    await audit(tx, { action: "login", outcome: "success", actorUserId: user.id, ip: meta.ip });
  });
  return { token, userId: user.id };
}

export async function principalForUser(ctx: AppContext, userId: string): Promise<(Principal & { email: string; fullName: string }) | null> {
  const user = await findUserById(ctx.db, userId);
  if (!user || user.status !== "active") return null;
  const ms = await activeMemberships(ctx.db, user.id);
  return {
    kind: "user",
    userId: user.id,
    label: user.email,
    email: user.email,
    fullName: user.fullName,
    platformAdmin: user.platformAdmin,
    memberships: ms.map((m) => ({ role: m.role, studyId: m.studyId, studyCode: m.studyCode, siteId: m.siteId, siteCode: m.siteCode })),
  };
}

/** The principal behind a session token, or null when the session is unknown, expired or revoked. */
export async function sessionPrincipal(ctx: AppContext, token: string) {
  const now = new Date();
  const s = await findLiveSession(ctx.db, tokenHash(ctx.crypto, token), now);
  if (!s) return null;
  if (now.getTime() - s.lastSeenAt.getTime() > 60_000) await touchSession(ctx.db, s.id, now);
  return principalForUser(ctx, s.userId);
}

export async function logout(ctx: AppContext, token: string, meta: RequestMeta) {
  const hash = tokenHash(ctx.crypto, token);
  const s = await findLiveSession(ctx.db, hash, new Date());
  await revokeSession(ctx.db, hash, new Date());
  if (s) await audit(ctx.db, { action: "logout", actorUserId: s.userId, ip: meta.ip });
}
