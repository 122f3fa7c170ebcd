/**
 * Walks test/vectors/bundles: every committed vector equals what the generator produces from the core's own
 * construction, every valid bundle verifies, and every broken one fails first at its named step code.
 */
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { nodeCrypto } from "../../anchoring/adapters/crypto-node.ts";
import { nobleCrypto } from "../../anchoring/log/crypto-noble.ts";
import { verifyBundle } from "../../anchoring/verifier/verify-bundle.ts";
import { chainReader, generateVectors, type Vector } from "../vectors/bundles/generate.ts";

const DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "vectors", "bundles");
const files = readdirSync(DIR)
  .filter((f) => f.endsWith(".json"))
  .sort();

describe("proof-bundle vectors (test/vectors/bundles)", () => {
  it("are the generator's output, byte for byte (regenerate with npx tsx test/vectors/bundles/generate.ts)", () => {
    const generated = generateVectors();
    expect(files.map((f) => f.replace(/\.json$/, "")).sort()).toEqual(Object.keys(generated).sort());
    for (const f of files)
      expect(readFileSync(path.join(DIR, f), "utf8"), f).toBe(
        `${JSON.stringify(generated[f.replace(/\.json$/, "")], null, 2)}\n`,
      );
  });

  it("has valid cases and named broken ones", () => {
    expect(files.filter((f) => f.startsWith("valid-")).length).toBeGreaterThanOrEqual(5);
    expect(files.filter((f) => !f.startsWith("valid-")).length).toBeGreaterThanOrEqual(20);
  });

  for (const f of files) {
    it(f, async () => {
      const v = JSON.parse(readFileSync(path.join(DIR, f), "utf8")) as Vector;
      for (const crypto of [nodeCrypto, nobleCrypto]) {
        // A vector with EVM anchors carries the chain's answers: its receipts are checked against them, offline.
        const chain = v.chain;
        const evm = chain ? (id: number) => (id === chain.chainId ? chainReader(chain) : undefined) : undefined;
        const r = await verifyBundle(crypto, v.bundle, v.policy, { evm });
        expect(r.verdict, JSON.stringify(r.steps.filter((s) => s.status === "failed"))).toBe(v.want.verdict);
        if (v.want.code) expect(r.steps.find((s) => s.status === "failed")?.code).toBe(v.want.code);
        if (chain) expect(r.anchors.map((a) => a.status)).not.toContain("not_checked");
      }
    });
  }
});
