/**
 * The randomization list's contract (issue 20): the design, stratum keys and slots, and a slot's leaf hash.
 *
 * A stratum's slots are the leaves of an RFC 6962 Merkle tree: the leaf at index i is slot i, its data the canonical
 * JSON (RFC 8785) of `{arm, kitType, salt, seq, stratum}` and its hash SHA-256(0x00 || data). The commitment
 * (`randomization.committed`) seals per stratum the root and size of that tree and the design as a salted hash, so
 * nothing that unblinds is sealed, yet no slot can be changed, skipped or reused afterwards without the verifier
 * (anchoring/randomization/verify-allocations.ts) naming it. Browser-safe: no node: imports.
 */
import { z } from "zod";
import { toHex, utf8 } from "../log/bytes.ts";
import { canonicalize } from "../log/canonical.ts";
import type { Crypto } from "../log/crypto.ts";
import { leafHash } from "../log/merkle.ts";

const codeish = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.+<>-]{0,31}$/, "use letters, digits and _ . + < > -");
const factorName = z.string().regex(/^[a-z][a-z0-9_]{0,31}$/, "use lower-case letters, digits and _");
const siteCode = z.string().regex(/^[^;=\s][^;=]{0,63}$/, "a site code without ; or =");

/** The design: everything that decides an allocation. Its canonical JSON is the `design_text` sealed by hash. */
export const designSchema = z
  .strictObject({
    v: z.literal(1),
    /** The arms and their allocation ratio (e.g. 1:1, 2:1). */
    arms: z
      .array(
        z.strictObject({ code: codeish, name: z.string().min(1).max(100), ratio: z.number().int().min(1).max(10) }),
      )
      .min(2)
      .max(8),
    /** Permuted block sizes; each a multiple of the ratios' sum. A list picks among them at random per block. */
    blockSizes: z.array(z.number().int().min(2).max(100)).min(1).max(6),
    /** Up to two stratification factors besides the site, each with its levels. */
    factors: z
      .array(
        z.strictObject({
          name: factorName,
          label: z.string().min(1).max(100),
          levels: z.array(codeish).min(2).max(10),
        }),
      )
      .max(2),
    /** The sites stratified (every site of the study that randomizes). */
    sites: z.array(siteCode).min(1).max(200),
    /** Slots per stratum, exactly (a generated list cuts its last block there: ADR 0051). */
    slotsPerStratum: z.number().int().min(1).max(100_000),
    /** Kit type -> arm: each arm has at least one kit type (kit types are what blinded staff may see later). */
    kitTypes: z.record(codeish, codeish),
  })
  .superRefine((d, ctx) => {
    const sum = d.arms.reduce((a, b) => a + b.ratio, 0);
    for (const [i, b] of d.blockSizes.entries())
      if (b % sum !== 0)
        ctx.addIssue({
          code: "custom",
          path: ["blockSizes", i],
          message: `block size ${b} is not a multiple of ${sum}`,
        });
    const arms = new Set(d.arms.map((a) => a.code));
    if (arms.size !== d.arms.length) ctx.addIssue({ code: "custom", path: ["arms"], message: "two arms share a code" });
    for (const [k, a] of Object.entries(d.kitTypes))
      if (!arms.has(a)) ctx.addIssue({ code: "custom", path: ["kitTypes", k], message: `kit type ${k}: no arm ${a}` });
    for (const a of arms)
      if (!Object.values(d.kitTypes).includes(a))
        ctx.addIssue({ code: "custom", path: ["kitTypes"], message: `arm ${a} has no kit type` });
    if (new Set(d.sites).size !== d.sites.length)
      ctx.addIssue({ code: "custom", path: ["sites"], message: "a site twice" });
    if (new Set(d.factors.map((f) => f.name)).size !== d.factors.length)
      ctx.addIssue({ code: "custom", path: ["factors"], message: "two factors share a name" });
  });
export type Design = z.infer<typeof designSchema>;

/** One slot of a stratum's list. `salt` is 16 random bytes, base64url (22 characters). */
export interface Slot {
  stratum: string;
  seq: number;
  arm: string;
  kitType: string;
  salt: string;
}

/** A stratum's key: `site=CODE` then `;name=level` per factor in the design's order. */
export function stratumKey(site: string, levels: readonly { name: string; level: string }[]): string {
  return [`site=${site}`, ...levels.map((l) => `${l.name}=${l.level}`)].join(";");
}

/** Every stratum of a design, in order: sites in the design's order, then the factors' levels (first slowest). */
export function strataOf(design: Design): string[] {
  let combos: { name: string; level: string }[][] = [[]];
  for (const f of design.factors)
    combos = combos.flatMap((c) => f.levels.map((level) => [...c, { name: f.name, level }]));
  return design.sites.flatMap((site) => combos.map((c) => stratumKey(site, c)));
}

/** The leaf data of a slot: the canonical JSON of its five fields. */
export function slotLeafData(slot: Slot): Uint8Array {
  return utf8(
    canonicalize({ arm: slot.arm, kitType: slot.kitType, salt: slot.salt, seq: slot.seq, stratum: slot.stratum }),
  );
}

/** A slot's RFC 6962 leaf hash (lowercase hex). */
export function slotLeafHash(crypto: Crypto, slot: Slot): string {
  return toHex(leafHash(crypto, slotLeafData(slot)));
}

/** The randomization number shown to blinded staff: the stratum's position (1-based) and the slot's (1-based). */
export function randomizationNumber(stratumPosition: number, seq: number): string {
  return `R${String(stratumPosition).padStart(2, "0")}-${String(seq + 1).padStart(4, "0")}`;
}
