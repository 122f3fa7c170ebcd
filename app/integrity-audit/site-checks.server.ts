/**
 * The integrity audit's check of each site's time zone (ADR 0030) against the sealed log: the zone of `site.added`
 * version 2, then of the latest `site.time_zone_set`. A site added before zones were sealed (`site.added` version 1)
 * has the column's default, UTC, until a `site.time_zone_set` says otherwise.
 */
import { sql } from "drizzle-orm";
import type { AuditFinding } from "../../anchoring/verifier/log-auditor.ts";
import { studyEntriesOfKinds } from "../../db/queries/integrity-audit.ts";
import { rowsOf } from "../../db/queries/rows.ts";
import type { AppContext } from "../platform/context.server.ts";

/** The zone a site has when none was sealed: the default of sites.time_zone (migration 0020). */
const DEFAULT_ZONE = "UTC";

/**
 * The latest sealed time zone of each of `codes` (the study's site rows), in log order. Only those sites' zones are
 * kept: the findings are about rows, and a map of every site.added entry grows with the log (1M entries, 1M keys).
 */
async function sealedZones(ctx: AppContext, studyId: string, codes: Set<string>) {
  const zones = new Map<string, string>();
  let after: { seq: number | null; at: Date; id: string } | null = null;
  for (;;) {
    const page = await studyEntriesOfKinds(ctx.db, studyId, ["site.added", "site.time_zone_set"], after, 1000);
    if (page.length === 0) break;
    for (const e of page) {
      let p: { site?: unknown; timeZone?: unknown };
      try {
        p = JSON.parse(e.payloadText);
      } catch {
        continue; // reported by the log audit
      }
      if (typeof p.site !== "string" || !codes.has(p.site)) continue;
      const zone = typeof p.timeZone === "string" ? p.timeZone : null;
      if (zone !== null) zones.set(p.site, zone);
      else if (e.kind === "site.added" && !zones.has(p.site)) zones.set(p.site, DEFAULT_ZONE);
    }
    const l = page[page.length - 1];
    after = { seq: l.seq, at: l.at, id: l.id };
  }
  return zones;
}

export async function siteFindings(ctx: AppContext, study: { id: string; code: string }, findings: AuditFinding[]) {
  const sites = rowsOf<{ id: string; code: string; time_zone: string }>(
    await ctx.db.execute(sql`SELECT id, code, time_zone FROM sites WHERE study_id = ${study.id} ORDER BY code`),
  );
  const zones = await sealedZones(ctx, study.id, new Set(sites.map((s) => String(s.code))));
  for (const s of sites) {
    const sealed = zones.get(s.code) ?? DEFAULT_ZONE;
    if (s.time_zone !== sealed)
      findings.push({
        code: "DATA_ROW_MISMATCH",
        severity: "tamper",
        study: study.code,
        table: "sites",
        id: String(s.id),
        field: "timeZone",
        message:
          `site ${s.code} of ${study.code}: the time zone is ${JSON.stringify(s.time_zone)} in the database ` +
          `but ${JSON.stringify(sealed)} in the sealed log`,
      });
  }
  return { rows: sites.length };
}
