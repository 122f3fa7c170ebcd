/** The long crash loop: 50 kills of the portal under load (see test/helpers/crash.ts). */
import { describe, expect, it } from "vitest";
import { crashLoop } from "../helpers/crash.ts";

describe("crash safety, long run", () => {
  it("50 kill -9 iterations: nothing acknowledged lost or duplicated, no gaps, every audit clean", async () => {
    const fig = await crashLoop(50, (s) => console.log(s));
    console.log(`crash figures: ${JSON.stringify(fig)}`);
    expect(fig.iterations).toBe(50);
    expect(fig.acknowledgedFound).toBe(fig.writesAcknowledged);
    expect(fig.duplicates).toBe(0);
    expect(fig.gaps).toBe(0);
    expect(fig.auditsClean).toBe(50);
  });
});
