/**
 * Reading the audit trail of a study: filters (site, subject, user, action, form, field, date range), a page for
 * the portal and a CSV export (itself an audited event). The trail is append-only in the database.
 *
 * CRF data entry and corrections are shown per field (old -> new, who, when, why). The values are never copied
 * into the audit event: they are read from the record version the event names and the version before it, each
 * checked against its sealed entry (a mismatch is shown, never hidden), and labelled from the form version that
 * record version used, as "Label (code)". Both the page and the CSV are built from the same lines.
 */
import { csvCell, csvValue } from "../platform/csv.ts";
import { exportParticipantsDetail, participantIdsOfSubjects } from "../data-sharing/export-access.server.ts";
import { and, asc, desc, eq, gte, inArray, like, lt, or, sql } from "drizzle-orm";
import { z } from "zod";
import { canonicalize } from "../../anchoring/log/canonical.ts";
import {
  auditEvents,
  forms,
  ledgerEntries,
  participants,
  records,
  recordVersions,
  sites,
  users,
} from "../../db/schema/index.ts";
import { MISMATCH_TEXT } from "../log/seal-text.ts";
import type { FormDefinition } from "../../anchoring/forms/definition.ts";
import { storedDefinition } from "../records/records.server.ts";
import { matchesSeal } from "../records/seal-match.server.ts";
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
  form: z
    .string()
    .trim()
    .regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/, "a form code (letters, digits, - or _)")
    .transform((s) => s.toUpperCase())
    .optional(),
  field: z
    .string()
    .trim()
    .regex(/^[A-Za-z][A-Za-z0-9_]{0,63}$/, "a field code (letters, digits and _)")
    .transform((s) => s.toLowerCase())
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

/** The audit actions of CRF data: each names its record and version in `detail` (never the values). */
const RECORD_ACTIONS = ["record.create", "record.correct"];

/** One changed field of a record version: old -> new as stored (checked against the seal separately). */
export interface FieldChange {
  /** The field's code (its name in the form definition). */
  code: string;
  /** "Label (code)", the label from the form version the record version used. */
  field: string;
  old: string | number | null;
  new: string | number | null;
}

/** What a record event shows: the version's form, visit, reason, changed fields and seal check. */
export interface RecordChange {
  form: string;
  formVersion: number;
  visit: string;
  version: number;
  reason: string | null;
  changes: FieldChange[];
  /** "matches its sealed entry", or which of the two versions does not. */
  seal: string;
}

const MATCHES_TEXT = "matches its sealed entry";

function eventConditions(studyId: string, f: AuditFilters) {
  const conds = [eq(auditEvents.studyId, studyId)];
  if (f.site) conds.push(eq(sites.code, f.site.toUpperCase()));
  if (f.subject) conds.push(eq(participants.subjectCode, f.subject.toUpperCase()));
  if (f.user) {
    const byUser = or(eq(users.email, f.user.toLowerCase()), eq(auditEvents.actorLabel, f.user));
    if (byUser) conds.push(byUser);
  }
  if (f.action) conds.push(like(auditEvents.action, `${f.action}%`));
  if (f.form) conds.push(sql`${auditEvents.detail}->>'form' = ${f.form.toUpperCase()}`);
  // A field changes only in CRF data events; which fields changed is read from the versions below.
  if (f.field) conds.push(inArray(auditEvents.action, RECORD_ACTIONS));
  if (f.from) conds.push(gte(auditEvents.at, new Date(`${f.from}T00:00:00Z`)));
  if (f.to) conds.push(lt(auditEvents.at, new Date(new Date(`${f.to}T00:00:00Z`).getTime() + 86_400_000)));
  return conds;
}

export async function queryAuditTrail(ctx: AppContext, studyId: string, f: AuditFilters, limit = 500) {
  const conds = eventConditions(studyId, f);
  const out: AuditEvent[] = [];
  // With a field filter, events are read in batches until `limit` of them changed the field (or none are left).
  const batch = f.field ? Math.max(limit, 1000) : limit;
  let before: number | null = null;
  for (;;) {
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
      .where(and(...conds, before === null ? undefined : lt(auditEvents.id, before)))
      .orderBy(desc(auditEvents.id))
      .limit(batch);
    const changes = await recordChanges(ctx, studyId, rows);
    for (const r of rows) {
      const detail = (r.detail ?? {}) as Record<string, unknown>;
      let record = changes.get(`${String(detail.record)}/${String(detail.version)}`) ?? null;
      if (RECORD_ACTIONS.includes(r.action) && !record) record = missingVersion(detail);
      if (f.field && record) record = { ...record, changes: record.changes.filter((c) => c.code === f.field) };
      if (f.field && !record?.changes.length) continue;
      out.push({ ...r, who: r.user ?? r.actorLabel ?? "system", detail, record });
      if (out.length === limit) return out;
    }
    if (!f.field || rows.length < batch) return out;
    before = rows[rows.length - 1].id;
  }
}

export type AuditEvent = {
  id: number;
  at: Date;
  action: string;
  outcome: string;
  who: string;
  site: string | null;
  subject: string | null;
  ip: string | null;
  /** The event's stored detail (ids and codes; never CRF values or free text). */
  detail: Record<string, unknown>;
  /** For a CRF data event: the version's changed fields, read from the record versions. */
  record: RecordChange | null;
};

function missingVersion(detail: Record<string, unknown>): RecordChange {
  return {
    form: typeof detail.form === "string" ? detail.form : "",
    formVersion: 0,
    visit: typeof detail.visit === "string" ? detail.visit : "",
    version: Number(detail.version) || 0,
    reason: null,
    changes: [],
    seal: "record version not found",
  };
}

/** The record versions the CRF data events name, each with its previous version: per-field changes. */
async function recordChanges(
  ctx: AppContext,
  studyId: string,
  events: { action: string; detail: unknown }[],
): Promise<Map<string, RecordChange>> {
  const ids = new Set<string>();
  for (const e of events) {
    const id = (e.detail as Record<string, unknown> | null)?.record;
    if (RECORD_ACTIONS.includes(e.action) && typeof id === "string" && /^[0-9a-f-]{36}$/.test(id)) ids.add(id);
  }
  const out = new Map<string, RecordChange>();
  if (ids.size === 0) return out;
  // In chunks: a CSV of the whole trail may name more records than one statement takes parameters.
  const all = [...ids];
  const versions: Awaited<ReturnType<typeof versionsOf>> = [];
  for (let i = 0; i < all.length; i += 1000) versions.push(...(await versionsOf(ctx, studyId, all.slice(i, i + 1000))));
  const byKey = new Map(versions.map((v) => [`${v.recordId}/${v.version}`, v]));
  for (const v of versions) {
    const prev = v.version > 1 ? byKey.get(`${v.recordId}/${v.version - 1}`) : undefined;
    const def = definitionOf(v.formRow);
    const cur = parseValues(v.dataText);
    const old = prev ? parseValues(prev.dataText) : {};
    const names = [...(def?.fields.map((x) => x.name) ?? []), ...Object.keys(old), ...Object.keys(cur)];
    const changes = [...new Set(names)]
      .filter((n) => canonicalize(old[n] ?? null) !== canonicalize(cur[n] ?? null))
      .map((n) => {
        const fd = def?.fields.find((x) => x.name === n);
        return { code: n, field: fd ? `${fd.label} (${n})` : n, old: shown(fd, old[n]), new: shown(fd, cur[n]) };
      });
    const seal = !matchesSeal(ctx.crypto, v)
      ? MISMATCH_TEXT
      : v.version > 1 && (!prev || !matchesSeal(ctx.crypto, prev))
        ? `old value (version ${v.version - 1}) ${prev ? MISMATCH_TEXT : "not found"}`
        : MATCHES_TEXT;
    out.set(`${v.recordId}/${v.version}`, {
      form: v.form,
      formVersion: v.formVersion,
      visit: v.visit,
      version: v.version,
      reason: v.reason,
      changes,
      seal,
    });
  }
  return out;
}

/** Every version of the given records, with its entry's stored payload and the form version it used. */
async function versionsOf(ctx: AppContext, studyId: string, ids: string[]) {
  return ctx.db
    .select({
      recordId: recordVersions.recordId,
      version: recordVersions.version,
      formVersion: recordVersions.formVersion,
      dataText: recordVersions.dataText,
      missingText: recordVersions.missingText,
      calculatedText: recordVersions.calculatedText,
      reason: recordVersions.reason,
      subject: participants.subjectCode,
      form: records.formCode,
      visit: records.visit,
      instance: records.instance,
      payloadText: ledgerEntries.payloadText,
      payloadHash: ledgerEntries.payloadHash,
      formRow: {
        id: forms.id,
        code: forms.code,
        version: forms.version,
        definitionText: forms.definitionText,
        definitionSha256: forms.definitionSha256,
      },
    })
    .from(recordVersions)
    .innerJoin(ledgerEntries, eq(ledgerEntries.id, recordVersions.entryId))
    .innerJoin(records, eq(records.id, recordVersions.recordId))
    .innerJoin(participants, eq(participants.id, records.participantId))
    .innerJoin(forms, eq(forms.id, recordVersions.formId))
    .where(and(eq(recordVersions.studyId, studyId), inArray(recordVersions.recordId, ids)))
    .orderBy(asc(recordVersions.recordId), asc(recordVersions.version));
}

function definitionOf(f: { id: string; code: string; version: number; definitionText: string }) {
  try {
    return storedDefinition(f);
  } catch {
    return null;
  }
}

function parseValues(text: string): Record<string, unknown> {
  try {
    const v = JSON.parse(text) as unknown;
    return v && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

type FieldDef = FormDefinition["fields"][number];

/** A stored value as shown: numbers stay numbers; a choice as "Label (value)"; absent as null. */
function shown(fd: FieldDef | undefined, v: unknown): string | number | null {
  if (v === null || v === undefined) return null;
  if (typeof v === "number") return v;
  if (typeof v === "boolean") return v ? "yes" : "no";
  const option = (x: unknown) => {
    const o = fd && "options" in fd ? fd.options.find((p) => p.value === x) : undefined;
    return o ? `${o.label} (${o.value})` : String(x);
  };
  if (Array.isArray(v)) return v.map(option).join("; ");
  if (typeof v === "string") return option(v);
  return canonicalize(v);
}

/** Columns of the trail, in the page's and the CSV's order (the CSV header is the keys). */
export const AUDIT_COLUMNS = [
  { key: "event", label: "Event" },
  { key: "time_utc", label: "Time (UTC)" },
  { key: "action", label: "Action" },
  { key: "outcome", label: "Outcome" },
  { key: "user", label: "Who" },
  { key: "site", label: "Site" },
  { key: "subject", label: "Subject" },
  { key: "form", label: "Form" },
  { key: "form_version", label: "Form version" },
  { key: "visit", label: "Visit" },
  { key: "record_version", label: "Record version" },
  { key: "field", label: "Field" },
  { key: "old_value", label: "Old value" },
  { key: "new_value", label: "New value" },
  { key: "reason", label: "Reason for change" },
  { key: "seal", label: "Seal" },
  { key: "detail", label: "Detail" },
  { key: "ip", label: "IP" },
] as const;
type Cell = string | number | null;
export type AuditLine = Record<(typeof AUDIT_COLUMNS)[number]["key"], Cell> & {
  event: number;
  time_utc: string;
  action: string;
  outcome: string;
  user: string;
};

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** An event's detail as "key: value; ..." (ids shortened to 8 characters; never JSON). */
export function describeDetail(detail: Record<string, unknown>, prefix = ""): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(detail)) {
    const key = `${prefix}${k}`;
    if (v === null || v === undefined || v === "") continue;
    if (Array.isArray(v))
      parts.push(`${key}: ${v.map((x) => (typeof x === "object" ? canonicalize(x) : x)).join(", ")}`);
    else if (typeof v === "object") {
      const inner = describeDetail(v as Record<string, unknown>, `${key}.`);
      if (inner) parts.push(inner);
    } else parts.push(`${key}: ${typeof v === "string" && UUID.test(v) ? v.slice(0, 8) : String(v)}`);
  }
  return parts.join("; ");
}

/** The trail as lines: one per changed field of a CRF data event, one per other event. */
export function auditTrailLines(events: AuditEvent[]): AuditLine[] {
  const lines: AuditLine[] = [];
  for (const e of events) {
    const base = {
      event: e.id,
      time_utc: e.at.toISOString(),
      action: e.action,
      outcome: e.outcome,
      user: e.who,
      site: e.site,
      subject: e.subject,
      ip: e.ip,
    };
    const r = e.record;
    if (r) {
      const common = {
        ...base,
        form: r.form,
        form_version: r.formVersion || null,
        visit: r.visit,
        record_version: r.version || null,
        reason: r.reason,
        seal: r.seal,
        detail: null,
      };
      if (r.changes.length === 0) lines.push({ ...common, field: null, old_value: null, new_value: null });
      for (const c of r.changes) lines.push({ ...common, field: c.field, old_value: c.old, new_value: c.new });
      continue;
    }
    const isForm = e.action.startsWith("form.");
    const { form, version, ...rest } = e.detail;
    const shownDetail = isForm ? rest : e.detail;
    lines.push({
      ...base,
      form: typeof form === "string" ? form : null,
      form_version: isForm && typeof version === "number" ? version : null,
      visit: null,
      record_version: null,
      field: null,
      old_value: null,
      new_value: null,
      reason: null,
      seal: null,
      detail: describeDetail(isForm ? shownDetail : e.detail),
    });
  }
  return lines;
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
  actor: { userId: string | null; ip: string | null; access?: Record<string, unknown> },
) {
  const rows = await queryAuditTrail(ctx, study.id, f, 100_000);
  const numeric = new Set(["event", "form_version", "record_version", "old_value", "new_value"]);
  const lines = [
    AUDIT_COLUMNS.map((c) => c.key).join(","),
    ...auditTrailLines(rows).map((l) =>
      AUDIT_COLUMNS.map((c) => (numeric.has(c.key) ? csvValue(l[c.key]) : csvCell(l[c.key]))).join(","),
    ),
  ];
  // An export event (ADR 0071): the participants the listed events concern.
  const held = await participantIdsOfSubjects(
    ctx,
    study.id,
    rows.map((r) => r.subject),
  );
  await audit(ctx.db, {
    action: "export.audit_trail",
    actorUserId: actor.userId,
    studyId: study.id,
    ip: actor.ip,
    detail: { rows: rows.length, filters: f, ...actor.access, ...exportParticipantsDetail(held) },
  });
  return `${lines.join("\r\n")}\r\n`;
}
