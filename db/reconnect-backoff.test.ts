import { describe, expect, it } from "vitest";
import { reconnectBackoffSeconds } from "./client.ts";

describe("reconnectBackoffSeconds", () => {
  it("stays at most 1 s however many attempts the pool has failed (postgres.js alone grows to 20 s)", () => {
    for (let failures = 0; failures <= 60; failures++) {
      const s = reconnectBackoffSeconds(failures);
      expect(s, `${failures} failures`).toBeGreaterThan(0);
      expect(s, `${failures} failures`).toBeLessThanOrEqual(1);
    }
    // It still backs off: after many failures the wait is longer than after the first.
    expect(reconnectBackoffSeconds(20)).toBeGreaterThan(reconnectBackoffSeconds(0));
  });
});
