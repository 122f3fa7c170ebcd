/**
 * The allocations with their arms, for those who may see arms (ADR 0053): the unblinded statistician (every site),
 * the unblinded pharmacist (their site), and after the study is unblinded everyone who may read its records. A
 * blinded principal gets null, never an empty list that could be mistaken for "no allocations".
 */
import { asc, eq } from "drizzle-orm";
import {
  participants,
  randomizationAllocations,
  randomizationSlots,
  randomizationStrata,
  sites,
} from "../../db/schema/index.ts";
import type { AppContext } from "../platform/context.server.ts";
import { can, type Principal } from "../platform/permissions.server.ts";
import { committedList, designOf } from "./list-state.server.ts";
import { isStudyUnblinded } from "./unblinding-state.server.ts";

export interface UnblindedAllocation {
  number: string;
  subject: string;
  site: string;
  stratum: string;
  arm: string;
  armName: string;
  kitType: string;
  randomizedAt: Date;
}

export async function unblindedAllocations(
  ctx: AppContext,
  principal: Principal,
  study: { id: string },
): Promise<UnblindedAllocation[] | null> {
  const list = await committedList(ctx.db, study.id);
  if (!list) return null;
  const unblinded = await isStudyUnblinded(ctx.db, study.id);
  const mayAt = (siteId: string) =>
    can(principal, "randomization.view_arms", { studyId: study.id, siteId }) ||
    (unblinded && can(principal, "records.read", { studyId: study.id, siteId }));
  const studyWide =
    can(principal, "randomization.view_arms", { studyId: study.id }) ||
    (unblinded && can(principal, "records.read", { studyId: study.id }));
  if (!studyWide) return null;
  const names = new Map(designOf(list.designText).arms.map((a) => [a.code, a.name]));
  const rows = await ctx.db
    .select({
      number: randomizationAllocations.number,
      subject: participants.subjectCode,
      siteId: sites.id,
      site: sites.code,
      stratum: randomizationStrata.key,
      arm: randomizationSlots.arm,
      kitType: randomizationSlots.kitType,
      randomizedAt: randomizationAllocations.createdAt,
    })
    .from(randomizationAllocations)
    .innerJoin(randomizationSlots, eq(randomizationSlots.id, randomizationAllocations.slotId))
    .innerJoin(randomizationStrata, eq(randomizationStrata.id, randomizationAllocations.stratumId))
    .innerJoin(participants, eq(participants.id, randomizationAllocations.participantId))
    .innerJoin(sites, eq(sites.id, participants.siteId))
    .where(eq(randomizationAllocations.listId, list.id))
    .orderBy(asc(randomizationStrata.position), asc(randomizationAllocations.seq));
  return rows
    .filter((r) => mayAt(r.siteId))
    .map(({ siteId: _siteId, ...r }) => ({ ...r, armName: names.get(r.arm) ?? r.arm }));
}
