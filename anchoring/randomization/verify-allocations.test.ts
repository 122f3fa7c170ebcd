/**
 * The allocations verifier (ADR 0055) on real files built without a database (test/helpers/allocations-file.ts):
 * a faithful file is valid; each named broken case (a reused slot, a skipped slot, an arm changed after the
 * commitment, an allocation sealed with another leaf) and the other tamperings are named with their code and slot.
 */
import { describe, expect, it } from "vitest";
import {
  buildAllocationsFile,
  DESIGN,
  DESIGN_NONCE,
  inOrder,
  POLICY,
  POLICY_SHA256,
} from "../../test/helpers/allocations-file.ts";
import { nodeCrypto as c } from "../adapters/crypto-node.ts";
import { nobleCrypto } from "../log/crypto-noble.ts";
import type { AllocationsFile } from "./allocations-file.ts";
import { designHash, slotInclusionProof } from "./commitment.ts";
import { slotLeafHash } from "./slots.ts";
import {
  type AllocationProblem,
  parseAllocationsFile,
  problemLine,
  pinnedPolicyText,
  readAllocationsText,
  verifyAllocations,
} from "./verify-allocations.ts";

const S1 = "site=S1";
const S2 = "site=S2";
const verify = (file: unknown) => verifyAllocations(c, file, POLICY);
/** Change a slot's arm (and its kit type with it, so that only the change itself is named). */
const flip = (slot: { arm: string; kitType: string }) => {
  slot.arm = slot.arm === "A" ? "P" : "A";
  slot.kitType = slot.arm === "A" ? "KA" : "KP";
};
const codes = (ps: AllocationProblem[]) => ps.map((p) => `${p.code} ${p.stratum ?? "-"} ${p.seq ?? "-"}`);

describe("a faithful allocations file", () => {
  it("is valid, with every stratum's arms counted, on node and noble crypto alike", async () => {
    const { file } = buildAllocationsFile({ allocations: inOrder(5), emergencies: ["P-1-002"] });
    for (const crypto of [c, nobleCrypto]) {
      const r = await verifyAllocations(crypto, file, POLICY);
      expect(r.problems).toEqual([]);
      expect(r.valid).toBe(true);
      expect(r.checked).toMatchObject({ strata: 2, allocations: 10, emergencyUnblindings: 1, seed: true });
      expect(r.checked.bundles).toBe(1 + 10 + 1 + 1);
      expect(r.strata.map((s) => [s.key, s.allocated])).toEqual([
        [S1, 5],
        [S2, 5],
      ]);
      for (const s of r.strata) {
        expect(Object.values(s.arms).reduce((a, b) => a + b.allocated, 0)).toBe(5);
        expect(Object.values(s.arms).reduce((a, b) => a + b.slots, 0)).toBe(s.size);
      }
    }
  });

  it("an uploaded list (no seed) is checked against its commitment alone", async () => {
    const { file } = buildAllocationsFile({ allocations: inOrder(3), seed: null });
    const r = await verify(file);
    expect(r.problems).toEqual([]);
    expect(r.checked.seed).toBe(false);
  });

  it("survives a JSON round trip (what the CLI and the browser read)", async () => {
    const { file } = buildAllocationsFile({ allocations: inOrder(2) });
    const read = readAllocationsText(JSON.stringify(file));
    expect("value" in read && (await verify(read.value)).valid).toBe(true);
  });
});

describe("the named broken cases", () => {
  it("a reused slot: two subjects took slot 1 of site S1", async () => {
    const allocations = [
      { subject: "A-1", stratum: S1, seq: 0 },
      { subject: "A-2", stratum: S1, seq: 1 },
      { subject: "A-3", stratum: S1, seq: 1 },
      { subject: "A-4", stratum: S1, seq: 2 },
    ];
    const r = await verify(buildAllocationsFile({ allocations }).file);
    expect(r.valid).toBe(false);
    expect(codes(r.problems)).toEqual([`SLOT_REUSED ${S1} 1`]);
    expect(problemLine(r.problems[0])).toBe(
      `[SLOT_REUSED] ${S1}, R01-0002 (slot 1, subject A-2 and A-3): ` +
        "the slot was taken twice: subject A-2, then subject A-3",
    );
  });

  it("a skipped slot: slot 1 of site S2 passed over for slot 2", async () => {
    const allocations = [
      { subject: "B-1", stratum: S2, seq: 0 },
      { subject: "B-2", stratum: S2, seq: 2 },
      { subject: "B-3", stratum: S2, seq: 3 },
    ];
    const r = await verify(buildAllocationsFile({ allocations }).file);
    expect(codes(r.problems)).toEqual([`SLOT_SKIPPED ${S2} 1`]);
    expect(problemLine(r.problems[0])).toBe(
      `[SLOT_SKIPPED] ${S2}, R02-0002 (slot 1): the slot was skipped: subject B-2 took the later slot 2 (R02-0003)`,
    );
  });

  it("an arm changed after the commitment: an allocated slot's arm flipped in the revealed list", async () => {
    const { file } = buildAllocationsFile({ allocations: inOrder(4), seed: null });
    const slot = file.strata[0].slots[2];
    flip(slot);
    const r = await verify(file);
    expect(codes(r.problems)).toEqual([`SLOT_ALTERED ${S1} 2`]);
    expect(r.problems[0].message).toMatch(/changed after the commitment/);
    // Named once, by its randomization number (slots count from 0, numbers from 1) and the participant who took it.
    expect(problemLine(r.problems[0])).toMatch(
      new RegExp(`^\\[SLOT_ALTERED\\] ${S1}, R01-0003 \\(slot 2, subject [^)]+\\): the revealed slot \\(arm`),
    );
    expect(problemLine(r.problems[0]).match(/slot 2/g)).toHaveLength(1);
  });

  it("an arm changed, with the proofs made from the altered list (as an export of altered rows would)", async () => {
    const { file } = buildAllocationsFile({ allocations: inOrder(4), seed: null });
    const slot = file.strata[0].slots[2];
    flip(slot);
    const altered = file.strata[0].slots.map((x) => ({ stratum: S1, ...x }));
    for (const a of file.allocations)
      if (a.bundle.payload.stratum === S1) a.inclusion = slotInclusionProof(c, altered, a.bundle.payload.seq as number);
    const r = await verify(file);
    expect(codes(r.problems)).toEqual([`SLOT_ALTERED ${S1} 2`]);
  });

  it("an arm changed before its slot was allocated (the allocation sealed the changed slot): slot named", async () => {
    const built = buildAllocationsFile({ allocations: inOrder(4), seed: null });
    const changed = built.slots.get(S1)!.map((x) => ({ ...x }));
    flip(changed[3]);
    const allocations = inOrder(4);
    allocations[6].leaf = slotLeafHash(c, changed[3]); // P-1-004, site S1 slot 3
    const { file } = buildAllocationsFile({ allocations, seed: null });
    Object.assign(file.strata[0].slots[3], { arm: changed[3].arm, kitType: changed[3].kitType });
    for (const a of file.allocations)
      if (a.bundle.payload.stratum === S1) a.inclusion = slotInclusionProof(c, changed, a.bundle.payload.seq as number);
    const r = await verify(file);
    expect(r.valid).toBe(false);
    expect(codes(r.problems)).toContain(`INCLUSION_FAILED ${S1} 3`);
    expect(r.problems.map((p) => p.code)).toContain("SLOT_ALTERED");
  });

  it("an arm changed in a slot nobody took yet is still named (by the proofs' subtrees)", async () => {
    const { file } = buildAllocationsFile({ allocations: inOrder(4), seed: null });
    const slot = file.strata[1].slots[9];
    flip(slot);
    const r = await verify(file);
    expect(r.problems).toHaveLength(1);
    expect(r.problems[0]).toMatchObject({ code: "SLOT_ALTERED", stratum: S2, seq: 8 });
    expect(r.problems[0].message).toMatch(/one of slots 8 to 1[1-3] /);
  });

  it("a generated list whose arm changed is also not what its seed gives", async () => {
    const { file } = buildAllocationsFile({ allocations: inOrder(4) });
    const slot = file.strata[0].slots[1];
    flip(slot);
    const r = await verify(file);
    expect(codes(r.problems)).toEqual([`SLOT_ALTERED ${S1} 1`, `SEED_MISMATCH ${S1} 1`]);
  });

  it("an altered allocation leaf: subject sealed a leaf that is not its slot's", async () => {
    const allocations = inOrder(3);
    allocations[2].leaf = "ab".repeat(32); // site S1 slot 1
    const r = await verify(buildAllocationsFile({ allocations }).file);
    expect(codes(r.problems)).toEqual([`INCLUSION_FAILED ${S1} 1`, `ALLOCATION_LEAF_MISMATCH ${S1} 1`]);
  });
});

describe("other tampering", () => {
  const good = () => buildAllocationsFile({ allocations: inOrder(3), emergencies: ["P-2-001"] }).file;
  const tampered = async (mutate: (f: AllocationsFile) => void) => {
    const f = good();
    mutate(f);
    return verify(f);
  };

  it("an allocation's payload edited in the file: its bundle fails", async () => {
    const r = await tampered((f) => {
      f.allocations[1].bundle.payload.seq = 2;
    });
    expect(r.problems[0]).toMatchObject({ code: "BUNDLE_INVALID" });
    expect(r.problems[0].message).toMatch(/allocation 2 of the file: payload.hash \[PAYLOAD_HASH_MISMATCH\]/);
    // Its slot has no proven allocation: named skipped, the message saying why it may be; its subject's emergency
    // unblinding names no proven allocation.
    expect(codes(r.problems)).toEqual([
      "BUNDLE_INVALID - -",
      `SLOT_SKIPPED ${S2} 0`,
      `ALLOCATION_MISSING ${S2} -`,
      "EMERGENCY_MISMATCH - -",
    ]);
    expect(r.problems[1].message).toMatch(/or its allocation is among the 1 whose bundle failed/);
  });

  it("an allocation sealed before the commitment", async () => {
    const r = await verify(buildAllocationsFile({ allocations: inOrder(2), firstBeforeCommitment: true }).file);
    expect(codes(r.problems)).toEqual([`ALLOCATION_BEFORE_COMMITMENT ${S1} 0`]);
  });

  it("another design text than the sealed one", async () => {
    const r = await tampered((f) => {
      f.commitment.designText = f.commitment.designText.replace('"slotsPerStratum":12', '"slotsPerStratum":16');
    });
    expect(codes(r.problems)).toEqual(["DESIGN_HASH_MISMATCH - -"]);
  });

  it("another seed", async () => {
    const r = await tampered((f) => {
      f.commitment.seed = "00".repeat(32);
    });
    expect(r.problems.map((p) => p.code)).toEqual(["SEED_MISMATCH", "SEED_MISMATCH"]);
  });

  it("a slot removed from the revealed list", async () => {
    const r = await tampered((f) => {
      f.strata[1].slots.pop();
    });
    expect(r.problems[0]).toMatchObject({ code: "COMMITMENT_MISMATCH", stratum: S2 });
  });

  it("an allocation's inclusion proof altered", async () => {
    const r = await tampered((f) => {
      f.allocations[0].inclusion[0] = "00".repeat(32);
    });
    expect(codes(r.problems)).toEqual([`INCLUSION_FAILED ${S1} 0`]);
  });

  it("an emergency unblinding whose allocation is left out of the file", async () => {
    const r = await tampered((f) => {
      f.allocations.splice(1, 1); // P-2-001, site S2 slot 0
    });
    expect(r.problems.map((p) => p.code)).toEqual(["SLOT_SKIPPED", "ALLOCATION_MISSING", "EMERGENCY_MISMATCH"]);
  });

  it("the last allocation of a stratum left out (no gap to show it): named by the unblinding's counts", async () => {
    const r = await tampered((f) => {
      f.allocations.splice(5, 1); // P-2-003, site S2 slot 2: the stratum's last
    });
    expect(codes(r.problems)).toEqual([`ALLOCATION_MISSING ${S2} -`]);
    expect(r.problems[0].message).toMatch(
      /the unblinding sealed 3 allocations in site=S2, the file holds 2: 1 missing/,
    );
  });

  it("an emergency unblinding left out of the file", async () => {
    const r = await tampered((f) => {
      f.emergencyUnblindings = [];
    });
    expect(codes(r.problems)).toEqual(["EMERGENCY_MISSING - -"]);
    expect(r.problems[0].message).toMatch(/sealed 1 emergency unblinding, the file holds 0/);
  });

  it("the design's hash is under the file's secret nonce, not the payload's public salt", async () => {
    const f = good();
    const c0 = f.commitment.bundle.payload as { salt: string; designHash: string };
    expect(c0.designHash).toBe(designHash(c, DESIGN_NONCE, f.commitment.designText));
    // Anyone holding the commitment has its salt: it must not recompute the hash (else a design is guessable).
    expect(designHash(c, c0.salt, f.commitment.designText)).not.toBe(c0.designHash);
    const r = await tampered((x) => {
      x.commitment.designNonce = c0.salt.padEnd(43, "A").slice(0, 43);
    });
    expect(codes(r.problems)).toEqual(["DESIGN_HASH_MISMATCH - -"]);
  });

  it("the commitment swapped for an allocation's bundle", async () => {
    const r = await tampered((f) => {
      f.commitment.bundle = f.allocations[0].bundle;
    });
    expect(r.problems[0]).toMatchObject({ code: "KIND_MISMATCH" });
  });

  it("a key the policy does not trust: every bundle is named", async () => {
    const f = good();
    const other = { ...POLICY, logKeys: [{ ...POLICY.logKeys[0], untilSize: 0 }] };
    const r = await verifyAllocations(c, f, other);
    expect(new Set(r.problems.map((p) => p.code))).toEqual(new Set(["BUNDLE_INVALID"]));
    expect(r.problems).toHaveLength(1 + 6 + 1 + 1);
  });
});

describe("the commitment against the design", () => {
  it("a design stratum the commitment leaves out", async () => {
    const { file } = buildAllocationsFile({ allocations: [], committedKeys: (k) => k.slice(0, 1) });
    const r = await verify(file);
    expect(codes(r.problems)).toEqual([`COMMITMENT_MISMATCH ${S2} -`]);
    expect(r.problems[0].message).toMatch(/the design's stratum site=S2 was not committed/);
  });

  it("a committed stratum the design lacks", async () => {
    const { file } = buildAllocationsFile({ allocations: [], committedKeys: (k) => [...k, "site=S9"], seed: null });
    const r = await verify(file);
    expect(codes(r.problems)).toEqual(["COMMITMENT_MISMATCH site=S9 -"]);
  });

  it("an uploaded slot whose kit type is another arm's (the kit would tell the arm wrongly)", async () => {
    const { file } = buildAllocationsFile({
      allocations: inOrder(2),
      seed: null,
      mutateSlots: (m) => {
        const slot = m.get(S1)![4];
        slot.kitType = slot.arm === "A" ? "KP" : "KA";
      },
    });
    const r = await verify(file);
    expect(codes(r.problems)).toEqual([`SLOT_KIT_MISMATCH ${S1} 4`]);
    expect(r.problems[0].message).toMatch(/kit type K[AP] is arm [AP]'s in the design, the slot's arm is [AP]/);
  });

  it("a kit type the design does not know", async () => {
    const { file } = buildAllocationsFile({
      allocations: [],
      seed: null,
      mutateSlots: (m) => {
        m.get(S2)![0].kitType = "KX";
      },
    });
    expect(codes((await verify(file)).problems)).toEqual([`SLOT_KIT_MISMATCH ${S2} 0`]);
    expect(DESIGN.kitTypes).not.toHaveProperty("KX");
  });
});

describe("reading", () => {
  it("not JSON, or no allocations format marker: unreadable", () => {
    for (const t of ["", "{", "[]", "null", '{"format":"trialseal-proof/v1"}'])
      expect(readAllocationsText(t)).toHaveProperty("unreadable");
  });

  it("the marker but a field missing: malformed, naming the field", () => {
    const { file } = buildAllocationsFile({ allocations: inOrder(1) });
    const broken = JSON.parse(JSON.stringify(file));
    delete broken.strata[0].slots[3].arm;
    const r = parseAllocationsFile(broken);
    expect(r).toEqual({
      problem: { code: "FILE_MALFORMED", message: expect.stringMatching(/^strata\.0\.slots\.3\.arm/) },
    });
  });

  it("--pin: the file's policy only when its SHA-256 is the pinned one", () => {
    const { file } = buildAllocationsFile({ allocations: inOrder(1) });
    expect(pinnedPolicyText(c, file, POLICY_SHA256)).toBeNull();
    expect(pinnedPolicyText(c, file, "0".repeat(64))).toMatchObject({ code: "POLICY_NOT_PINNED" });
  });
});

describe("when the commitment was anchored (a warning, never an invalidity)", () => {
  const later = "2026-06-01T10:00:00.000Z"; // the first allocation, an hour after the commitment was written

  it("anchored before the first allocation: both times reported, no warning", async () => {
    const anchoredAt = "2026-06-01T09:05:00.000Z";
    const { file } = buildAllocationsFile({
      allocations: inOrder(2),
      batchSize: 1,
      commitmentAnchoredAt: anchoredAt,
      firstAllocationAt: later,
    });
    const r = await verify(file);
    expect(r.problems).toEqual([]);
    expect(r.valid).toBe(true);
    expect(r.timing.commitmentExistedBy).toMatchObject({ ledger: "local", attested: anchoredAt });
    expect(Date.parse(r.timing.commitmentExistedBy!.time)).toBeLessThan(Date.parse(later));
    expect(r.timing.firstAllocationAt).toBe(later);
    expect(r.warnings).toEqual([]);
  });

  it("anchored only after the first allocation: valid, with the warning naming both times", async () => {
    const anchoredAt = "2026-06-01T10:30:00.000Z";
    const { file } = buildAllocationsFile({
      allocations: inOrder(2),
      batchSize: 1,
      commitmentAnchoredAt: anchoredAt,
      firstAllocationAt: later,
    });
    const r = await verify(file);
    expect(r.valid).toBe(true);
    expect(r.timing.commitmentExistedBy).toMatchObject({ attested: anchoredAt });
    expect(r.warnings).toEqual([
      {
        code: "COMMITMENT_NOT_ANCHORED_BEFORE_FIRST_ALLOCATION",
        message: expect.stringMatching(
          /anchor .*existed by 2026-06-01T10:30:00\.00\dZ, not before the first allocation at 2026-06-01T10:00:00/,
        ),
      },
    ]);
  });

  it("no anchor at all: valid, with the warning; no allocation: no warning", async () => {
    const r = await verify(buildAllocationsFile({ allocations: inOrder(1) }).file);
    expect(r.valid).toBe(true);
    expect(r.timing).toEqual({ commitmentExistedBy: null, firstAllocationAt: "2026-06-01T09:00:00.001Z" });
    expect(r.warnings.map((w) => w.code)).toEqual(["COMMITMENT_NOT_ANCHORED_BEFORE_FIRST_ALLOCATION"]);
    expect(r.warnings[0].message).toMatch(/no verified anchor/);
    const none = await verify(buildAllocationsFile({ allocations: [] }).file);
    expect(none.warnings).toEqual([]);
    expect(none.timing.firstAllocationAt).toBeNull();
  });
});

describe("every committed stratum has the design's slots per stratum", () => {
  it("an uploaded list whose stratum is one slot short of slotsPerStratum: SIZE_MISMATCH naming it", async () => {
    const { file } = buildAllocationsFile({
      allocations: inOrder(2),
      seed: null,
      mutateSlots: (m) => {
        m.get(S2)!.pop();
      },
    });
    const r = await verify(file);
    expect(codes(r.problems)).toEqual([`SIZE_MISMATCH ${S2} -`]);
    expect(r.problems[0].message).toBe(`stratum ${S2} was committed with 11 slots, the design has 12 per stratum`);
  });
});
