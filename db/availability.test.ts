import { describe, expect, it } from "vitest";
import { isDatabaseUnavailable } from "./availability.ts";

const coded = (code: string, message = code) => Object.assign(new Error(message), { code });

describe("isDatabaseUnavailable", () => {
  it("recognizes driver, socket and server-shutdown errors, also wrapped as a cause", () => {
    for (const code of [
      "CONNECTION_CLOSED",
      "CONNECTION_ENDED",
      "CONNECT_TIMEOUT",
      "ECONNREFUSED",
      "ECONNRESET",
      "57P01",
      "57P03",
      "08006",
      "53300",
    ]) {
      expect(isDatabaseUnavailable(coded(code)), code).toBe(true);
      expect(
        isDatabaseUnavailable(new Error("Failed query: insert ...", { cause: coded(code) })),
        `wrapped ${code}`,
      ).toBe(true);
    }
    expect(isDatabaseUnavailable(new AggregateError([coded("ECONNREFUSED")]))).toBe(true);
  });

  it("does not mistake a wrong or refused query for an outage", () => {
    for (const code of ["23505", "23503", "42P01", "P0001", "40001", "22P02", "ENOENT"])
      expect(isDatabaseUnavailable(coded(code)), code).toBe(false);
    expect(isDatabaseUnavailable(new Error("boom"))).toBe(false);
    expect(isDatabaseUnavailable(null)).toBe(false);
    expect(isDatabaseUnavailable("ECONNREFUSED")).toBe(false);
    const loop: Error & { cause?: unknown } = new Error("loop");
    loop.cause = loop;
    expect(isDatabaseUnavailable(loop)).toBe(false);
  });
});
