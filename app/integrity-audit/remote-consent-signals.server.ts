/**
 * Signals on the review page that a remote consent may not have been given by the person it names (ADR 0018;
 * FDA/OHRP eIC guidance on verifying a remote signer's identity): the signature came from the network (IP address)
 * of a staff session active within the hour before; the signer's contact equals a staff account's or another
 * participant's; and sites with one member of staff, where nobody can confirm a colleague's entry (flagged, not
 * refused).
 */
import { and, eq, gte, inArray, isNull, lte, ne } from "drizzle-orm";
import { auditEvents, memberships, sessions, sites, users } from "../../db/schema/index.ts";
import type { AppContext } from "../platform/context.server.ts";
import { contactCollisions } from "./contact-checks.server.ts";

export const STAFF_NETWORK_WINDOW_MS = 3600_000;

export interface ConsentSignal {
  code: "staff_network" | "contact_of_staff" | "contact_shared";
  message: string;
}

/** The staff of a study: anyone with a current non-participant role in it. */
async function studyStaff(ctx: AppContext, studyId: string) {
  return ctx.db
    .select({ userId: memberships.userId, role: memberships.role, siteId: memberships.siteId, name: users.fullName })
    .from(memberships)
    .innerJoin(users, eq(users.id, memberships.userId))
    .where(and(eq(memberships.studyId, studyId), isNull(memberships.revokedAt), ne(memberships.role, "participant")));
}

export async function remoteConsentSignals(ctx: AppContext, studyId: string, subjects: Map<string, string>) {
  const staff = await studyStaff(ctx, studyId);
  const staffIds = [...new Set(staff.map((s) => s.userId))];
  const signals = new Map<string, ConsentSignal[]>();
  const add = (participantId: string, s: ConsentSignal) => {
    const list = signals.get(participantId) ?? [];
    if (!list.some((x) => x.code === s.code && x.message === s.message)) list.push(s);
    signals.set(participantId, list);
  };

  // Signed from the address of a staff session active within the hour before the signature.
  const signs = await ctx.db
    .select({ participantId: auditEvents.participantId, ip: auditEvents.ip, at: auditEvents.at })
    .from(auditEvents)
    .where(and(eq(auditEvents.studyId, studyId), eq(auditEvents.action, "consent.sign")));
  for (const e of signs) {
    if (!e.ip || !e.participantId || !subjects.has(e.participantId) || staffIds.length === 0) continue;
    const from = new Date(e.at.getTime() - STAFF_NETWORK_WINDOW_MS);
    const hits = await ctx.db
      .selectDistinct({ name: users.fullName })
      .from(sessions)
      .innerJoin(users, eq(users.id, sessions.userId))
      .where(
        and(
          eq(sessions.ip, e.ip),
          inArray(sessions.userId, staffIds),
          lte(sessions.createdAt, e.at),
          gte(sessions.lastSeenAt, from),
        ),
      );
    if (hits.length)
      add(e.participantId, {
        code: "staff_network",
        message:
          `signed on ${e.at.toISOString().slice(0, 16).replace("T", " ")} UTC from the network address of a ` +
          `staff session within the hour before (${hits.map((h) => h.name).join(", ")})`,
      });
  }

  // Contacts equal to a staff account's or shared with another participant (from their HMACs).
  for (const c of await contactCollisions(ctx, studyId)) {
    if (!subjects.has(c.ref.participantId)) continue;
    if (c.staff)
      add(c.ref.participantId, {
        code: "contact_of_staff",
        message:
          `the ${c.ref.role === "participant" ? "participant's" : "representative's"} contact ` +
          `is that of staff account ${c.staff}`,
      });
    if (c.sharedWith)
      add(c.ref.participantId, {
        code: "contact_shared",
        message: `the same contact is used for ${[...new Set(c.sharedWith.map((o) => o.subject))].join(", ")}`,
      });
  }

  // Sites where one person (or nobody) is site staff: no second member of staff can confirm a contact.
  const siteRows = await ctx.db.select().from(sites).where(eq(sites.studyId, studyId));
  const singleStaffSites = siteRows
    .map((s) => ({
      site: s.code,
      staff: new Set(
        staff
          .filter((m) => (m.role === "investigator" || m.role === "coordinator") && (!m.siteId || m.siteId === s.id))
          .map((m) => m.userId),
      ).size,
    }))
    .filter((s) => s.staff <= 1)
    .sort((a, b) => a.site.localeCompare(b.site));

  return {
    consentSignals: [...signals.entries()]
      .map(([participantId, list]) => ({ subject: subjects.get(participantId) ?? participantId, signals: list }))
      .sort((a, b) => a.subject.localeCompare(b.subject)),
    singleStaffSites,
  };
}
