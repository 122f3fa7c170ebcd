/**
 * The demo's randomization (issue 20): a generated list (two arms 1:1, permuted blocks of 4 and 6, stratified by site
 * and sex) committed by the unblinded statistician, then each enrolled, consented participant randomized by the
 * coordinator. The demo seed calls it (the lead wires it in); run twice, it commits nothing new and skips those
 * already randomized.
 */
import { and, asc, eq } from "drizzle-orm";
import { participants, sites } from "../../db/schema/index.ts";
import type { AppContext } from "../platform/context.server.ts";
import { ServiceError } from "../platform/errors.server.ts";
import type { Principal } from "../platform/permissions.server.ts";
import { getStudyOrThrow } from "../studies/studies.server.ts";
import { committedList } from "./list-state.server.ts";
import { commitList, createGeneratedList } from "./lists.server.ts";
import { randomizeParticipant } from "./randomize.server.ts";

/** The demo's design for the study's sites. */
export function demoDesign(siteCodes: string[]) {
  return {
    v: 1 as const,
    arms: [
      { code: "A", name: "Active", ratio: 1 },
      { code: "B", name: "Placebo", ratio: 1 },
    ],
    blockSizes: [4, 6],
    factors: [{ name: "sex", label: "Sex", levels: ["F", "M"] }],
    sites: siteCodes,
    slotsPerStratum: 50,
    kitTypes: { "KIT-A": "A", "KIT-B": "B" },
  };
}

/** Sex of the demo's participants with data (SITE-01-003 a woman, SITE-01-004 a man); the others alternate. */
const DEMO_SEX: Record<string, "F" | "M"> = { "SITE-01-003": "F", "SITE-01-004": "M" };

export async function seedDemoRandomization(
  ctx: AppContext,
  statistician: Principal,
  coordinator: Principal,
  studyCode: string,
): Promise<{ listId: string; randomized: { subject: string; number: string }[] }> {
  const study = await getStudyOrThrow(ctx, studyCode);
  let list = await committedList(ctx.db, study.id);
  if (!list) {
    const siteCodes = (
      await ctx.db.select({ code: sites.code }).from(sites).where(eq(sites.studyId, study.id)).orderBy(asc(sites.code))
    ).map((s) => s.code);
    const { listId } = await createGeneratedList(ctx, statistician, study.code, { design: demoDesign(siteCodes) });
    await commitList(ctx, statistician, study.code, listId);
    list = await committedList(ctx.db, study.id);
  }
  const enrolled = await ctx.db
    .select({ subject: participants.subjectCode })
    .from(participants)
    .where(and(eq(participants.studyId, study.id), eq(participants.disposition, "enrolled")))
    .orderBy(asc(participants.subjectCode));
  const randomized: { subject: string; number: string }[] = [];
  for (const [i, { subject }] of enrolled.entries()) {
    try {
      const sex = DEMO_SEX[subject] ?? (i % 2 ? "M" : "F");
      const r = await randomizeParticipant(ctx, coordinator, study.code, subject, { factors: { sex } });
      randomized.push({ subject, number: r.number });
    } catch (err) {
      // Not consented, or otherwise not randomizable: the demo leaves that participant as is.
      if (!(err instanceof ServiceError) || err.code !== "conflict") throw err;
    }
  }
  return { listId: (list as { id: string }).id, randomized };
}
