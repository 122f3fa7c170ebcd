/**
 * Reading the audit trail of a study: filters (site, subject, user, action, date range), a page for the
 * portal and a CSV export (itself an audited event). The trail is append-only in the database.
 */
import { csvCell } from "../platform/csv.ts";
import { and, desc, eq, gte, like, lt, sql } from "drizzle-orm";
import { z } from "zod";
import { auditEvents, participants, sites, users } from "../../db/schema/index.ts";
import type { AppContext } from "../platform/context.server.ts";
import { ServiceError } from "../platform/errors.server.ts";
import { audit } from "./record-event.server.ts";

const date = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}$/, "use YYYY-MM-DD")
  .refine(
    (d) => !Number.isNaN(Date.parse(`${d}T00:00:00Z`)) && new Date(`${d}T00:00:00Z`).toISOString().startsWith(d),
    "use YYYY-MM-DD (a calendar date)",
  );

export const AuditFilters = z.object({
  site: z.string().trim().max(32).optional(),
  subject: z.string().trim().max(64).optional(),
  user: z.string().trim().max(320).optional(),
  action: z
    .string()
    .trim()
    .regex(/^[a-z_.]*$/, "letters, dots and _ only")
    .max(64)
    .optional(),
  from: date.optional(),
  to: date.optional(),
});
export type AuditFilters = z.infer<typeof AuditFilters>;

/** Parse filters from URL search params; empty values mean "any". */
export function parseAuditFilters(params: URLSearchParams): AuditFilters {
  const raw = Object.fromEntries([...params.entries()].filter(([k, v]) => v !== "" && k in AuditFilters.shape));
  const r = AuditFilters.safeParse(raw);
  if (!r.success) {
    const i = r.error.issues[0];
    throw new ServiceError("invalid", `${String(i.path[0])}: ${i.message}`, String(i.path[0]));
  }
  if (r.data.from && r.data.to && r.data.to < r.data.from)
    throw new ServiceError("invalid", "to: the end date is before the start date", "to");
  return r.data;
}

export async function queryAuditTrail(ctx: AppContext, studyId: string, f: AuditFilters, limit = 500) {
  const conds = [eq(auditEvents.studyId, studyId)];
  if (f.site) conds.push(eq(sites.code, f.site.toUpperCase()));
  if (f.subject) conds.push(eq(participants.subjectCode, f.subject.toUpperCase()));
  if (f.user) conds.push(eq(users.email, f.user.toLowerCase()));
  if (f.action) conds.push(like(auditEvents.action, `${f.action}%`));
  if (f.from) conds.push(gte(auditEvents.at, new Date(`${f.from}T00:00:00Z`)));
  if (f.to) conds.push(lt(auditEvents.at, new Date(new Date(`${f.to}T00:00:00Z`).getTime() + 86_400_000)));
  const rows = await ctx.db
    .select({
      id: auditEvents.id,
      at: auditEvents.at,
      action: auditEvents.action,
      outcome: auditEvents.outcome,
      user: users.email,
      actorLabel: auditEvents.actorLabel,
      site: sites.code,
      subject: participants.subjectCode,
      ip: auditEvents.ip,
      detail: auditEvents.detail,
    })
    .from(auditEvents)
    .leftJoin(users, eq(users.id, auditEvents.actorUserId))
    .leftJoin(sites, eq(sites.id, auditEvents.siteId))
    .leftJoin(participants, eq(participants.id, auditEvents.participantId))
    .where(and(...conds))
    .orderBy(desc(auditEvents.id))
    .limit(limit);
  return rows.map((r) => ({
    ...r,
    who: r.user ?? r.actorLabel ?? "system",
    detail: r.detail as Record<string, unknown>,
  }));
}

/** Counts per day for the last `days` days (for the dashboard chart). */
export async function auditCountsByDay(ctx: AppContext, studyId: string, days = 14) {
  const rows = await ctx.db
    .select({
      day: sql<string>`to_char(${auditEvents.at} at time zone 'UTC', 'YYYY-MM-DD')`,
      n: sql<number>`count(*)::int`,
    })
    .from(auditEvents)
    .where(and(eq(auditEvents.studyId, studyId), gte(auditEvents.at, new Date(Date.now() - days * 86_400_000))))
    .groupBy(sql`1`);
  return rows;
}

export async function auditTrailCsv(
  ctx: AppContext,
  study: { id: string; code: string },
  f: AuditFilters,
  actor: { userId: string | null; ip: string | null },
) {
  const rows = await queryAuditTrail(ctx, study.id, f, 100_000);
  const head = ["id", "time_utc", "action", "outcome", "user", "site", "subject", "ip", "detail"];
  const lines = [
    head.join(","),
    ...rows.map((r) =>
      [r.id, r.at, r.action, r.outcome, r.who, r.site, r.subject, r.ip, r.detail].map(csvCell).join(","),
    ),
  ];
  await audit(ctx.db, {
    action: "audit.export",
    actorUserId: actor.userId,
    studyId: study.id,
    ip: actor.ip,
    detail: { rows: rows.length, filters: f },
  });
  return `${lines.join("\r\n")}\r\n`;
}
