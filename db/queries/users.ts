import { and, eq, isNull } from "drizzle-orm";
import type { DbOrTx } from "../client.ts";
import { memberships, sites, studies, users, type Role } from "../schema/index.ts";

export async function findUserByEmail(db: DbOrTx, email: string) {
  const [row] = await db.select().from(users).where(eq(users.email, email.trim().toLowerCase()));
  return row ?? null;
}

export async function findUserById(db: DbOrTx, id: string) {
  const [row] = await db.select().from(users).where(eq(users.id, id));
  return row ?? null;
}

export async function insertUser(
  db: DbOrTx,
  v: { email: string; fullName: string; passwordHash: string; platformAdmin?: boolean },
) {
  const [row] = await db
    .insert(users)
    .values({ ...v, email: v.email.trim().toLowerCase() })
    .returning();
  return row;
}

export async function recordLoginFailure(db: DbOrTx, userId: string, failedLogins: number) {
  await db.update(users).set({ failedLogins }).where(eq(users.id, userId));
}

export async function insertMembership(
  db: DbOrTx,
  v: {
    userId: string;
    studyId: string;
    siteId: string | null;
    role: Role;
    grantedBy: string | null;
    qualifier?: string | null;
  },
) {
  const [row] = await db.insert(memberships).values(v).returning();
  return row;
}

/** Current (not revoked) memberships of a user, with study and site codes. */
export async function activeMemberships(db: DbOrTx, userId: string) {
  return db
    .select({
      id: memberships.id,
      role: memberships.role,
      studyId: memberships.studyId,
      studyCode: studies.code,
      siteId: memberships.siteId,
      siteCode: sites.code,
      qualifier: memberships.qualifier,
    })
    .from(memberships)
    .innerJoin(studies, eq(studies.id, memberships.studyId))
    .leftJoin(sites, eq(sites.id, memberships.siteId))
    .where(and(eq(memberships.userId, userId), isNull(memberships.revokedAt)));
}
