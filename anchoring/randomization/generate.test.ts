/**
 * List generation (ADR 0051). The statistical check of issue 20: over 10,000 simulated lists, arm balance within
 * every block is exact, every configured block size occurs, and block sizes, arm positions, block arrangements and
 * kit types are drawn uniformly (each within a generous bound: 6 standard deviations, or a chi-square far in the
 * tail). Determinism, the HMAC the streams are built on, and integers without modulo bias.
 */
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { describe, expect, it } from "vitest";
import { nodeCrypto } from "../adapters/crypto-node.ts";
import { toHex, utf8 } from "../log/bytes.ts";
import { stratumCommitment } from "./commitment.ts";
import { type GeneratedStratum, generateList, hmacSha256Pads, SeedStream } from "./generate.ts";
import { type Design, designSchema, strataOf } from "./slots.ts";

const TWO_ARMS: Design = designSchema.parse({
  v: 1,
  arms: [
    { code: "A", name: "Active", ratio: 1 },
    { code: "P", name: "Placebo", ratio: 1 },
  ],
  blockSizes: [4, 6],
  factors: [{ name: "sex", label: "Sex", levels: ["F", "M"] }],
  sites: ["S1", "S2"],
  slotsPerStratum: 20,
  kitTypes: { KA1: "A", KA2: "A", KP: "P" },
});
const THREE_ARMS: Design = designSchema.parse({
  v: 1,
  arms: [
    { code: "H", name: "High dose", ratio: 2 },
    { code: "L", name: "Low dose", ratio: 1 },
    { code: "P", name: "Placebo", ratio: 1 },
  ],
  blockSizes: [4, 8],
  factors: [{ name: "age", label: "Age group", levels: ["young", "old"] }],
  sites: ["S1"],
  // Not a multiple of 4: the last block of every stratum is cut.
  slotsPerStratum: 18,
  kitTypes: { KH: "H", KL: "L", KP: "P" },
});
const seedOf = (i: number) => sha256(utf8(`simulated list ${i}`));
const LISTS = 10_000;

/** |observed - expected| within `sigmas` standard deviations of a binomial(n, p). */
function withinBinomial(observed: number, n: number, p: number, sigmas = 6) {
  const sd = Math.sqrt(n * p * (1 - p));
  expect(Math.abs(observed - n * p), `${observed} of ${n} at p=${p}`).toBeLessThanOrEqual(sigmas * sd);
}

function chiSquare(counts: number[], expected: number): number {
  return counts.reduce((a, o) => a + (o - expected) ** 2 / expected, 0);
}

describe(`the statistical check: ${LISTS} simulated lists`, () => {
  const tally = {
    lists: 0,
    blocks: new Map<string, Map<number, number>>(),
    firstBlock: new Map<string, Map<number, number>>(),
    firstSlotArm: new Map<string, Map<string, number>>(),
    arrangements: new Map<string, number>(),
    kits: new Map<string, number>(),
    strata: new Map<string, number>(),
    cutBlocks: 0,
  };
  const bump = <K>(m: Map<K, number>, k: K) => m.set(k, (m.get(k) ?? 0) + 1);

  /** Every violation of the list's rules, as text (checked once at the end: an expect per slot is slow). */
  const violations: string[] = [];
  function check(name: string, design: Design, list: GeneratedStratum[]) {
    const sum = design.arms.reduce((a, b) => a + b.ratio, 0);
    const want = new Map(design.arms.map((a) => [a.code, a.ratio]));
    const kitArm = new Map(Object.entries(design.kitTypes));
    const keys = strataOf(design);
    if (list.map((s) => s.key).join() !== keys.join()) violations.push(`${name}: strata ${list.map((s) => s.key)}`);
    for (const s of list) {
      bump(tally.strata, name);
      const bad = (what: string) => violations.push(`${name} ${s.key}: ${what}`);
      // Exactly slotsPerStratum slots: the sealed size says nothing about the block sizes (ADR 0051).
      if (s.slots.length !== design.slotsPerStratum) bad(`${s.slots.length} slots`);
      let i = 0;
      for (let b = 0; i < s.slots.length; b++) {
        const size = s.slots[i].blockSize;
        if (!design.blockSizes.includes(size)) bad(`block ${b} of size ${size}`);
        const block = s.slots.slice(i, i + size);
        const counts = new Map<string, number>();
        for (const [k, slot] of block.entries()) {
          if (slot.seq !== i + k || slot.stratum !== s.key || slot.block !== b || slot.blockSize !== size)
            bad(`slot ${i + k} out of place`);
          if (kitArm.get(slot.kitType) !== slot.arm) bad(`slot ${i + k}: kit ${slot.kitType} for arm ${slot.arm}`);
          if (name === "two arms" && slot.arm === "A") bump(tally.kits, slot.kitType);
          bump(counts, slot.arm);
        }
        // Every complete block is exact; only the stratum's last block may be cut, and then no arm is over its share.
        const cut = block.length < size;
        if (cut && i + block.length !== s.slots.length) bad(`block ${b} holds ${block.length} of ${size}`);
        if (cut) tally.cutBlocks++;
        for (const [arm, ratio] of want) {
          const n = counts.get(arm) ?? 0;
          if (cut ? n > (ratio * size) / sum : n !== (ratio * size) / sum) bad(`block ${b}: ${n} x ${arm}`);
        }
        const bySize = tally.blocks.get(name) ?? new Map<number, number>();
        tally.blocks.set(name, bump(bySize, size));
        if (b === 0) {
          tally.firstBlock.set(name, bump(tally.firstBlock.get(name) ?? new Map<number, number>(), size));
          const arms = tally.firstSlotArm.get(name) ?? new Map<string, number>();
          tally.firstSlotArm.set(name, bump(arms, block[0].arm));
          if (name === "two arms" && size === 4) bump(tally.arrangements, block.map((x) => x.arm).join(""));
        }
        i += size;
      }
    }
  }

  it("every complete block holds each arm exactly ratio x size / sum times; each stratum exactly its size", () => {
    for (let i = 0; i < LISTS; i++) {
      const [name, design] = i % 2 === 0 ? ["two arms", TWO_ARMS] : (["three arms", THREE_ARMS] as const);
      check(name as string, design as Design, generateList(design as Design, seedOf(i)));
      tally.lists++;
    }
    expect(tally.lists).toBe(LISTS);
    expect(violations.slice(0, 20)).toEqual([]);
    // The cut is exercised: every three-arm stratum (18 = 4k + 2 or 8k + 2) ends in a cut block.
    expect(tally.cutBlocks).toBeGreaterThanOrEqual(LISTS / 2);
  });

  it("every configured block size occurs, and a block's size is drawn uniformly among them", () => {
    for (const [name, design] of [
      ["two arms", TWO_ARMS],
      ["three arms", THREE_ARMS],
    ] as const) {
      const all = tally.blocks.get(name)!;
      expect([...all.keys()].sort((a, b) => a - b)).toEqual(design.blockSizes);
      // The first block of each stratum: independent uniform draws (later blocks depend on where the list stops).
      const first = tally.firstBlock.get(name)!;
      const n = tally.strata.get(name)!;
      for (const size of design.blockSizes) withinBinomial(first.get(size) ?? 0, n, 1 / design.blockSizes.length);
    }
  });

  it("arms are shuffled uniformly: the first slot's arm follows the ratio, a block of 4's 6 arrangements alike", () => {
    const two = tally.firstSlotArm.get("two arms")!;
    const nTwo = tally.strata.get("two arms")!;
    withinBinomial(two.get("A") ?? 0, nTwo, 1 / 2);
    const three = tally.firstSlotArm.get("three arms")!;
    const nThree = tally.strata.get("three arms")!;
    withinBinomial(three.get("H") ?? 0, nThree, 2 / 4);
    withinBinomial(three.get("L") ?? 0, nThree, 1 / 4);
    expect(tally.arrangements.size).toBe(6);
    const counts = [...tally.arrangements.values()];
    const total = counts.reduce((a, b) => a + b, 0);
    // 5 degrees of freedom: P(chi2 > 40) is about 1.5e-7.
    expect(chiSquare(counts, total / 6)).toBeLessThan(40);
  });

  it("an arm's kit type is drawn uniformly among that arm's kit types", () => {
    const total = (tally.kits.get("KA1") ?? 0) + (tally.kits.get("KA2") ?? 0);
    expect(total).toBeGreaterThan(100_000);
    withinBinomial(tally.kits.get("KA1") ?? 0, total, 1 / 2);
  });
});

describe("determinism", () => {
  it("the same design and seed give the same list; another seed another list", () => {
    const a = generateList(TWO_ARMS, seedOf(1));
    expect(generateList(TWO_ARMS, seedOf(1))).toEqual(a);
    const b = generateList(TWO_ARMS, seedOf(2));
    expect(b).not.toEqual(a);
    // Even the arms alone differ somewhere (salts differ trivially).
    expect(b.map((s) => s.slots.map((x) => x.arm).join(""))).not.toEqual(
      a.map((s) => s.slots.map((x) => x.arm).join("")),
    );
    // Strata draw from their own streams: the same seed gives different sequences in different strata.
    expect(new Set(a.map((s) => s.slots.map((x) => x.salt).join())).size).toBe(a.length);
  });

  it("a fixed design and seed keep giving the same committed roots (a change here breaks committed lists)", () => {
    const roots = generateList(THREE_ARMS, new Uint8Array(32).fill(9)).map(
      (s) => stratumCommitment(nodeCrypto, s.key, s.slots).root,
    );
    expect(roots).toEqual(GOLDEN_ROOTS);
  });

  it("a seed is 32 bytes", () => {
    expect(() => new SeedStream(new Uint8Array(31), "x")).toThrow(RangeError);
  });
});

/**
 * THREE_ARMS from 32 bytes of 9: the roots the generator of ADR 0051 gives (its first released version, issue 20:
 * each stratum exactly slotsPerStratum slots, the last block cut).
 */
const GOLDEN_ROOTS = [
  "53b6d670bb4ad5b0a373c163361f074cbd1d053e3e255bd5bcbaa2a7d995f8d0",
  "9bbd478b04e13178d399cff5d0857e4d804230893939f6b2c1a4025582314584",
];

describe("the stream", () => {
  it("is HMAC-SHA-256 (RFC 4231 test case 1, and @noble/hashes' hmac on random keys)", () => {
    const mac = hmacSha256Pads(new Uint8Array(20).fill(0x0b));
    expect(toHex(mac(utf8("Hi There")))).toBe("b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    for (let i = 0; i < 50; i++) {
      const key = sha256(utf8(`key ${i}`));
      const msg = sha256(utf8(`message ${i}`)).slice(0, i % 32);
      expect(toHex(hmacSha256Pads(key)(msg))).toBe(toHex(hmac(sha256, key, msg)));
    }
  });

  it("below(n) has no modulo bias: n = 3 x 2^30, where x mod n would favour the lowest third 2:1:1", () => {
    const n = 3 * 2 ** 30;
    const s = new SeedStream(seedOf(0), "bias");
    const thirds = [0, 0, 0];
    const draws = 60_000;
    for (let i = 0; i < draws; i++) thirds[Math.floor(s.below(n) / 2 ** 30)]++;
    expect(thirds.reduce((a, b) => a + b, 0)).toBe(draws); // every draw in [0, n)
    // 2 degrees of freedom: P(chi2 > 30) is about 3e-7; modulo bias would give about 7,500.
    expect(chiSquare(thirds, draws / 3)).toBeLessThan(30);
  });

  it("below(n) for small n: every value equally likely (chi-square)", () => {
    const s = new SeedStream(seedOf(1), "small");
    for (const n of [2, 3, 5, 6, 7]) {
      const counts = Array<number>(n).fill(0);
      const draws = 6_000 * n;
      for (let i = 0; i < draws; i++) counts[s.below(n)]++;
      // n - 1 <= 6 degrees of freedom: P(chi2 > 45) is below 1e-7.
      expect(chiSquare(counts, draws / n)).toBeLessThan(45);
    }
  });
});
