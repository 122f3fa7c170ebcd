/**
 * The subject matrix (issue 18, ADR 0039): participants (rows) x visits (columns), each cell holding, per form of the
 * visit, the state of highest precedence (cell-state.ts) and the count of rows of a repeating form. A fixed number
 * of queries whatever the size of the study: participants, forms, schedule, records with their current versions,
 * signatures, SDV marks, locks and queries, each read once for the whole study.
 */
import { and, asc, eq, inArray, isNull, sql } from "drizzle-orm";
import {
  forms,
  locks,
  participants,
  queries,
  records,
  recordVersions,
  sdvMarks,
  signatures,
  sites,
} from "../../db/schema/index.ts";
import { visibleFields } from "../../anchoring/forms/check-entry.ts";
import { type FormDefinition, isRequired, parseFormDefinition } from "../../anchoring/forms/definition.ts";
import type { AppContext } from "../platform/context.server.ts";
import { ServiceError } from "../platform/errors.server.ts";
import { can, requirePermission, type Principal } from "../platform/permissions.server.ts";
import { getStudyOrThrow } from "../studies/studies.server.ts";
import { currentSchedule } from "../visit-schedule/schedule.server.ts";
import { type CellState, isCellState, recordState, worstState } from "./cell-state.ts";

export interface MatrixFilter {
  /** A site code: only its participants. */
  site?: string;
  /** Part of a subject code (case-insensitive). */
  subject?: string;
  /** Only participants with at least one form in this state (the other cells are still shown). */
  state?: string;
  /** Only this form's cells (a form code). */
  form?: string;
}

export interface MatrixFormCell {
  form: string;
  state: CellState;
  /** Rows entered (a repeating form may hold several; 0 when not started). */
  count: number;
  repeating: boolean;
  /** The record (the first row of a repeating form), or null when not started. */
  recordId: string | null;
}

export interface MatrixVisit {
  code: string;
  name: string;
  forms: string[];
}

export interface SubjectMatrix {
  study: string;
  /** False when the study has no visit schedule: the visits come from the approved forms. */
  scheduled: boolean;
  /** Null unless the schedule in force does not match its seal: then the warning, in words. */
  scheduleSealMismatch: string | null;
  visits: MatrixVisit[];
  /** The sites the principal may see (for the filter). */
  sites: string[];
  /** Every form code shown in some visit (for the filter). */
  forms: string[];
  /** Participants visible to the principal before the filter (0: none enrolled yet). */
  total: number;
  rows: { subject: string; site: string; cells: { visit: string; forms: MatrixFormCell[] }[] }[];
}

/** The definition of each form's latest approved version, by form code. */
async function approvedDefinitions(ctx: AppContext, studyId: string) {
  const rows = await ctx.db
    .select({ code: forms.code, version: forms.version, text: forms.definitionText })
    .from(forms)
    .where(and(eq(forms.studyId, studyId), eq(forms.status, "approved")))
    .orderBy(asc(forms.code), asc(forms.version));
  const latest = new Map<string, FormDefinition>();
  for (const r of rows) {
    const parsed = parseFormDefinition(JSON.parse(r.text));
    if (parsed.ok) latest.set(r.code, parsed.definition); // ascending versions: the last one wins
  }
  return latest;
}

/** The shown required fields that are empty and have no missing-data code. */
export function emptyRequired(def: FormDefinition, data: Record<string, unknown>, missing: Record<string, unknown>) {
  const shown = visibleFields(def, data);
  return def.fields.filter((f) => {
    if (!isRequired(f) || !shown.has(f.name) || f.name in missing) return false;
    const v = data[f.name];
    return v === undefined || v === null || v === "" || (Array.isArray(v) && v.length === 0);
  });
}

export function isIncomplete(def: FormDefinition, data: Record<string, unknown>, missing: Record<string, unknown>) {
  return emptyRequired(def, data, missing).length > 0;
}

/**
 * The record page's flag: the fields a record lacks under its form as approved now (what makes its matrix cell
 * incomplete), as {name, label}; [] for a complete record or one the principal may not read.
 */
export async function recordGaps(ctx: AppContext, principal: Principal, studyId: string, recordId: string) {
  const [r] = await ctx.db
    .select({
      siteId: records.siteId,
      form: records.formCode,
      dataText: recordVersions.dataText,
      missingText: recordVersions.missingText,
      ownDefinition: forms.definitionText,
    })
    .from(records)
    .innerJoin(
      recordVersions,
      and(eq(recordVersions.recordId, records.id), eq(recordVersions.version, records.currentVersion)),
    )
    .innerJoin(forms, eq(forms.id, recordVersions.formId))
    .where(and(eq(records.id, recordId), eq(records.studyId, studyId)));
  if (!r || !can(principal, "records.read", { studyId, siteId: r.siteId })) return [];
  const own = parseFormDefinition(JSON.parse(r.ownDefinition));
  const def = (await approvedDefinitions(ctx, studyId)).get(r.form) ?? (own.ok ? own.definition : null);
  if (!def) return [];
  const gaps = emptyRequired(def, JSON.parse(r.dataText), JSON.parse(r.missingText ?? "{}"));
  return gaps.map((f) => ({ name: f.name, label: f.label }));
}

export async function subjectMatrix(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  filter: MatrixFilter = {},
): Promise<SubjectMatrix> {
  const study = await getStudyOrThrow(ctx, studyCode);
  requirePermission(principal, "records.read", { studyId: study.id });
  if (filter.state && !isCellState(filter.state))
    throw new ServiceError("invalid", `state: ${filter.state} is not a state of the subject matrix`, "state");
  // Site scoping as listParticipants: a principal whose memberships are all site-scoped sees only those sites.
  const mine = principal.memberships.filter((m) => m.studyId === study.id);
  const siteLimited = !principal.platformAdmin && mine.length > 0 && mine.every((m) => m.siteId !== null);
  const siteIds = mine.map((m) => m.siteId).filter((s): s is string => s !== null);
  const scope = siteLimited ? inArray(participants.siteId, siteIds) : undefined;

  // 1. Participants of the visible sites.
  const people = await ctx.db
    .select({ id: participants.id, subject: participants.subjectCode, site: sites.code })
    .from(participants)
    .innerJoin(sites, eq(sites.id, participants.siteId))
    .where(and(eq(participants.studyId, study.id), scope))
    .orderBy(asc(participants.subjectCode));
  // 2-3. Forms and schedule: the columns.
  const defs = await approvedDefinitions(ctx, study.id);
  const schedule = await currentSchedule(ctx.db, study.id);
  let visits: MatrixVisit[];
  if (schedule) {
    visits = schedule.definition.visits.map((v) => ({
      code: v.code.toUpperCase(),
      name: v.name,
      forms: v.forms.map((f) => f.toUpperCase()),
    }));
  } else {
    // No schedule: the visits of the approved forms (by code), each form's order kept (a visit new to the list goes
    // after its predecessor in that form, else before its successor, else last): stable for the same forms.
    const order: string[] = [];
    for (const d of defs.values())
      d.visits.forEach((v, i) => {
        if (order.includes(v)) return;
        const before = i > 0 ? order.indexOf(d.visits[i - 1]) : -1;
        const after = d.visits.slice(i + 1).find((n) => order.includes(n));
        if (before >= 0) order.splice(before + 1, 0, v);
        else if (after !== undefined) order.splice(order.indexOf(after), 0, v);
        else order.push(v);
      });
    visits = order.map((code) => ({
      code,
      name: code,
      forms: [...defs.values()].filter((d) => d.visits.includes(code)).map((d) => d.code),
    }));
  }
  const formCodes = [...new Set(visits.flatMap((v) => v.forms))];

  // 4. Records with their current version (and that version's form definition, the fallback for a retired form).
  const recs = await ctx.db
    .select({
      id: records.id,
      participantId: records.participantId,
      form: records.formCode,
      visit: records.visit,
      instance: records.instance,
      version: records.currentVersion,
      dataText: recordVersions.dataText,
      missingText: recordVersions.missingText,
      ownDefinition: forms.definitionText,
    })
    .from(records)
    .innerJoin(participants, eq(participants.id, records.participantId))
    .innerJoin(
      recordVersions,
      and(eq(recordVersions.recordId, records.id), eq(recordVersions.version, records.currentVersion)),
    )
    .innerJoin(forms, eq(forms.id, recordVersions.formId))
    .where(and(eq(records.studyId, study.id), scope))
    .orderBy(asc(records.instance));
  const current = and(eq(records.studyId, study.id), scope);
  // 5. Signatures over the current version (only investigators hold records.sign).
  const signed = new Set(
    (
      await ctx.db
        .selectDistinct({ id: signatures.recordId })
        .from(signatures)
        .innerJoin(records, and(eq(records.id, signatures.recordId), eq(records.currentVersion, signatures.version)))
        .innerJoin(participants, eq(participants.id, records.participantId))
        .where(current)
    ).map((r) => r.id),
  );
  // 6. SDV marks over the current version.
  const sdv = new Set(
    (
      await ctx.db
        .selectDistinct({ id: sdvMarks.recordId })
        .from(sdvMarks)
        .innerJoin(records, and(eq(records.id, sdvMarks.recordId), eq(records.currentVersion, sdvMarks.version)))
        .innerJoin(participants, eq(participants.id, records.participantId))
        .where(current)
    ).map((r) => r.id),
  );
  // 7. Locks in force (the study's, a subject's, a record's), as in activeLock.
  const held = await ctx.db
    .select({ scope: locks.scope, target: locks.targetId })
    .from(locks)
    .where(and(eq(locks.studyId, study.id), isNull(locks.releasedAt)));
  const studyLocked = held.some((l) => l.scope === "study");
  const lockedTargets = new Set(held.map((l) => l.target).filter((t): t is string => t !== null));
  // 8. Open or answered queries.
  const queried = new Set(
    (
      await ctx.db
        .selectDistinct({ id: queries.recordId })
        .from(queries)
        .innerJoin(records, eq(records.id, queries.recordId))
        .innerJoin(participants, eq(participants.id, records.participantId))
        .where(and(current, sql`${queries.status} in ('open', 'answered')`))
    ).map((r) => r.id),
  );

  const ownDefs = new Map<string, FormDefinition | null>();
  const definitionOf = (form: string, text: string) => {
    const approved = defs.get(form);
    if (approved) return approved;
    if (!ownDefs.has(text)) {
      const p = parseFormDefinition(JSON.parse(text));
      ownDefs.set(text, p.ok ? p.definition : null);
    }
    return ownDefs.get(text) ?? null;
  };
  type Row = { id: string; state: CellState };
  const byCell = new Map<string, Row[]>();
  for (const r of recs) {
    const def = definitionOf(r.form, r.ownDefinition);
    const data = JSON.parse(r.dataText) as Record<string, unknown>;
    const missing = JSON.parse(r.missingText ?? "{}") as Record<string, unknown>;
    const state = recordState({
      locked: studyLocked || lockedTargets.has(r.id) || lockedTargets.has(r.participantId),
      openQuery: queried.has(r.id),
      incomplete: def ? isIncomplete(def, data, missing) : false,
      sdvDone: sdv.has(r.id),
      signed: signed.has(r.id),
    });
    const key = `${r.participantId}|${r.visit}|${r.form}`;
    byCell.set(key, [...(byCell.get(key) ?? []), { id: r.id, state }]);
  }

  const siteCode = filter.site?.trim().toUpperCase();
  const search = filter.subject?.trim().toUpperCase();
  const onlyForm = filter.form?.trim().toUpperCase();
  const rows = people
    .filter((p) => !siteCode || p.site.toUpperCase() === siteCode)
    .filter((p) => !search || p.subject.toUpperCase().includes(search))
    .map((p) => ({
      subject: p.subject,
      site: p.site,
      cells: visits.map((v) => ({
        visit: v.code,
        forms: v.forms
          .filter((f) => !onlyForm || f === onlyForm)
          .map((f) => {
            const rowsOf = byCell.get(`${p.id}|${v.code}|${f}`) ?? [];
            return {
              form: f,
              state: worstState(rowsOf.map((x) => x.state)),
              count: rowsOf.length,
              repeating: defs.get(f)?.repeating === true,
              recordId: rowsOf[0]?.id ?? null,
            };
          }),
      })),
    }))
    .filter((r) => !filter.state || r.cells.some((c) => c.forms.some((f) => f.state === filter.state)));
  return {
    study: study.code,
    scheduled: schedule !== null,
    scheduleSealMismatch: schedule?.sealMismatch ?? null,
    visits,
    sites: [...new Set(people.map((p) => p.site))].sort(),
    forms: formCodes,
    total: people.length,
    rows,
  };
}
