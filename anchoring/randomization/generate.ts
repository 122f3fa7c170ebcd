/**
 * A randomization list from a design and a 32-byte CSPRNG seed (ADR 0051): per stratum, permuted blocks whose size
 * is drawn among the design's block sizes, each block holding every arm in its ratio, shuffled (Fisher-Yates), until
 * the stratum holds exactly `slotsPerStratum` slots (the last block cut there, so a sealed size says nothing about the
 * block sizes). Each arm's kit type is drawn among the
 * kit types of that arm. Deterministic: the same design and seed give the same list, so a revealed seed lets anyone
 * regenerate every slot. Random numbers come from HMAC-SHA-256(seed, label || counter) in counter mode, one stream
 * per stratum for the arms and one for the salts; integers below n by rejection (no modulo bias).
 * Browser-safe: no node: imports, and only @noble/hashes/sha2.js (HMAC is built on it here, RFC 2104, so the
 * verifier's browser bundle needs no other package: test/unit/pure-core.test.ts).
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { concatBytes, toBase64Url, utf8 } from "../log/bytes.ts";
import { type Design, type Slot, strataOf } from "./slots.ts";

export interface GeneratedSlot extends Slot {
  /** The block (from 0 in its stratum) and its size. */
  block: number;
  blockSize: number;
}

export interface GeneratedStratum {
  key: string;
  slots: GeneratedSlot[];
}

/**
 * HMAC-SHA-256 (RFC 2104) with a key of at most 64 bytes: the hash states after the key's two pads are computed
 * once per key and copied for each message (two compressions fewer per call).
 */
export function hmacSha256Pads(key: Uint8Array): (message: Uint8Array) => Uint8Array {
  if (key.length > 64) throw new RangeError("an HMAC key longer than the block is hashed first: not supported here");
  const innerPad = new Uint8Array(64).fill(0x36);
  const outerPad = new Uint8Array(64).fill(0x5c);
  for (let i = 0; i < key.length; i++) {
    innerPad[i] ^= key[i];
    outerPad[i] ^= key[i];
  }
  const inner = sha256.create().update(innerPad);
  const outer = sha256.create().update(outerPad);
  return (message) => outer.clone().update(inner.clone().update(message).digest()).digest();
}

/** A deterministic byte stream: HMAC-SHA-256(seed, label || 0x00 || counter as 4 bytes, big-endian) per 32 bytes. */
export class SeedStream {
  private counter = 0;
  private buf: Uint8Array = new Uint8Array(0);
  private pos = 0;
  private readonly label: Uint8Array;
  private readonly mac: (message: Uint8Array) => Uint8Array;

  constructor(seed: Uint8Array, label: string) {
    if (seed.length !== 32) throw new RangeError("a randomization seed is 32 bytes");
    this.label = concatBytes(utf8(label), new Uint8Array([0]));
    this.mac = hmacSha256Pads(seed);
  }

  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      if (this.pos === this.buf.length) {
        const c = new Uint8Array(4);
        new DataView(c.buffer).setUint32(0, this.counter++);
        this.buf = this.mac(concatBytes(this.label, c));
        this.pos = 0;
      }
      out[i] = this.buf[this.pos++];
    }
    return out;
  }

  /** A uniform integer in [0, n), n <= 2^32, by rejection sampling. */
  below(n: number): number {
    if (!Number.isInteger(n) || n < 1 || n > 2 ** 32) throw new RangeError(`below(${n})`);
    const limit = 2 ** 32 - (2 ** 32 % n);
    for (;;) {
      const b = this.bytes(4);
      const x = new DataView(b.buffer).getUint32(0);
      if (x < limit) return x % n;
    }
  }
}

/** One stratum's slots. */
export function generateStratum(design: Design, seed: Uint8Array, key: string): GeneratedStratum {
  const arms = new SeedStream(seed, `trialseal-randomization/1\narms\n${key}`);
  const salts = new SeedStream(seed, `trialseal-randomization/1\nsalt\n${key}`);
  const ratioSum = design.arms.reduce((a, b) => a + b.ratio, 0);
  const kitTypes = new Map<string, string[]>();
  for (const [kit, arm] of Object.entries(design.kitTypes).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
    kitTypes.set(arm, [...(kitTypes.get(arm) ?? []), kit]);
  const slots: GeneratedSlot[] = [];
  for (let block = 0; slots.length < design.slotsPerStratum; block++) {
    const blockSize = design.blockSizes[arms.below(design.blockSizes.length)];
    const contents = design.arms.flatMap((a) => Array<string>(a.ratio * (blockSize / ratioSum)).fill(a.code));
    for (let i = contents.length - 1; i > 0; i--) {
      const j = arms.below(i + 1);
      [contents[i], contents[j]] = [contents[j], contents[i]];
    }
    for (const arm of contents) {
      // The last block is cut at slotsPerStratum: its slots beyond draw nothing.
      if (slots.length === design.slotsPerStratum) break;
      const kits = kitTypes.get(arm) ?? [];
      const kitType = kits[arms.below(kits.length)];
      slots.push({
        stratum: key,
        seq: slots.length,
        arm,
        kitType,
        salt: toBase64Url(salts.bytes(16)),
        block,
        blockSize,
      });
    }
  }
  return { key, slots };
}

/** Every stratum of the design (strataOf order), each from its own streams. */
export function generateList(design: Design, seed: Uint8Array): GeneratedStratum[] {
  return strataOf(design).map((key) => generateStratum(design, seed, key));
}
