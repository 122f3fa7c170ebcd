import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { canonicalize, CanonicalizationError } from "./canonical.ts";

const vectors = JSON.parse(readFileSync(new URL("../../test/vectors/jcs/rfc8785.json", import.meta.url), "utf8"));

function fromIeeeHex(hex: string): number {
  const view = new DataView(new ArrayBuffer(8));
  view.setBigUint64(0, BigInt(`0x${hex}`));
  return view.getFloat64(0);
}

describe("RFC 8785 JSON canonicalization (test/vectors/jcs)", () => {
  it("produces the RFC's canonical form of its sample documents", () => {
    for (const d of vectors.documents) expect(canonicalize(JSON.parse(d.input)), d.name).toBe(d.canonical);
  });

  it("serializes every Appendix B number as the RFC says", () => {
    expect(vectors.numbers.length).toBe(24);
    for (const [hex, text] of vectors.numbers) expect(canonicalize(fromIeeeHex(hex)), hex).toBe(text);
  });

  it("rejects values JSON cannot represent", () => {
    for (const v of [
      Number.NaN,
      Number.POSITIVE_INFINITY,
      Number.NEGATIVE_INFINITY,
      undefined,
      () => 1,
      new Date(0),
      { a: [1, Number.NaN] },
    ]) {
      expect(() => canonicalize(v)).toThrow(CanonicalizationError);
    }
  });

  it("is stable: canonicalizing the canonical text again changes nothing", () => {
    for (const d of vectors.documents) expect(canonicalize(JSON.parse(d.canonical))).toBe(d.canonical);
  });
});
