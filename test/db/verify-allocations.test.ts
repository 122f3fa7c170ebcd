/**
 * The allocations verifier (ADR 0055) against the portal's own export, on PGlite and PostgreSQL: a generated list
 * committed, participants randomized in two strata, one emergency-unblinded, the database locked and the study
 * unblinded; the file `buildAllocationsFile` writes verifies, every allocation proven against its committed root and
 * the list regenerated from its seed. Then the named broken cases made behind the log in the database, exported
 * again: an arm changed after the commitment (SLOT_ALTERED naming the slot), a slot reused and a slot skipped (an
 * allocation's sealed entry claiming a taken or a later slot: SLOT_REUSED, SLOT_SKIPPED).
 */
import { sql } from "drizzle-orm";
import { saltedTextHash } from "../../anchoring/log/text-hash.ts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { verifyAllocations } from "../../anchoring/randomization/verify-allocations.ts";
import { parseTrustPolicy } from "../../anchoring/verifier/trust-policy.ts";
import { lockDatabase } from "../../app/database-lock/database-lock.server.ts";
import { appendEntry } from "../../app/log/append-entry.server.ts";
import { sealAll } from "../../app/log/sealer.server.ts";
import { enrollParticipant } from "../../app/participants/participants.server.ts";
import { buildAllocationsFile } from "../../app/randomization/allocations-export.server.ts";
import { emergencyUnblind } from "../../app/randomization/emergency-unblinding.server.ts";
import { commitList, createGeneratedList } from "../../app/randomization/lists.server.ts";
import { randomizeParticipant } from "../../app/randomization/randomize.server.ts";
import { unblindStudy } from "../../app/randomization/unblinding.server.ts";
import type { Principal } from "../../app/platform/permissions.server.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { giveCompleteConsent } from "../helpers/consent.ts";
import { engineUnderTest, openTestDatabase, type TestDb } from "../helpers/db.ts";
import { createStaff } from "../helpers/study-staff.ts";

let t: TestDb;
const CODE = "VAL-1";
const design = {
  v: 1,
  arms: [
    { code: "ACT", name: "Active", ratio: 1 },
    { code: "PBO", name: "Placebo", ratio: 1 },
  ],
  blockSizes: [4, 6],
  factors: [],
  sites: ["S1", "S2"],
  slotsPerStratum: 12,
  kitTypes: { "K-ACT": "ACT", "K-PBO": "PBO" },
};

beforeAll(async () => {
  t = await openTestDatabase();
});
afterAll(async () => {
  await t?.close();
});

async function tamper(statements: string[]) {
  await t.ctx.db.transaction(async (tx) => {
    await tx.execute(sql.raw("SET LOCAL session_replication_role = replica"));
    for (const s of statements) await tx.execute(sql.raw(s));
  });
}

describe(`verify-allocations on the portal's export (${engineUnderTest()})`, () => {
  let p: Record<string, Principal>;
  const verify = async () => {
    const file = await buildAllocationsFile(t.ctx, p.admin, CODE);
    return verifyAllocations(t.ctx.crypto, file, parseTrustPolicy(JSON.parse(file.trustPolicyText)));
  };

  it("a faithful study: every allocation proven, the list regenerated from its seed", async () => {
    await createStudy(
      t.ctx,
      {
        code: CODE,
        title: "Allocations",
        sites: [
          { code: "S1", name: "One" },
          { code: "S2", name: "Two" },
        ],
      },
      null,
    );
    ({ principals: p } = await createStaff(t.ctx, CODE, "val.test", [
      ["stat", "unblinded_statistician"],
      ["admin", "admin"],
      ["dm", "data_manager"],
      ["inv1", "investigator", "S1"],
      ["inv2", "investigator", "S2"],
    ]));
    const { listId } = await createGeneratedList(t.ctx, p.stat, CODE, { design });
    await commitList(t.ctx, p.stat, CODE, listId);
    const subjects: string[] = [];
    for (const [site, inv] of [
      ["S1", p.inv1],
      ["S2", p.inv2],
      ["S1", p.inv1],
      ["S1", p.inv1],
      ["S2", p.inv2],
    ] as const) {
      const e = await enrollParticipant(t.ctx, inv, { study: CODE, site });
      await giveCompleteConsent(t.ctx, CODE, e.subjectCode);
      await randomizeParticipant(t.ctx, inv, CODE, e.subjectCode, { factors: {} });
      subjects.push(e.subjectCode);
    }
    await emergencyUnblind(t.ctx, p.inv1, CODE, subjects[0], { reason: "anaphylaxis, treatment depends on arm" });
    await lockDatabase(t.ctx, p.dm, CODE, { reason: "last patient out, all queries closed" });
    await unblindStudy(t.ctx, p.stat, CODE);
    await sealAll(t.ctx);

    const r = await verify();
    expect(r.problems).toEqual([]);
    expect(r.valid).toBe(true);
    expect(r.checked).toMatchObject({ strata: 2, allocations: 5, emergencyUnblindings: 1, seed: true });
    expect(r.strata.map((s) => [s.key, s.allocated])).toEqual([
      ["site=S1", 3],
      ["site=S2", 2],
    ]);
  });

  it("the export's design nonce proves the design; a left-out allocation or emergency is named", async () => {
    const file = await buildAllocationsFile(t.ctx, p.admin, CODE);
    const policy = parseTrustPolicy(JSON.parse(file.trustPolicyText));
    const c = file.commitment.bundle.payload as { salt: string; designHash: string };
    expect(saltedTextHash(t.ctx.crypto, c.salt, file.commitment.designText)).not.toBe(c.designHash);
    expect(saltedTextHash(t.ctx.crypto, file.commitment.designNonce, file.commitment.designText)).toBe(c.designHash);
    // The last allocation of site S2 (no gap left to show it) and the emergency unblinding, left out.
    const last = file.allocations.findLastIndex((a) => a.bundle.payload.stratum === "site=S2");
    const cut = { ...file, allocations: file.allocations.filter((_, i) => i !== last), emergencyUnblindings: [] };
    const r = await verifyAllocations(t.ctx.crypto, cut, policy);
    expect(r.problems.map((x) => `${x.code} ${x.stratum}`)).toEqual([
      "ALLOCATION_MISSING site=S2",
      "EMERGENCY_MISSING undefined",
    ]);
    expect(r.problems[0].message).toMatch(/sealed 2 allocations in site=S2, the file holds 1: 1 missing/);
  });

  it("an arm changed after the commitment, in the slots table: SLOT_ALTERED names the slot", async () => {
    const [slot] = (await t.database.execute(
      `SELECT sl.id, sl.arm FROM randomization_slots sl JOIN randomization_strata s ON s.id = sl.stratum_id
       WHERE s.key = 'site=S1' AND sl.seq = 1 AND sl.study_id = (SELECT id FROM studies WHERE code = '${CODE}')`,
    )) as { id: string; arm: string }[];
    const other = slot.arm === "ACT" ? "PBO" : "ACT";
    await tamper([`UPDATE randomization_slots SET arm = '${other}', kit_type = 'K-${other}' WHERE id = '${slot.id}'`]);
    const r = await verify();
    expect(r.valid).toBe(false);
    expect(r.problems.filter((x) => x.code !== "SEED_MISMATCH")).toEqual([
      expect.objectContaining({ code: "SLOT_ALTERED", stratum: "site=S1", seq: 1 }),
    ]);
    expect(r.problems).toContainEqual(expect.objectContaining({ code: "SEED_MISMATCH", stratum: "site=S1", seq: 1 }));
    await tamper([
      `UPDATE randomization_slots SET arm = '${slot.arm}', kit_type = 'K-${slot.arm}' WHERE id = '${slot.id}'`,
    ]);
    expect((await verify()).valid).toBe(true);
  });

  it("a slot reused and a slot skipped by sealed allocations: named with their slots and subjects", async () => {
    const [first] = (await t.database.execute(
      `SELECT payload_text FROM ledger_entries WHERE kind = 'randomization.allocated'
       AND study_id = (SELECT id FROM studies WHERE code = '${CODE}') ORDER BY seq LIMIT 1`,
    )) as { payload_text: string }[];
    const a = JSON.parse(first.payload_text);
    const leafOf = async (stratum: string, seq: number) => {
      const [row] = (await t.database.execute(
        `SELECT encode(sl.leaf, 'hex') AS leaf FROM randomization_slots sl JOIN randomization_strata s
         ON s.id = sl.stratum_id WHERE s.key = '${stratum}' AND sl.seq = ${seq}
         AND sl.study_id = (SELECT id FROM studies WHERE code = '${CODE}')`,
      )) as { leaf: string }[];
      return row.leaf;
    };
    const study = (await t.database.execute(`SELECT id FROM studies WHERE code = '${CODE}'`)) as { id: string }[];
    // Entries written behind the services (no allocation rows): what a server that reused or skipped would seal.
    const seal = async (subject: string, stratum: string, seq: number, number: string) => {
      const leaf = await leafOf(stratum, seq);
      await appendEntry(t.ctx.db, t.ctx.crypto, { id: study[0].id, code: CODE }, "randomization.allocated", {
        allocation: crypto.randomUUID(),
        list: a.list,
        subject,
        stratum,
        seq,
        number,
        leaf,
        actor: a.actor,
      });
    };
    await seal("VAL-1-S2-REUSE", "site=S2", 1, "R02-0002"); // site S2 slots 0 and 1 are taken
    await seal("VAL-1-S2-SKIP", "site=S2", 3, "R02-0004"); // slot 2 free: skipped
    await sealAll(t.ctx);
    const r = await verify();
    expect(r.problems.map((x) => `${x.code} ${x.stratum} ${x.seq}`)).toEqual([
      "SLOT_REUSED site=S2 1",
      "SLOT_SKIPPED site=S2 2",
      // Sealed after the unblinding, which counted 2 allocations in site S2.
      "COMMITMENT_MISMATCH site=S2 undefined",
    ]);
    expect(r.problems[2].message).toMatch(/the unblinding sealed 2 allocations in site=S2, the file holds 4/);
    expect(r.problems[0].message).toMatch(/then subject VAL-1-S2-REUSE/);
    expect(r.problems[1].message).toMatch(/subject VAL-1-S2-SKIP took the later slot 3/);
  });
});
