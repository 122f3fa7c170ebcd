/**
 * Where an imported record version came from (issue 18, ADR 0036/0037), for the record page: the file's name (from
 * its import job), the row, the job, and the source system's claims (user, time, reason) as the version's row holds
 * them in clear. The claims are the source system's, never our accounts; our own time is the version's entry time.
 */
import { inArray } from "drizzle-orm";
import { importJobs } from "../../db/schema/study-operations.ts";
import type { AppContext } from "../platform/context.server.ts";
import type { ImportSource } from "./import-source.ts";

export interface Migration {
  job: string;
  fileName: string;
  fileSha256: string;
  row: number;
  claims: ImportSource["claims"];
}

/** The migrations of a record's versions that were imported (by version number); versions entered here are absent. */
export async function migrationsOf(
  ctx: AppContext,
  versions: { version: number; source?: string | null }[],
): Promise<Map<number, Migration>> {
  const sources = versions
    .filter((v) => v.source)
    .map((v) => ({ version: v.version, s: JSON.parse(v.source as string) as ImportSource }));
  const out = new Map<number, Migration>();
  if (sources.length === 0) return out;
  const jobs = await ctx.db
    .select({ id: importJobs.id, fileName: importJobs.fileName })
    .from(importJobs)
    .where(inArray(importJobs.id, [...new Set(sources.map((x) => x.s.job))]));
  const names = new Map(jobs.map((j) => [j.id, j.fileName]));
  for (const { version, s } of sources)
    out.set(version, {
      job: s.job,
      fileName: names.get(s.job) ?? `import ${s.job}`,
      fileSha256: s.fileSha256,
      row: s.row,
      claims: s.claims,
    });
  return out;
}
