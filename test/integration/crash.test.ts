/**
 * kill -9 of the portal during a burst of API writes, seals and anchors, a few times (50 in `npm run test:long`):
 * nothing acknowledged is lost or duplicated, seqs have no gaps, the audit is clean, pending work resumes.
 */
import { describe, expect, it } from "vitest";
import { crashLoop } from "../helpers/crash.ts";

describe("crash safety (kill -9 under load, PostgreSQL portal)", () => {
  it(
    "keeps every acknowledged write exactly once across kills, with a clean audit after each restart",
    async () => {
      const fig = await crashLoop(Number(process.env.CRASH_ITERATIONS ?? 3), (s) => console.log(s));
      console.log(`crash figures: ${JSON.stringify(fig)}`);
      expect(fig.iterations).toBe(Number(process.env.CRASH_ITERATIONS ?? 3));
      expect(fig.writesAcknowledged).toBeGreaterThan(0);
      expect(fig.acknowledgedFound).toBe(fig.writesAcknowledged);
      expect(fig.duplicates).toBe(0);
      expect(fig.gaps).toBe(0);
      expect(fig.auditsClean).toBe(fig.iterations);
    },
    120_000 * (Number(process.env.CRASH_ITERATIONS ?? 3) + 1),
  ); // per iteration a portal start, a burst, an audit
});
