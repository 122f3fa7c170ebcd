/**
 * The study-wide query list (ADR 0034): every query the viewer may read, with its field as "Label (code)" from the
 * form version the record uses, who raised and answered it and when (from its history rows), its age in days, and
 * whom it waits for: an open query waits for the site's coordinators and investigators to answer; an answered one
 * for the raiser's role (monitor or data manager) to close or re-open it; a closed one for nobody.
 */
import { and, asc, eq, inArray } from "drizzle-orm";
import {
  forms,
  memberships,
  participants,
  queries,
  queryEvents,
  records,
  recordVersions,
  sites,
  users,
} from "../../db/schema/index.ts";
import { csvCell, csvValue } from "../platform/csv.ts";
import type { AppContext } from "../platform/context.server.ts";
import { ServiceError } from "../platform/errors.server.ts";
import { can, type Principal } from "../platform/permissions.server.ts";
import { auditActor, auditDetail, tokenLabel } from "../platform/attribution.ts";
import { accessDetail } from "../data-sharing/access-detail.server.ts";
import { exportParticipantsDetail, participantIdsOfSubjects } from "../data-sharing/export-access.server.ts";
import { audit } from "../audit-trail/record-event.server.ts";
import { getStudyOrThrow } from "../studies/studies.server.ts";
import { canRaiseQueries, type QueryAction } from "./query-events.server.ts";

export const QUERY_STATUSES = ["open", "answered", "closed"] as const;
export type QueryStatus = (typeof QUERY_STATUSES)[number];

export interface QueryFilters {
  status?: QueryStatus;
  site?: string;
  form?: string;
  field?: string;
  /** The raiser: a user id, or "token:<id>". */
  raiser?: string;
  /** Only the queries waiting for the viewer. */
  mine?: boolean;
}

/** The filters from a URL's query string; a bad value is a 400 naming the filter. */
export function parseQueryFilters(sp: URLSearchParams): QueryFilters {
  const f: QueryFilters = {};
  const status = sp.get("status") ?? "";
  if (status) {
    if (!QUERY_STATUSES.includes(status as QueryStatus))
      throw new ServiceError("invalid", `status: choose ${QUERY_STATUSES.join(", ")} (or leave it empty)`, "status");
    f.status = status as QueryStatus;
  }
  const site = (sp.get("site") ?? "").trim().toUpperCase();
  if (site) f.site = site;
  const form = (sp.get("form") ?? "").trim().toUpperCase();
  if (form) f.form = form;
  const field = (sp.get("field") ?? "").trim().toLowerCase();
  if (field) {
    if (!/^[a-z][a-z0-9_]{0,63}$/.test(field)) throw new ServiceError("invalid", "field: give a field's code", "field");
    f.field = field;
  }
  const raiser = (sp.get("raiser") ?? "").trim();
  if (raiser) {
    if (!/^(token:)?[0-9a-f-]{36}$/.test(raiser))
      throw new ServiceError("invalid", "raiser: choose a raiser from the list", "raiser");
    f.raiser = raiser;
  }
  const mine = sp.get("mine");
  if (mine === "1" || mine === "true" || mine === "on") f.mine = true;
  return f;
}

export type WaitingFor = "site" | "monitor" | "data_manager" | null;
export const WAITING_FOR_TEXT: Record<Exclude<WaitingFor, null>, string> = {
  site: "site (coordinator or investigator) to answer",
  monitor: "monitor to close or re-open",
  data_manager: "data manager to close or re-open",
};

export interface QueryStep {
  action: QueryAction;
  by: string;
  byUserId: string | null;
  byToken: { id: string; name: string } | null;
  at: string;
  text: string | null;
}

export interface QueryRow {
  id: string;
  recordId: string;
  subject: string;
  site: string;
  siteId: string;
  visit: string;
  form: string;
  field: string;
  fieldLabel: string;
  /** "Systolic BP (sbp)". */
  fieldText: string;
  status: QueryStatus;
  text: string;
  answer: string | null;
  raisedBy: string;
  raiserKey: string | null;
  raisedAt: string;
  answeredBy: string | null;
  answeredAt: string | null;
  closedBy: string | null;
  closedAt: string | null;
  ageDays: number;
  waitingFor: WaitingFor;
  waitingForText: string;
  waitingForMe: boolean;
  can: { answer: boolean; close: boolean; reopen: boolean };
  history: QueryStep[];
}

const DAY = 86_400_000;

/** The queries of a study (or of one record) the principal may read, with their history and routing. */
export async function queryRows(
  ctx: AppContext,
  principal: Principal,
  study: { id: string; code: string },
  opts: { recordId?: string; now?: Date } = {},
): Promise<QueryRow[]> {
  const rows = await ctx.db
    .select({
      q: queries,
      subject: participants.subjectCode,
      site: sites.code,
      siteId: records.siteId,
      visit: records.visit,
      form: records.formCode,
    })
    .from(queries)
    .innerJoin(records, eq(records.id, queries.recordId))
    .innerJoin(participants, eq(participants.id, records.participantId))
    .innerJoin(sites, eq(sites.id, records.siteId))
    .where(and(eq(queries.studyId, study.id), opts.recordId ? eq(queries.recordId, opts.recordId) : undefined))
    .orderBy(asc(queries.openedAt), asc(queries.id));
  const visible = rows.filter((r) => can(principal, "records.read", { studyId: study.id, siteId: r.siteId }));
  if (visible.length === 0) return [];
  const ids = visible.map((r) => r.q.id);
  const events = await ctx.db
    .select({ e: queryEvents, name: users.fullName })
    .from(queryEvents)
    .leftJoin(users, eq(users.id, queryEvents.actorUserId))
    .where(and(eq(queryEvents.studyId, study.id), opts.recordId ? inArray(queryEvents.queryId, ids) : undefined))
    .orderBy(asc(queryEvents.at), asc(queryEvents.id));
  const byQuery = new Map<string, QueryStep[]>();
  for (const { e, name } of events) {
    const token = e.actorTokenId ? { id: e.actorTokenId, name: e.actorTokenName ?? "" } : null;
    const step: QueryStep = {
      action: e.action,
      by: token ? tokenLabel(token) : (name ?? "unknown user"),
      byUserId: e.actorUserId,
      byToken: token,
      at: e.at.toISOString(),
      text: e.text,
    };
    byQuery.set(e.queryId, [...(byQuery.get(e.queryId) ?? []), step]);
  }
  // Labels from the form version each record's latest version uses.
  const recordIds = [...new Set(visible.map((r) => r.q.recordId))];
  const defs = await ctx.db
    .select({ recordId: recordVersions.recordId, version: recordVersions.version, text: forms.definitionText })
    .from(recordVersions)
    .innerJoin(forms, eq(forms.id, recordVersions.formId))
    .where(inArray(recordVersions.recordId, recordIds));
  const labels = new Map<string, { version: number; fields: Map<string, string> }>();
  for (const d of defs) {
    const cur = labels.get(d.recordId);
    if (cur && cur.version >= d.version) continue;
    const fields = new Map<string, string>();
    try {
      for (const f of (JSON.parse(d.text) as { fields?: { name: string; label?: string }[] }).fields ?? [])
        if (f.label) fields.set(f.name, f.label);
    } catch {
      /* an unreadable definition: the code alone is shown */
    }
    labels.set(d.recordId, { version: d.version, fields });
  }
  // The raiser's role: a data manager's query goes back to data managers, every other to the monitors.
  const raisers = [...new Set(visible.map((r) => r.q.openedBy).filter((x): x is string => x !== null))];
  const dmRaisers = new Set(
    raisers.length === 0
      ? []
      : Array.from(
          (
            await ctx.db
              .select({ userId: memberships.userId, role: memberships.role })
              .from(memberships)
              .where(and(eq(memberships.studyId, study.id), inArray(memberships.userId, raisers)))
          )
            .reduce((m, x) => m.set(x.userId, [...(m.get(x.userId) ?? []), x.role]), new Map<string, string[]>())
            .entries(),
        )
          .filter(([, roles]) => roles.includes("data_manager") && !roles.includes("monitor"))
          .map(([id]) => id),
  );
  const now = (opts.now ?? new Date()).getTime();
  return visible.map((r) => {
    const history = byQuery.get(r.q.id) ?? [];
    const opened = history.find((h) => h.action === "opened");
    const last = (a: QueryAction) => [...history].reverse().find((h) => h.action === a) ?? null;
    const answered = r.q.status === "open" ? null : last("answered");
    const closed = r.q.status === "closed" ? last("closed") : null;
    const label = labels.get(r.q.recordId)?.fields.get(r.q.field) ?? r.q.field;
    const raiserRole = r.q.openedBy && dmRaisers.has(r.q.openedBy) ? "data_manager" : "monitor";
    const waitingFor: WaitingFor = r.q.status === "open" ? "site" : r.q.status === "answered" ? raiserRole : null;
    const scope = { studyId: study.id, siteId: r.siteId };
    const mayAnswer = can(principal, "records.enter", scope);
    const mayClose = canRaiseQueries(principal, scope);
    const waitingForMe =
      waitingFor === "site"
        ? mayAnswer
        : waitingFor === "monitor"
          ? can(principal, "records.monitor", scope)
          : waitingFor === "data_manager"
            ? can(principal, "records.lock", scope)
            : false;
    const end = r.q.status === "closed" && r.q.closedAt ? r.q.closedAt.getTime() : now;
    return {
      id: r.q.id,
      recordId: r.q.recordId,
      subject: r.subject,
      site: r.site,
      siteId: r.siteId,
      visit: r.visit,
      form: r.form,
      field: r.q.field,
      fieldLabel: label,
      fieldText: label === r.q.field ? r.q.field : `${label} (${r.q.field})`,
      status: r.q.status,
      text: r.q.text,
      answer: r.q.answer,
      raisedBy: opened?.by ?? "unknown",
      raiserKey: opened ? (opened.byToken ? `token:${opened.byToken.id}` : opened.byUserId) : r.q.openedBy,
      raisedAt: (opened?.at ?? r.q.openedAt.toISOString()) as string,
      answeredBy: answered?.by ?? null,
      answeredAt: answered?.at ?? r.q.answeredAt?.toISOString() ?? null,
      closedBy: closed?.by ?? null,
      closedAt: closed?.at ?? r.q.closedAt?.toISOString() ?? null,
      ageDays: Math.max(0, Math.floor((end - r.q.openedAt.getTime()) / DAY)),
      waitingFor,
      waitingForText: waitingFor ? WAITING_FOR_TEXT[waitingFor] : "nobody (closed)",
      waitingForMe,
      can: {
        answer: r.q.status === "open" && mayAnswer,
        close: r.q.status === "answered" && mayClose,
        reopen: r.q.status !== "open" && mayClose,
      },
      history,
    };
  });
}

/** The study-wide list with its filters, and the choices the filters offer. */
export async function queryList(ctx: AppContext, principal: Principal, studyCode: string, f: QueryFilters) {
  const study = await getStudyOrThrow(ctx, studyCode);
  if (!can(principal, "records.read", { studyId: study.id }))
    throw new ServiceError("forbidden", "not permitted: records.read");
  const all = await queryRows(ctx, principal, study);
  const rows = all.filter(
    (r) =>
      (!f.status || r.status === f.status) &&
      (!f.site || r.site === f.site) &&
      (!f.form || r.form === f.form) &&
      (!f.field || r.field === f.field) &&
      (!f.raiser || r.raiserKey === f.raiser) &&
      (!f.mine || r.waitingForMe),
  );
  const uniq = <T>(xs: T[]) => [...new Set(xs)].sort();
  const raisers = new Map<string, string>();
  for (const r of all) if (r.raiserKey) raisers.set(r.raiserKey, r.raisedBy);
  const fields = new Map<string, string>();
  for (const r of all) fields.set(r.field, r.fieldText);
  return {
    study,
    rows,
    total: all.length,
    options: {
      sites: uniq(all.map((r) => r.site)),
      forms: uniq(all.map((r) => r.form)),
      fields: [...fields.entries()]
        .sort((a, b) => a[0].localeCompare(b[0]))
        .map(([value, label]) => ({ value, label })),
      raisers: [...raisers.entries()].map(([value, label]) => ({ value, label })),
    },
  };
}

const CSV_COLUMNS = [
  "query",
  "subject",
  "site",
  "visit",
  "form",
  "field",
  "field_label",
  "status",
  "raised_by",
  "raised_at",
  "answered_by",
  "answered_at",
  "closed_by",
  "closed_at",
  "age_days",
  "waiting_for",
  "query_text",
  "answer",
] as const;

/** The list as CSV (same filters); the export is an audit event. */
export async function queryListCsv(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  f: QueryFilters,
  meta: { ip: string | null },
) {
  const { study, rows } = await queryList(ctx, principal, studyCode, f);
  const lines = [
    CSV_COLUMNS.join(","),
    ...rows.map((r) =>
      [
        csvCell(r.id),
        csvCell(r.subject),
        csvCell(r.site),
        csvCell(r.visit),
        csvCell(r.form),
        csvCell(r.field),
        csvCell(r.fieldLabel),
        csvCell(r.status),
        csvCell(r.raisedBy),
        csvCell(r.raisedAt),
        csvCell(r.answeredBy),
        csvCell(r.answeredAt),
        csvCell(r.closedBy),
        csvCell(r.closedAt),
        csvValue(r.ageDays),
        csvCell(r.waitingFor ? WAITING_FOR_TEXT[r.waitingFor] : ""),
        csvCell(r.text),
        csvCell(r.answer),
      ].join(","),
    ),
  ];
  await auditQueriesExport(ctx, principal, study, rows, f, { ip: meta.ip, format: "csv" });
  return { study, csv: `${lines.join("\r\n")}\r\n` };
}

/**
 * The list as the API hands it out (every query with its subject and history): an export like the CSV, so an
 * export event names the participants it holds.
 */
export async function queryListExport(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  f: QueryFilters,
  meta: { ip: string | null },
) {
  const list = await queryList(ctx, principal, studyCode, f);
  await auditQueriesExport(ctx, principal, list.study, list.rows, f, { ip: meta.ip, format: "api" });
  return list;
}

/** The export event of a query list (ADR 0071): the participants of the queries listed, the reader's role, site. */
async function auditQueriesExport(
  ctx: AppContext,
  principal: Principal,
  study: { id: string },
  rows: { subject: string }[],
  f: QueryFilters,
  meta: { ip: string | null; format: "csv" | "api" },
) {
  const held = await participantIdsOfSubjects(
    ctx,
    study.id,
    rows.map((r) => r.subject),
  );
  await audit(ctx.db, {
    action: "export.queries",
    ...auditActor(principal),
    studyId: study.id,
    ip: meta.ip,
    detail: auditDetail(principal, {
      rows: rows.length,
      filters: f,
      via: meta.format,
      ...accessDetail(principal, study.id, null),
      ...exportParticipantsDetail(held),
    }),
  });
}
