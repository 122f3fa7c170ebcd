import { describe, expect, it } from "vitest";
import { entryClosedBecause } from "./entry-closed.ts";

describe("why the entry form is not offered", () => {
  it("names a study, site or casebook lock with its reason, and a full withdrawal with its date", () => {
    expect(entryClosedBecause({ scope: "study", reason: "final lock" }, undefined)).toBe(
      "The study is locked (final lock): no data can be entered or corrected until a data manager unlocks it.",
    );
    expect(entryClosedBecause({ scope: "site", reason: "site closed" }, undefined)).toMatch(/^The site is locked/);
    expect(entryClosedBecause({ scope: "subject", reason: "interim" }, undefined)).toMatch(
      /^This participant's casebook is locked \(interim\)/,
    );
    expect(entryClosedBecause(null, { withdrawnAt: new Date("2026-05-04T10:00:00Z") })).toBe(
      "The participant withdrew consent in full on 2026-05-04: no new data may be collected. Data collected before " +
        "the withdrawal are kept and may still be corrected on each record's page.",
    );
    // A lock wins over a withdrawal (nothing, not even a correction, goes in).
    expect(
      entryClosedBecause({ scope: "subject", reason: "x" }, { withdrawnAt: new Date("2026-05-04T10:00:00Z") }),
    ).toMatch(/locked/);
  });

  it("leaves entry open without a lock or with a lock of one record only (other forms stay open)", () => {
    expect(entryClosedBecause(null, undefined)).toBeNull();
    expect(entryClosedBecause({ scope: "record", reason: "x" }, undefined)).toBeNull();
  });
});
