/**
 * What the randomization page and the participant page show (ADR 0053): the statistician sees drafts, previews and
 * each stratum's root; everyone else whether a list is committed and when, and allocations per stratum, never an arm,
 * a kit type or a block size. A participant's arm only when `participantArmVisible`.
 */
import { and, asc, eq, lte, ne } from "drizzle-orm";
import { toHex } from "../../anchoring/log/bytes.ts";
import {
  emergencyUnblindings,
  randomizationAllocations,
  randomizationLists,
  randomizationSlots,
  randomizationStrata,
  users,
} from "../../db/schema/index.ts";
import type { AppContext } from "../platform/context.server.ts";
import { ServiceError } from "../platform/errors.server.ts";
import { can, type Principal } from "../platform/permissions.server.ts";
import { getStudyOrThrow } from "../studies/studies.server.ts";
import { committedList, designOf, strataWithCounts } from "./list-state.server.ts";
import { isSiteInvestigator, isStudyUnblinded, participantArmVisible } from "./unblinding-state.server.ts";

/** The study's randomization at a glance, for any member of the study (blinded parts only unless permitted). */
export async function randomizationOverview(ctx: AppContext, principal: Principal, studyCode: string) {
  const study = await getStudyOrThrow(ctx, studyCode);
  if (!can(principal, "study.view", { studyId: study.id }))
    throw new ServiceError("forbidden", "not permitted: study.view");
  const manage = can(principal, "randomization.manage", { studyId: study.id });
  const list = await committedList(ctx.db, study.id);
  const unblinded = await isStudyUnblinded(ctx.db, study.id);
  if (!list) return { study, manage, unblinded, committed: null };
  const design = designOf(list.designText);
  const strata = (await strataWithCounts(ctx.db, list.id)).map((s) => ({
    key: s.key,
    position: s.position,
    size: s.size,
    allocated: s.allocated,
    remaining: s.size - s.allocated,
    // The root is sealed and public in the entry; it is shown to the statistician, who checks it against the list.
    root: manage ? toHex(s.root) : null,
  }));
  // Drafts made and discarded before the commitment (every draft is sealed): a count for anyone, so a list chosen
  // among several shows; never their contents.
  const others = await ctx.db
    .select({ discardedAt: randomizationLists.discardedAt })
    .from(randomizationLists)
    .where(
      and(
        eq(randomizationLists.studyId, study.id),
        ne(randomizationLists.id, list.id),
        lte(randomizationLists.createdAt, list.committedAt as Date),
      ),
    );
  const draftsBefore = {
    made: others.length,
    discarded: others.filter((o) => o.discardedAt !== null && o.discardedAt <= (list.committedAt as Date)).length,
  };
  return {
    study,
    manage,
    unblinded,
    committed: {
      listId: list.id,
      draftsBefore,
      source: list.source,
      committedAt: list.committedAt as Date,
      entryId: list.entryId as string,
      factors: design.factors.map((f) => ({ name: f.name, label: f.label })),
      strata,
    },
  };
}

export interface ParticipantRandomization {
  /** The committed list's factors (to randomize), or null when no list is committed. */
  factors: { name: string; label: string; levels: string[] }[] | null;
  allocation: { id: string; number: string; stratum: string; at: Date } | null;
  /** The arm (code and name) only when this principal may see it. */
  arm: { code: string; name: string } | null;
  canRandomize: boolean;
  canEmergencyUnblind: boolean;
  emergencyUnblindings: { at: Date; by: string }[];
}

/** A participant's randomization as this principal may see it. */
export async function participantRandomization(
  ctx: AppContext,
  principal: Principal,
  study: { id: string },
  participant: { id: string; siteId: string; disposition: string },
): Promise<ParticipantRandomization> {
  const list = await committedList(ctx.db, study.id);
  const design = list ? designOf(list.designText) : null;
  const [a] = await ctx.db
    .select({
      id: randomizationAllocations.id,
      number: randomizationAllocations.number,
      at: randomizationAllocations.createdAt,
      stratum: randomizationStrata.key,
      arm: randomizationSlots.arm,
    })
    .from(randomizationAllocations)
    .innerJoin(randomizationStrata, eq(randomizationStrata.id, randomizationAllocations.stratumId))
    .innerJoin(randomizationSlots, eq(randomizationSlots.id, randomizationAllocations.slotId))
    .where(eq(randomizationAllocations.participantId, participant.id));
  const scope = { studyId: study.id, siteId: participant.siteId };
  const visible = a ? await participantArmVisible(ctx, principal, { ...scope, allocationId: a.id }) : false;
  const unblindings = a
    ? await ctx.db
        .select({ at: emergencyUnblindings.createdAt, name: users.fullName })
        .from(emergencyUnblindings)
        .leftJoin(users, eq(users.id, emergencyUnblindings.actorUserId))
        .where(and(eq(emergencyUnblindings.allocationId, a.id), eq(emergencyUnblindings.studyId, study.id)))
        .orderBy(asc(emergencyUnblindings.createdAt))
    : [];
  return {
    factors: design ? design.factors.map((f) => ({ name: f.name, label: f.label, levels: f.levels })) : null,
    allocation: a ? { id: a.id, number: a.number, stratum: a.stratum, at: a.at } : null,
    arm:
      a && visible && design ? { code: a.arm, name: design.arms.find((x) => x.code === a.arm)?.name ?? a.arm } : null,
    canRandomize:
      Boolean(list) && !a && participant.disposition === "enrolled" && can(principal, "randomization.randomize", scope),
    canEmergencyUnblind: Boolean(a) && isSiteInvestigator(principal, scope),
    emergencyUnblindings: unblindings.map((u) => ({ at: u.at, by: u.name ?? "unknown user" })),
  };
}
