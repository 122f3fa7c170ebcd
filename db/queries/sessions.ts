import { and, desc, eq, gt, isNull, sql } from "drizzle-orm";
import type { DbOrTx } from "../client.ts";
import { apiTokens, sessions, studies } from "../schema/index.ts";

export async function insertSession(
  db: DbOrTx,
  v: {
    tokenHash: Uint8Array;
    userId: string;
    expiresAt: Date;
    ip: string | null;
    userAgent: string | null;
    stage?: "full" | "mfa" | "enroll";
  },
) {
  const [row] = await db.insert(sessions).values(v).returning();
  return row;
}

/** A live session by token hash (not revoked, not expired). */
export async function findLiveSession(db: DbOrTx, tokenHash: Uint8Array, now: Date) {
  const [row] = await db
    .select()
    .from(sessions)
    .where(and(eq(sessions.tokenHash, tokenHash), isNull(sessions.revokedAt), gt(sessions.expiresAt, now)));
  return row ?? null;
}

export async function touchSession(db: DbOrTx, id: string, now: Date) {
  await db.update(sessions).set({ lastSeenAt: now }).where(eq(sessions.id, id));
}

export async function revokeSession(db: DbOrTx, tokenHash: Uint8Array, now: Date) {
  await db.update(sessions).set({ revokedAt: now }).where(eq(sessions.tokenHash, tokenHash));
}

export async function insertApiToken(
  db: DbOrTx,
  v: {
    studyId: string;
    name: string;
    tokenHash: Uint8Array;
    tokenPrefix: string;
    scopes?: string[];
    createdBy: string | null;
  },
) {
  const [row] = await db.insert(apiTokens).values(v).returning();
  return row;
}

/** A study's token of this name (case-insensitive; revoked ones too: names stay unique per study). */
export async function findApiTokenByName(db: DbOrTx, studyId: string, name: string) {
  const [row] = await db
    .select({ id: apiTokens.id, name: apiTokens.name, revokedAt: apiTokens.revokedAt })
    .from(apiTokens)
    .where(and(eq(apiTokens.studyId, studyId), sql`lower(${apiTokens.name}) = lower(${name})`));
  return row ?? null;
}

/** A study's API tokens (never their hashes), newest first. */
export async function listApiTokens(db: DbOrTx, studyId: string) {
  return db
    .select({
      id: apiTokens.id,
      name: apiTokens.name,
      prefix: apiTokens.tokenPrefix,
      scopes: apiTokens.scopes,
      createdAt: apiTokens.createdAt,
      lastUsedAt: apiTokens.lastUsedAt,
      revokedAt: apiTokens.revokedAt,
    })
    .from(apiTokens)
    .where(eq(apiTokens.studyId, studyId))
    .orderBy(desc(apiTokens.createdAt));
}

/** Revoke a live token of a study, found by id or by its shown prefix; returns it, or null if none matched. */
export async function revokeApiToken(db: DbOrTx, studyId: string, ref: { id?: string; prefix?: string }, at: Date) {
  const which = ref.id ? eq(apiTokens.id, ref.id) : eq(apiTokens.tokenPrefix, ref.prefix ?? "");
  const [row] = await db
    .update(apiTokens)
    .set({ revokedAt: at })
    .where(and(eq(apiTokens.studyId, studyId), which, isNull(apiTokens.revokedAt)))
    .returning({ id: apiTokens.id, name: apiTokens.name, prefix: apiTokens.tokenPrefix });
  return row ?? null;
}

/** A live API token with its study. */
export async function findLiveApiToken(db: DbOrTx, tokenHash: Uint8Array) {
  const [row] = await db
    .select({ token: apiTokens, studyCode: studies.code })
    .from(apiTokens)
    .innerJoin(studies, eq(studies.id, apiTokens.studyId))
    .where(and(eq(apiTokens.tokenHash, tokenHash), isNull(apiTokens.revokedAt)));
  return row ?? null;
}
