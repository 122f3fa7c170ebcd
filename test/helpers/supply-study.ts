/**
 * A study ready for the drug supply (issue 21 tests): two sites, the supply's staff, a committed randomization list
 * whose kit types are long enough to grep for (KIT-ZOLVA, KIT-PLACQ), and `n` consented participants at S1,
 * randomized when `randomize` is not false. Kit types and arm names here are the needles of blinding assertions.
 */
import { enrollParticipant } from "../../app/participants/participants.server.ts";
import type { AppContext } from "../../app/platform/context.server.ts";
import type { Principal } from "../../app/platform/permissions.server.ts";
import { commitList, createGeneratedList } from "../../app/randomization/lists.server.ts";
import { randomizeParticipant } from "../../app/randomization/randomize.server.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { giveCompleteConsent } from "./consent.ts";
import { createStaff } from "./study-staff.ts";

export const SUPPLY_KIT_TYPES = { "KIT-ZOLVA": "ZOLVATREX", "KIT-PLACQ": "PLACEBOQ" } as const;
/** Anything a blinded role must never read: arm codes and names, kit types. */
export const SUPPLY_SECRET = /ZOLVATREX|PLACEBOQ|KIT-ZOLVA|KIT-PLACQ|Zolvatrex/;

export const supplyDesign = (sites: string[], slots = 20) => ({
  v: 1 as const,
  arms: [
    { code: "ZOLVATREX", name: "Zolvatrex 10 mg", ratio: 1 },
    { code: "PLACEBOQ", name: "Placebo", ratio: 1 },
  ],
  blockSizes: [2, 4],
  factors: [],
  sites,
  slotsPerStratum: slots,
  kitTypes: { ...SUPPLY_KIT_TYPES },
});

export interface SupplyStudy {
  code: string;
  /** admin (the sponsor), depot (depot_manager), pharm (site_pharmacist S1, blinded), upharm (unblinded_pharmacist
   * S1), pharm2 (site_pharmacist S2), coord (coordinator S1), inv (investigator S1), mon (monitor), stat
   * (unblinded_statistician), reg (regulator). */
  p: Record<string, Principal>;
  userIds: Record<string, string>;
  /** Subject codes at S1, in enrolment order. */
  subjects: string[];
  /** The kit type each randomized subject was allocated (for assertions only: never shown to blinded roles). */
  kitTypeOf: Record<string, string>;
}

export async function supplyStudy(
  ctx: AppContext,
  code: string,
  opts: { participants?: number; randomize?: boolean } = {},
): Promise<SupplyStudy> {
  await createStudy(
    ctx,
    {
      code,
      title: `Supply ${code}`,
      sites: [
        { code: "S1", name: "One" },
        { code: "S2", name: "Two" },
      ],
    },
    null,
  );
  const { principals: p, userIds } = await createStaff(ctx, code, `${code.toLowerCase()}.test`, [
    ["admin", "admin"],
    ["depot", "depot_manager"],
    ["pharm", "site_pharmacist", "S1"],
    ["upharm", "unblinded_pharmacist", "S1"],
    ["pharm2", "site_pharmacist", "S2"],
    ["coord", "coordinator", "S1"],
    ["inv", "investigator", "S1"],
    ["mon", "monitor"],
    ["stat", "unblinded_statistician"],
    ["reg", "regulator"],
  ]);
  const { listId } = await createGeneratedList(ctx, p.stat, code, { design: supplyDesign(["S1", "S2"]) });
  await commitList(ctx, p.stat, code, listId);
  const subjects: string[] = [];
  const kitTypeOf: Record<string, string> = {};
  for (let i = 0; i < (opts.participants ?? 4); i++) {
    const e = await enrollParticipant(ctx, p.inv, { study: code, site: "S1" });
    await giveCompleteConsent(ctx, code, e.subjectCode);
    subjects.push(e.subjectCode);
    if (opts.randomize !== false) await randomizeParticipant(ctx, p.coord, code, e.subjectCode, { factors: {} });
  }
  if (opts.randomize !== false) {
    const rows = (await ctx.db.execute(
      `SELECT p.subject_code, s.kit_type FROM randomization_allocations a
         JOIN participants p ON p.id = a.participant_id JOIN randomization_slots s ON s.id = a.slot_id
         JOIN studies st ON st.id = a.study_id WHERE st.code = '${code}'`,
    )) as unknown;
    const list = Array.isArray(rows) ? rows : ((rows as { rows: Record<string, string>[] }).rows ?? []);
    for (const r of list as Record<string, string>[]) kitTypeOf[r.subject_code] = r.kit_type;
  }
  return { code, p, userIds, subjects, kitTypeOf };
}
