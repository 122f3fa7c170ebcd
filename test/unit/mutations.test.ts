import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { buildLog, POLICY } from "../vectors/bundles/generate.ts";
import { firstFailure, mutationArb } from "../helpers/mutations.ts";

describe("mutation suite over the vector bundles (fast-check, sampled per field)", () => {
  const { bundles } = buildLog();
  it("rejects every mutation, with the specific step code", async () => {
    await fc.assert(
      fc.asyncProperty(fc.nat({ max: bundles.length - 1 }), mutationArb(bundles), async (i, m) => {
        const r = await firstFailure(bundles[i], POLICY, m);
        expect(r.verdict, m.name).toBe("invalid");
        expect(m.codes, `${m.name}: got ${r.code}`).toContain(r.code);
      }),
      { numRuns: Number(process.env.MUTATION_RUNS ?? 2000) },
    );
  });
});
