/**
 * The allocations with their arms (ADR 0053) on PGlite and PostgreSQL: the unblinded statistician sees every site's,
 * the unblinded pharmacist only their site's, blinded roles none (null, not an empty list) until the study is
 * unblinded; then each role sees the sites whose records it may read, and the list is closed (no randomization, no
 * emergency unblinding) even after an unlock.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { lockDatabase, unlockDatabase } from "../../app/database-lock/database-lock.server.ts";
import { emergencyUnblind } from "../../app/randomization/emergency-unblinding.server.ts";
import { enrollParticipant } from "../../app/participants/participants.server.ts";
import { commitList, createGeneratedList } from "../../app/randomization/lists.server.ts";
import { randomizeParticipant } from "../../app/randomization/randomize.server.ts";
import { unblindedAllocations } from "../../app/randomization/unblinded-allocations.server.ts";
import { unblindStudy } from "../../app/randomization/unblinding.server.ts";
import { createStudy, getStudyOrThrow } from "../../app/studies/studies.server.ts";
import { giveCompleteConsent } from "../helpers/consent.ts";
import { engineUnderTest, openTestDatabase, type TestDb } from "../helpers/db.ts";
import { createStaff } from "../helpers/study-staff.ts";

let t: TestDb;
beforeAll(async () => {
  t = await openTestDatabase();
});
afterAll(async () => {
  await t?.close();
});

describe(`allocations with arms on ${engineUnderTest()}`, () => {
  it("shows arms to the unblinded roles by their scope, to nobody else until the study is unblinded", async () => {
    const code = "UBA-1";
    await createStudy(
      t.ctx,
      {
        code,
        title: "Unblinded allocations",
        sites: [
          { code: "S1", name: "One" },
          { code: "S2", name: "Two" },
        ],
      },
      null,
    );
    const { principals: p } = await createStaff(t.ctx, code, "uba.test", [
      ["stat", "unblinded_statistician"],
      ["pharm", "unblinded_pharmacist", "S1"],
      ["inv1", "investigator", "S1"],
      ["inv2", "investigator", "S2"],
      ["coord", "coordinator", "S1"],
      ["mon", "monitor"],
      ["dm", "data_manager"],
    ]);
    const design = {
      v: 1,
      arms: [
        { code: "ARMX", name: "Xanthor 5 mg", ratio: 1 },
        { code: "ARMP", name: "Placebo", ratio: 1 },
      ],
      blockSizes: [2, 4],
      factors: [],
      sites: ["S1", "S2"],
      slotsPerStratum: 8,
      kitTypes: { K7Q: "ARMX", M2X: "ARMP" },
    };
    const { listId } = await createGeneratedList(t.ctx, p.stat, code, { design });
    await commitList(t.ctx, p.stat, code, listId);
    for (const [inv, site] of [
      [p.inv1, "S1"],
      [p.inv1, "S1"],
      [p.inv2, "S2"],
      [p.inv2, "S2"],
    ] as const) {
      const e = await enrollParticipant(t.ctx, inv, { study: code, site });
      await giveCompleteConsent(t.ctx, code, e.subjectCode);
      await randomizeParticipant(t.ctx, inv, code, e.subjectCode, { factors: {} });
    }
    const study = await getStudyOrThrow(t.ctx, code);
    const sitesOf = (rows: Awaited<ReturnType<typeof unblindedAllocations>>) => rows?.map((r) => r.site) ?? null;

    const all = await unblindedAllocations(t.ctx, p.stat, study);
    expect(sitesOf(all)).toEqual(["S1", "S1", "S2", "S2"]);
    expect(all?.every((r) => ["ARMX", "ARMP"].includes(r.arm) && /^R0[12]-000[12]$/.test(r.number))).toBe(true);
    expect(all?.find((r) => r.arm === "ARMX")?.armName ?? "Xanthor 5 mg").toBe("Xanthor 5 mg");
    expect(sitesOf(await unblindedAllocations(t.ctx, p.pharm, study))).toEqual(["S1", "S1"]);
    for (const blinded of [p.coord, p.inv1, p.inv2, p.mon, p.dm])
      expect(await unblindedAllocations(t.ctx, blinded, study)).toBeNull();

    await lockDatabase(t.ctx, p.dm, code, { reason: "final lock" });
    await unblindStudy(t.ctx, p.stat, code);
    expect(sitesOf(await unblindedAllocations(t.ctx, p.coord, study))).toEqual(["S1", "S1"]);
    expect(sitesOf(await unblindedAllocations(t.ctx, p.inv2, study))).toEqual(["S2", "S2"]);
    expect(sitesOf(await unblindedAllocations(t.ctx, p.mon, study))).toEqual(["S1", "S1", "S2", "S2"]);

    // Unblinded, the list is closed for good, even after an unlock: its untaken slots are public now.
    await unlockDatabase(t.ctx, p.dm, code, "late query");
    const late = await enrollParticipant(t.ctx, p.inv1, { study: code, site: "S1" });
    await giveCompleteConsent(t.ctx, code, late.subjectCode);
    await expect(randomizeParticipant(t.ctx, p.inv1, code, late.subjectCode, { factors: {} })).rejects.toMatchObject({
      code: "conflict",
      message: expect.stringContaining("is unblinded"),
    });
    await expect(
      emergencyUnblind(t.ctx, p.inv1, code, all?.[0].subject as string, { reason: "rash" }),
    ).rejects.toMatchObject({ code: "conflict", message: expect.stringContaining("is unblinded") });
    expect(sitesOf(await unblindedAllocations(t.ctx, p.stat, study))).toEqual(["S1", "S1", "S2", "S2"]);
  });
});
