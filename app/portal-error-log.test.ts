import { afterEach, describe, expect, it, vi } from "vitest";
import { handleError } from "./entry.server.tsx";

describe("portal error log lines", () => {
  afterEach(() => vi.restoreAllMocks());

  it("leave out a failed query's parameters (they may hold a randomization list's design or seed)", () => {
    const lines: string[] = [];
    vi.spyOn(console, "error").mockImplementation((...a: unknown[]) => void lines.push(a.join(" ")));
    const err = new Error(
      'Failed query: insert into "randomization_lists" ("design_text") values ($1)\n' +
        'params: {"arms":"ARMQUORVEX"},12,34',
    );
    handleError(err, { request: new Request("http://localhost/studies/X/randomization") });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('Failed query: insert into "randomization_lists"');
    expect(lines[0]).not.toContain("ARMQUORVEX");
    expect(lines[0]).not.toContain("params");
  });
});
