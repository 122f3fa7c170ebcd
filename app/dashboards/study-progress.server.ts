/**
 * "How is my study going" (issue 18, ADR 0031): the numbers behind the study home page's progress panel, from four
 * aggregate SQL queries that run unchanged on PGlite and PostgreSQL, limited to the sites the principal may read.
 *
 * Definitions (shown on the page too):
 * - enrolled: a participant whose disposition is enrolled, randomized, discontinued or completed; the enrolment date
 *   is the effective date of their first `enrolled` disposition, else the day they were registered (UTC);
 * - screen failure: disposition `screen_failed`; screened: every participant registered;
 * - complete record: its current version holds a value or a missing-data code for every required field of its form
 *   version that has no show-if condition, nor its section (conditional fields are not counted: SQL does not
 *   evaluate branching);
 *   every other record is incomplete. The subject matrix evaluates branching logic, so a record with an empty
 *   conditional required field can be "incomplete" there and complete here;
 * - open query: status `open` (a re-opened query too), aged from when it was raised; answered queries are counted
 *   apart (they wait for the monitor, not the site);
 * - SDV done: the record's current version has an SDV mark; awaiting signature: no signature on the current version
 *   (a signature of an older version was invalidated by the correction);
 * - locked: the record, its subject's casebook or the whole study is under a lock not released.
 * Arms are never part of these numbers.
 */
import { type SQL, sql } from "drizzle-orm";
import { rowsOf } from "../../db/queries/rows.ts";
import type { AppContext } from "../platform/context.server.ts";
import { can, PERMISSIONS, type Principal } from "../platform/permissions.server.ts";
import { ServiceError } from "../platform/errors.server.ts";
import { getStudyOrThrow } from "../studies/studies.server.ts";
import { studySettingsOf } from "../studies/settings.server.ts";

export const QUERY_AGE_BUCKETS = [
  { label: "0-7 days", min: 0, max: 7 },
  { label: "8-14 days", min: 8, max: 14 },
  { label: "15-30 days", min: 15, max: 30 },
  { label: "over 30 days", min: 31, max: Number.POSITIVE_INFINITY },
] as const;

export interface SiteProgress {
  code: string;
  name: string;
  screened: number;
  screening: number;
  screenFailed: number;
  enrolled: number;
  target: number | null;
}

export interface StudyProgress {
  study: string;
  asOf: string;
  /** Null when the principal sees every site of the study; else the site codes seen. */
  scopedTo: string[] | null;
  sites: SiteProgress[];
  enrolment: {
    enrolled: number;
    target: number | null;
    /** Monday of each week (UTC dates) from the first enrolment to `asOf`. */
    weeks: string[];
    /** Cumulative enrolment at the end of each week, per site code. */
    cumulative: { site: string; counts: number[] }[];
  };
  screening: { screened: number; screening: number; screenFailed: number };
  forms: { records: number; complete: number; incomplete: number };
  queries: { open: number; answered: number; byAge: { label: string; count: number }[] };
  sdv: { verified: number; records: number };
  signatures: { awaiting: number; records: number };
  locked: { locked: number; records: number };
}

const ENROLLED = ["enrolled", "randomized", "discontinued", "completed"];
const DAY_MS = 86_400_000;

/** The progress of a study as the principal may see it (sites of a site-scoped membership only). */
export async function studyProgress(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  opts: { asOf?: Date } = {},
): Promise<StudyProgress> {
  const study = await getStudyOrThrow(ctx, studyCode);
  if (!can(principal, "study.view", { studyId: study.id })) throw new ServiceError("forbidden", "not permitted");
  const asOf = opts.asOf ?? new Date();
  const siteRows = rowsOf<{ id: string; code: string; name: string }>(
    await ctx.db.execute(sql`SELECT id, code, name FROM sites WHERE study_id = ${study.id} ORDER BY code`),
  );
  // can() lets a site-scoped membership through when no site is named: the whole study needs a study-wide one.
  const readers = PERMISSIONS["records.read"] as readonly string[];
  const whole =
    principal.platformAdmin ||
    principal.memberships.some((m) => m.studyId === study.id && m.siteId === null && readers.includes(m.role));
  const seen = siteRows.filter((s) => can(principal, "records.read", { studyId: study.id, siteId: s.id }));
  const readable = whole ? siteRows : seen;
  const inSites = (col: SQL): SQL =>
    whole
      ? sql`TRUE`
      : readable.length === 0
        ? sql`FALSE`
        : sql`${col} IN (${sql.join(
            readable.map((s) => sql`${s.id}::uuid`),
            sql`, `,
          )})`;
  const asOfIso = asOf.toISOString();

  const [participantRows, recordRows, queryRows, settings] = await Promise.all([
    ctx.db.execute(sql`
      SELECT x.site_id, x.disposition,
             to_char(date_trunc('week', x.enrolled_on), 'YYYY-MM-DD') AS week, count(*)::int AS n
      FROM (
        SELECT p.site_id, p.disposition,
               COALESCE(
                 (SELECT min(d.effective_date) FROM participant_dispositions d
                  WHERE d.participant_id = p.id AND d.status = 'enrolled'),
                 (p.enrolled_at AT TIME ZONE 'UTC')::date
               ) AS enrolled_on
        FROM participants p
        WHERE p.study_id = ${study.id} AND ${inSites(sql`p.site_id`)}
      ) x
      GROUP BY x.site_id, x.disposition, week`),
    ctx.db.execute(sql`
      WITH cur AS (
        SELECT r.id, r.site_id, r.participant_id, r.current_version, r.status,
               v.data_text::jsonb AS data, COALESCE(v.missing_text, '{}')::jsonb AS missing,
               f.definition_text::jsonb AS def
        FROM records r
        JOIN record_versions v ON v.record_id = r.id AND v.version = r.current_version
        JOIN forms f ON f.id = v.form_id
        WHERE r.study_id = ${study.id} AND ${inSites(sql`r.site_id`)}
      )
      SELECT count(*)::int AS records,
        count(*) FILTER (WHERE NOT EXISTS (
          SELECT 1 FROM jsonb_array_elements(cur.def -> 'fields') fd
          WHERE fd ->> 'required' = 'true' AND fd -> 'showIf' IS NULL AND COALESCE(fd ->> 'type', '') <> 'calc'
            AND NOT EXISTS (
              SELECT 1 FROM jsonb_array_elements(COALESCE(cur.def -> 'sections', '[]'::jsonb)) sec
              WHERE sec ->> 'name' = fd ->> 'section' AND sec -> 'showIf' IS NOT NULL)
            AND COALESCE(btrim(cur.data ->> (fd ->> 'name')), '') IN ('', '[]')
            AND cur.missing -> (fd ->> 'name') IS NULL
        ))::int AS complete,
        count(*) FILTER (WHERE EXISTS (
          SELECT 1 FROM sdv_marks m WHERE m.record_id = cur.id AND m.version = cur.current_version
        ))::int AS verified,
        count(*) FILTER (WHERE NOT EXISTS (
          SELECT 1 FROM signatures s WHERE s.record_id = cur.id AND s.version = cur.current_version
        ))::int AS awaiting,
        count(*) FILTER (WHERE cur.status = 'locked' OR EXISTS (
          SELECT 1 FROM locks l WHERE l.study_id = ${study.id} AND l.released_at IS NULL AND (
            l.scope = 'study' OR (l.scope = 'subject' AND l.target_id = cur.participant_id)
            OR (l.scope = 'record' AND l.target_id = cur.id))
        ))::int AS locked
      FROM cur`),
    ctx.db.execute(sql`
      SELECT q.status,
             floor(extract(epoch FROM (${asOfIso}::timestamptz - q.opened_at)) / 86400)::int AS age,
             count(*)::int AS n
      FROM queries q JOIN records r ON r.id = q.record_id
      WHERE q.study_id = ${study.id} AND q.status <> 'closed' AND ${inSites(sql`r.site_id`)}
      GROUP BY q.status, age`),
    studySettingsOf(ctx, study.id),
  ]);

  const targets = settings.enrolmentTargets;
  const byId = new Map(readable.map((s) => [s.id, s]));
  const sites: SiteProgress[] = readable.map((s) => ({
    code: s.code,
    name: s.name,
    screened: 0,
    screening: 0,
    screenFailed: 0,
    enrolled: 0,
    target: targets?.sites[s.code] ?? null,
  }));
  const siteOf = new Map(sites.map((s) => [s.code, s]));
  const weekly = new Map<string, Map<string, number>>(); // site code -> week -> enrolled that week
  for (const r of rowsOf<{ site_id: string; disposition: string; week: string; n: number }>(participantRows)) {
    const s = siteOf.get(byId.get(r.site_id)?.code ?? "");
    if (!s) continue;
    const n = Number(r.n);
    s.screened += n;
    if (r.disposition === "screening") s.screening += n;
    if (r.disposition === "screen_failed") s.screenFailed += n;
    if (ENROLLED.includes(r.disposition)) {
      s.enrolled += n;
      const w = weekly.get(s.code) ?? new Map<string, number>();
      w.set(r.week, (w.get(r.week) ?? 0) + n);
      weekly.set(s.code, w);
    }
  }
  const weeks = weekRange(
    [...weekly.values()].flatMap((w) => [...w.keys()]),
    asOf,
  );
  const cumulative = sites.map((s) => {
    let sum = 0;
    const w = weekly.get(s.code);
    return { site: s.code, counts: weeks.map((wk) => (sum += w?.get(wk) ?? 0)) };
  });

  const rec = rowsOf<Record<string, number>>(recordRows)[0] ?? {};
  const records = Number(rec.records ?? 0);
  const complete = Number(rec.complete ?? 0);
  const byAge = QUERY_AGE_BUCKETS.map((b) => ({ label: b.label, count: 0 }));
  let open = 0;
  let answered = 0;
  for (const q of rowsOf<{ status: string; age: number; n: number }>(queryRows)) {
    const n = Number(q.n);
    if (q.status === "answered") {
      answered += n;
      continue;
    }
    open += n;
    const age = Math.max(0, Number(q.age));
    const i = QUERY_AGE_BUCKETS.findIndex((b) => age >= b.min && age <= b.max);
    byAge[i].count += n;
  }
  const sum = (k: keyof SiteProgress) => sites.reduce((a, s) => a + (s[k] as number), 0);
  return {
    study: study.code,
    asOf: asOfIso.slice(0, 10),
    scopedTo: whole ? null : readable.map((s) => s.code),
    sites,
    enrolment: {
      enrolled: sum("enrolled"),
      target: whole ? (targets?.total ?? null) : sitesTarget(sites),
      weeks,
      cumulative,
    },
    screening: { screened: sum("screened"), screening: sum("screening"), screenFailed: sum("screenFailed") },
    forms: { records, complete, incomplete: records - complete },
    queries: { open, answered, byAge },
    sdv: { verified: Number(rec.verified ?? 0), records },
    signatures: { awaiting: Number(rec.awaiting ?? 0), records },
    locked: { locked: Number(rec.locked ?? 0), records },
  };
}

/** A site-scoped viewer's target: the sum of their sites' targets, when every one of them has one. */
function sitesTarget(sites: SiteProgress[]): number | null {
  if (sites.length === 0 || sites.some((s) => s.target === null)) return null;
  return sites.reduce((a, s) => a + (s.target ?? 0), 0);
}

/** Every Monday (UTC) from the earliest week given to the week of `asOf` (at most 520 weeks, the latest kept). */
function weekRange(starts: string[], asOf: Date): string[] {
  if (starts.length === 0) return [];
  const monday = (d: Date) =>
    new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()) - ((d.getUTCDay() + 6) % 7) * DAY_MS);
  const first = new Date(`${[...starts].sort()[0]}T00:00:00Z`);
  const last = monday(asOf);
  const out: string[] = [];
  for (let t = first.getTime(); t <= Math.max(last.getTime(), first.getTime()); t += 7 * DAY_MS)
    out.push(new Date(t).toISOString().slice(0, 10));
  return out.slice(-520);
}
