/**
 * What the database lock page shows (ADR 0054): the lock in force (since, by whom, why), every analysis data set with
 * its name, size and sealed SHA-256, earlier locks and their unlocks, the study's unblinding, and which forms this
 * person may use (lock, unlock, unblind, downloads). Each analysis data set is checked against its `database.locked`
 * entry (the row's SHA-256, size and record count, and the stored file's own SHA-256): the page calls a SHA-256
 * "sealed" only when they all match, and names what differs otherwise.
 */
import { sql } from "drizzle-orm";
import { rowsOf } from "../../db/queries/rows.ts";
import { hexOf } from "../integrity-audit/linked-table.ts";
import type { AppContext } from "../platform/context.server.ts";
import { can, requirePermission, type Principal } from "../platform/permissions.server.ts";
import { canExportAllocations } from "../randomization/allocations-export.server.ts";
import { committedList } from "../randomization/list-state.server.ts";
import { studyUnblinding } from "../randomization/unblinding.server.ts";
import { getStudyOrThrow } from "../studies/studies.server.ts";
import { canReadAnalysisDataSet, databaseLockHistory } from "./database-lock.server.ts";

/** How one database lock's row and stored file compare with its sealed entry. */
export interface AnalysisSealCheck {
  /** The SHA-256 the `database.locked` entry holds (null: no such entry). */
  sealedSha256: string | null;
  /** The SHA-256 of the stored file's bytes. */
  storedSha256: string;
  /** What differs, in words (empty when everything matches). */
  differences: string[];
  matchesSeal: boolean;
}

/** Each database lock of the study (by id) against its sealed entry. */
export async function analysisSealChecks(ctx: AppContext, studyId: string): Promise<Map<string, AnalysisSealCheck>> {
  const rows = rowsOf<Record<string, unknown>>(
    await ctx.db.execute(sql`
      SELECT d.id, d.lock_id, d.analysis_sha256, d.analysis_bytes, d.records,
             encode(sha256(d.analysis_data), 'hex') AS stored_sha256, e.kind, e.payload_text
        FROM database_locks d LEFT JOIN ledger_entries e ON e.id = d.entry_id
       WHERE d.study_id = ${studyId}`),
  );
  const out = new Map<string, AnalysisSealCheck>();
  for (const r of rows) {
    let p: Record<string, unknown> | null = null;
    try {
      p = r.kind === "database.locked" && r.payload_text ? JSON.parse(String(r.payload_text)) : null;
    } catch {
      p = null;
    }
    const rowSha = hexOf(r.analysis_sha256);
    const stored = String(r.stored_sha256);
    const differences = !p
      ? ["no sealed entry"]
      : (
          [
            ["database lock", p.databaseLock === String(r.id)],
            ["lock", p.lock === String(r.lock_id)],
            ["SHA-256", p.analysisSha256 === rowSha],
            ["stored file", p.analysisSha256 === stored],
            ["size", p.analysisBytes === Number(r.analysis_bytes)],
            ["records", p.records === Number(r.records)],
          ] as [string, boolean][]
        )
          .filter(([, ok]) => !ok)
          .map(([w]) => w);
    out.set(String(r.id), {
      sealedSha256: p && typeof p.analysisSha256 === "string" ? p.analysisSha256 : null,
      storedSha256: stored,
      differences,
      matchesSeal: differences.length === 0,
    });
  }
  return out;
}

export async function lockPageState(ctx: AppContext, principal: Principal, studyCode: string) {
  const study = await getStudyOrThrow(ctx, studyCode);
  requirePermission(principal, "study.view", { studyId: study.id });
  const checks = await analysisSealChecks(ctx, study.id);
  const history = (await databaseLockHistory(ctx, principal, study.code)).map((h) => {
    const c = checks.get(h.id);
    return {
      ...h,
      sealedSha256: c?.sealedSha256 ?? null,
      storedSha256: c?.storedSha256 ?? null,
      differences: c?.differences ?? ["no sealed entry"],
      matchesSeal: c?.matchesSeal ?? false,
    };
  });
  const inForce = history.find((h) => h.releasedAt === null) ?? null;
  const unblinding = await studyUnblinding(ctx, study.id);
  const list = await committedList(ctx.db, study.id);
  const scope = { studyId: study.id };
  return {
    study: study.code,
    inForce,
    history,
    unblinding,
    listCommitted: Boolean(list),
    may: {
      lock: can(principal, "database.lock", scope),
      unblind: can(principal, "randomization.unblind", scope) && principal.kind === "user",
      analysis: canReadAnalysisDataSet(principal, study.id),
      allocations: canExportAllocations(principal, study.id),
    },
  };
}
