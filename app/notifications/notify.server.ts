/**
 * Notifications (issue 18): what study staff and participants are told by e-mail, queued in the outbox in the same
 * transaction as the event they are about, so that a rolled-back write sends nothing and a committed one is never
 * lost. The sender (outbox-sender.server.ts) delivers them by SMTP and retries failures.
 */
import { and, eq, isNull, or, inArray } from "drizzle-orm";
import type { DbOrTx } from "../../db/client.ts";
import { memberships, outbox, users, type Role } from "../../db/schema/index.ts";

/** What a notification is about; the outbox's `kind`. */
export const NOTIFICATION_KINDS = [
  "query_opened",
  "query_answered",
  "query_reopened",
  "signature_requested",
  "reconsent_needed",
  "consent_invitation",
  "import_finished",
  "emergency_unblinding",
  "unblinded_role_granted",
  // Issue 21: a recalled lot (to the sites that hold or dispensed its kits), a shipment quarantined (to the sponsor).
  "lot_recalled",
  "shipment_quarantined",
  // Issue 22: a data-use request decided, a delivery ready (to the researcher who asked).
  "data_use_decided",
  "data_use_delivered",
] as const;
export type NotificationKind = (typeof NOTIFICATION_KINDS)[number];

export interface Notification {
  studyId: string | null;
  kind: NotificationKind;
  to: string;
  subject: string;
  body: string;
  channel?: "email" | "sms";
}

/** Queue one message, inside the caller's transaction. */
export async function queueNotification(tx: DbOrTx, n: Notification): Promise<void> {
  await tx.insert(outbox).values({
    channel: n.channel ?? "email",
    toAddress: n.to,
    kind: n.kind,
    subject: n.subject,
    body: n.body,
    studyId: n.studyId,
  });
}

/**
 * Queue one message to each active member of a study holding one of `roles` (at `siteId`, or study-wide members
 * when the role is study-wide), except `exceptUserId` (who caused it). Returns how many were queued.
 */
export async function notifyStudyRoles(
  tx: DbOrTx,
  opts: {
    studyId: string;
    siteId: string | null;
    roles: readonly Role[];
    exceptUserId?: string | null;
    kind: NotificationKind;
    subject: string;
    body: string;
  },
): Promise<number> {
  const rows = await tx
    .selectDistinct({ id: users.id, email: users.email })
    .from(memberships)
    .innerJoin(users, eq(users.id, memberships.userId))
    .where(
      and(
        eq(memberships.studyId, opts.studyId),
        isNull(memberships.revokedAt),
        inArray(memberships.role, [...opts.roles]),
        eq(users.status, "active"),
        opts.siteId === null ? undefined : or(isNull(memberships.siteId), eq(memberships.siteId, opts.siteId)),
      ),
    );
  let n = 0;
  for (const r of rows) {
    if (r.id === opts.exceptUserId) continue;
    await queueNotification(tx, {
      studyId: opts.studyId,
      kind: opts.kind,
      to: r.email,
      subject: opts.subject,
      body: opts.body,
    });
    n++;
  }
  return n;
}

/** Queue one message to one user (the raiser of a query, say), if the account is active. */
export async function notifyUser(tx: DbOrTx, userId: string | null, n: Omit<Notification, "to">): Promise<boolean> {
  if (userId === null) return false;
  const [u] = await tx.select({ email: users.email, status: users.status }).from(users).where(eq(users.id, userId));
  if (u?.status !== "active") return false;
  await queueNotification(tx, { ...n, to: u.email });
  return true;
}
