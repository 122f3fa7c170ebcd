/**
 * Shared arbitraries for the property-based tests (in-process in test/unit/fuzz.test.ts, over HTTP in
 * test/integration/api-fuzz.test.ts): hostile JSON values and keys.
 */
import fc from "fast-check";

// The default suite is reproducible: a fixed seed and 300 runs per property (a red CI must mean a real change).
// `npm run test:long` explores: 20,000 runs per property from a fresh seed (fast-check prints the seed and the
// shrunk counterexample of a failure; pass FUZZ_SEED to replay it).
const LONG = process.env.TRIALSEAL_LONG === "1";
export const RUNS = Number(process.env.FUZZ_RUNS ?? (LONG ? 20_000 : 300));
const SEED = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) : LONG ? undefined : 20261130;
fc.configureGlobal({ ...(SEED === undefined ? {} : { seed: SEED }), numRuns: RUNS });
export const NASTY_KEYS = [
  "__proto__",
  "constructor",
  "prototype",
  "toString",
  "hasOwnProperty",
  "",
  "sbp",
  "fields",
  "type",
  "options",
];
export const nastyKey = fc.oneof(fc.constantFrom(...NASTY_KEYS), fc.string({ maxLength: 8 }));
export const nastyValue: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  v: fc.oneof(
    { depthSize: "small" },
    fc.constantFrom(
      null,
      true,
      false,
      0,
      -0,
      1e308,
      -1e308,
      Number.MAX_SAFE_INTEGER + 2,
      1e-320,
      "",
      "\u0000",
      "\ud800",
      "=1+1",
      "2026-02-30",
      "2026-03-01T25:00Z",
    ),
    fc.double(),
    fc.string({ maxLength: 20 }),
    fc.array(tie("v"), { maxLength: 4 }),
    fc.dictionary(nastyKey, tie("v"), { maxKeys: 4 }),
  ),
})).v;

/** A copy of `base` with the part that `pathChoice` walks to (each number picks a key, modulo) replaced by `value`. */
export function mutate(base: unknown, pathChoice: number[], value: unknown): unknown {
  const copy = structuredClone(base) as Record<string, unknown>;
  let node: Record<string, unknown> = copy;
  for (let i = 0; i < pathChoice.length; i++) {
    const keys = Object.keys(node);
    if (!keys.length) break;
    const k = keys[pathChoice[i] % keys.length];
    if (i === pathChoice.length - 1 || typeof node[k] !== "object" || node[k] === null) {
      node[k] = value;
      break;
    }
    node = node[k] as Record<string, unknown>;
  }
  return copy;
}
