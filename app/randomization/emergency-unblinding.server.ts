/**
 * Emergency unblinding of one participant (issue 20, ADR 0053): an investigator of the participant's site, with a
 * reason, learns the arm. The emergency_unblindings row, its `randomization.emergency_unblinded` entry (the reason as
 * its salted hash), an audit event (without the arm) and a notification to the sponsor (the study's admins and
 * unblinded statisticians: who unblinded which subject and when, never the arm) commit together.
 */
import { randomUUID } from "node:crypto";
import { eq, sql } from "drizzle-orm";
import { saltedTextHash } from "../../anchoring/log/text-hash.ts";
import { emergencyUnblindings, randomizationAllocations, randomizationSlots, users } from "../../db/schema/index.ts";
import { audit } from "../audit-trail/record-event.server.ts";
import { appendEntry } from "../log/append-entry.server.ts";
import { notifyStudyRoles } from "../notifications/notify.server.ts";
import { auditActor } from "../platform/attribution.ts";
import type { AppContext } from "../platform/context.server.ts";
import { ServiceError } from "../platform/errors.server.ts";
import type { Principal } from "../platform/permissions.server.ts";
import { getStudyOrThrow } from "../studies/studies.server.ts";
import { designOf, committedList } from "./list-state.server.ts";
import { visibleParticipant } from "./randomize.server.ts";
import { isSiteInvestigator, isStudyUnblinded } from "./unblinding-state.server.ts";

/** Who is told of an emergency unblinding: the sponsor's side of the study (ADR 0053). */
export const SPONSOR_ROLES = ["admin", "unblinded_statistician"] as const;

/** Unblind one participant: returns the arm (its code and name) to the investigator. */
export async function emergencyUnblind(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  subjectCode: string,
  input: { reason: unknown },
): Promise<{ arm: string; armName: string }> {
  const study = await getStudyOrThrow(ctx, studyCode);
  const p = await visibleParticipant(ctx, principal, study.id, subjectCode);
  if (!isSiteInvestigator(principal, { studyId: study.id, siteId: p.siteId }))
    throw new ServiceError(
      "forbidden",
      `only an investigator of site ${p.siteCode} may unblind ${p.subjectCode} in an emergency`,
    );
  const reason = String(input.reason ?? "").trim();
  if (!reason) throw new ServiceError("invalid", "reason: give the medical reason for unblinding", "reason");
  if (reason.length > 2000)
    throw new ServiceError("invalid", "reason: keep the reason under 2000 characters", "reason");
  const list = await committedList(ctx.db, study.id);
  const [a] = await ctx.db
    .select({ id: randomizationAllocations.id, number: randomizationAllocations.number, arm: randomizationSlots.arm })
    .from(randomizationAllocations)
    .innerJoin(randomizationSlots, eq(randomizationSlots.id, randomizationAllocations.slotId))
    .where(eq(randomizationAllocations.participantId, p.id));
  if (!a || !list)
    throw new ServiceError("conflict", `${p.subjectCode} is not randomized: there is no arm to reveal`, "subject");
  const armName = designOf(list.designText).arms.find((x) => x.code === a.arm)?.name ?? a.arm;
  const [who] = await ctx.db
    .select({ name: users.fullName, email: users.email })
    .from(users)
    .where(eq(users.id, principal.userId as string));
  return ctx.db.transaction(async (tx) => {
    // The study row (as the unblinding takes it): after the study is unblinded every arm is revealed already, and
    // the unblinding sealed how many emergency unblindings there were.
    await tx.execute(sql`SELECT 1 FROM studies WHERE id = ${study.id} FOR SHARE`);
    if (await isStudyUnblinded(tx, study.id))
      throw new ServiceError(
        "conflict",
        `${study.code} is unblinded: every arm is revealed already (the participant page shows it)`,
        "subject",
      );
    const id = randomUUID();
    const e = await appendEntry(tx, ctx.crypto, study, "randomization.emergency_unblinded", (salt) => ({
      unblinding: id,
      allocation: a.id,
      subject: p.subjectCode,
      reasonHash: saltedTextHash(ctx.crypto, salt, reason),
      actor: principal.userId as string,
    }));
    await tx.insert(emergencyUnblindings).values({
      id,
      studyId: study.id,
      allocationId: a.id,
      reason,
      actorUserId: principal.userId,
      entryId: e.id,
    });
    await audit(tx, {
      action: "randomization.emergency_unblinded",
      ...auditActor(principal),
      studyId: study.id,
      siteId: p.siteId,
      participantId: p.id,
      detail: { unblinding: id, allocation: a.id, number: a.number, entry: e.id },
    });
    const at = e.at instanceof Date ? e.at : new Date(e.at);
    const by = who ? `${who.name} (${who.email})` : principal.label;
    await notifyStudyRoles(tx, {
      studyId: study.id,
      siteId: null,
      roles: SPONSOR_ROLES,
      exceptUserId: principal.userId,
      kind: "emergency_unblinding",
      subject: `${study.code}: emergency unblinding of ${p.subjectCode}`,
      body: [
        `${by}, investigator at site ${p.siteCode}, unblinded participant ${p.subjectCode} ` +
          `(randomization number ${a.number}) in an emergency on ` +
          `${at.toISOString().replace("T", " ").slice(0, 16)} UTC.`,
        "",
        "The reason is recorded in the portal and sealed in the study's log. This message does not give the arm.",
      ].join("\n"),
    });
    return { arm: a.arm, armName };
  });
}
