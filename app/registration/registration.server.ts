/**
 * The public registration page switched on or off by the sponsor (issue 20, ADR 0050): each switch is a
 * study_registrations row, a `registration.published` entry and an audit-trail event, in one transaction; the
 * latest row is in force.
 */
import { desc, eq, sql } from "drizzle-orm";
import type { DbOrTx } from "../../db/client.ts";
import { rowsOf } from "../../db/queries/rows.ts";
import { studyRegistrations } from "../../db/schema/index.ts";
import { audit } from "../audit-trail/record-event.server.ts";
import { appendEntry } from "../log/append-entry.server.ts";
import { auditActor, auditDetail, payloadActor, rowTokenColumns } from "../platform/attribution.ts";
import type { AppContext } from "../platform/context.server.ts";
import { ServiceError } from "../platform/errors.server.ts";
import { requirePermission, type Principal } from "../platform/permissions.server.ts";
import { getStudyOrThrow } from "../studies/studies.server.ts";

/** The registration in force: published or not, and since when (null: never switched on). */
export async function registrationState(db: DbOrTx, studyId: string) {
  const [r] = await db
    .select({ published: studyRegistrations.published, at: studyRegistrations.createdAt })
    .from(studyRegistrations)
    .where(eq(studyRegistrations.studyId, studyId))
    .orderBy(desc(studyRegistrations.createdAt), desc(studyRegistrations.id))
    .limit(1);
  return r ? { published: r.published, since: r.at.toISOString() } : { published: false, since: null };
}

/** Publish (`published` true) or withdraw the study's public page (permission registration.manage). */
export async function setRegistration(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  input: { published: unknown },
) {
  const study = await getStudyOrThrow(ctx, studyCode);
  requirePermission(principal, "registration.manage", { studyId: study.id });
  if (typeof input.published !== "boolean")
    throw new ServiceError("invalid", "published: choose publish or withdraw", "published");
  const published = input.published;
  return ctx.db.transaction(async (tx) => {
    await tx.execute(sql`SELECT 1 FROM studies WHERE id = ${study.id} FOR UPDATE`);
    const now = await registrationState(tx, study.id);
    if (now.published === published)
      throw new ServiceError(
        "conflict",
        published ? "The public page is already published." : "The public page is not published.",
        "published",
      );
    const e = await appendEntry(tx, ctx.crypto, study, "registration.published", {
      published,
      ...payloadActor(principal),
    });
    await tx.insert(studyRegistrations).values({
      studyId: study.id,
      published,
      actorUserId: principal.userId,
      ...rowTokenColumns(principal),
      entryId: e.id,
    });
    await audit(tx, {
      action: published ? "registration.published" : "registration.withdrawn",
      ...auditActor(principal),
      studyId: study.id,
      detail: auditDetail(principal, { published, entry: e.id }),
    });
    return { published, entryId: e.id };
  });
}

/** The registration page's facts: the switch in force and how much the public page would show. */
export async function registrationPage(ctx: AppContext, studyId: string) {
  const state = await registrationState(ctx.db, studyId);
  const [c] = rowsOf<{ title: string; documents: number; outcomes: number }>(
    await ctx.db.execute(
      sql`SELECT s.title,
                 (SELECT count(*)::int FROM study_documents d WHERE d.study_id = s.id) AS documents,
                 (SELECT count(*)::int FROM sap_outcome_sets o WHERE o.study_id = s.id) AS outcomes
            FROM studies s WHERE s.id = ${studyId}`,
    ),
  );
  return {
    published: state.published,
    since: state.since,
    title: String(c?.title ?? ""),
    documents: Number(c?.documents ?? 0),
    outcomeVersions: Number(c?.outcomes ?? 0),
  };
}
