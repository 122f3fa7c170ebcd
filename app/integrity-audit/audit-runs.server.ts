/**
 * The whole-study audit started from the regulator's study page: it runs in the background of the portal
 * process; the run and its report are kept in `audit_runs`, so the page (any replica) shows progress and the
 * result, and a restart leaves a clear "failed" state rather than a run that never ends.
 */
import { and, desc, eq, lt } from "drizzle-orm";
import { auditRuns } from "../../db/schema/index.ts";
import type { AppContext } from "../platform/context.server.ts";
import { audit } from "../audit-trail/record-event.server.ts";
import { runIntegrityAudit, type AuditReport } from "./integrity-audit.server.ts";
import { requirePermission, type Principal } from "../platform/permissions.server.ts";
import { getStudyOrThrow } from "../studies/studies.server.ts";

/** A run still "running" after this long was cut off (the portal stopped): it is shown as failed. */
const STALE_MS = 60 * 60_000;

export async function startAuditRun(ctx: AppContext, principal: Principal, studyCode: string) {
  const study = await getStudyOrThrow(ctx, studyCode);
  requirePermission(principal, "study.review", { studyId: study.id });
  const running = await latestAuditRun(ctx, study.id);
  if (running?.status === "running") return running;
  const [run] = await ctx.db.insert(auditRuns).values({ studyId: study.id, requestedBy: principal.userId }).returning();
  await audit(ctx.db, {
    action: "study.audit",
    actorUserId: principal.userId,
    actorLabel: principal.label,
    studyId: study.id,
    detail: { run: run.id },
  });
  void runIntegrityAudit(ctx, { study: study.code })
    .then(
      (report) =>
        ctx.db
          .update(auditRuns)
          .set({ status: "done", finishedAt: new Date(), clean: report.clean, reportText: JSON.stringify(report) })
          .where(eq(auditRuns.id, run.id)),
      (err: unknown) =>
        ctx.db
          .update(auditRuns)
          .set({ status: "failed", finishedAt: new Date(), error: (err as Error).message })
          .where(eq(auditRuns.id, run.id)),
    )
    .catch(() => {
      /* the database went away: the run stays "running" until it is stale */
    });
  return { ...run, report: null as AuditReport | null };
}

/** The latest audit run of a study, with its report once done. */
export async function latestAuditRun(ctx: AppContext, studyId: string) {
  await ctx.db
    .update(auditRuns)
    .set({
      status: "failed",
      finishedAt: new Date(),
      error: "the portal stopped before the audit finished; run it again",
    })
    .where(
      and(
        eq(auditRuns.studyId, studyId),
        eq(auditRuns.status, "running"),
        lt(auditRuns.startedAt, new Date(Date.now() - STALE_MS)),
      ),
    );
  const [run] = await ctx.db
    .select()
    .from(auditRuns)
    .where(eq(auditRuns.studyId, studyId))
    .orderBy(desc(auditRuns.startedAt))
    .limit(1);
  if (!run) return null;
  return { ...run, report: run.reportText ? (JSON.parse(run.reportText) as AuditReport) : null };
}
