/** The protocol version in force at a site at a moment (ADR 0048): pure logic. */
import { describe, expect, it } from "vitest";
import { approvalInForce, dateInZone, inForceLookup, type SiteApproval } from "./protocol-in-force.ts";

const a = (
  siteId: string,
  approvedOn: string,
  version: string,
  registered = "2026-01-01T00:00:00Z",
  recorded = "2000-01-01T00:00:00Z",
): SiteApproval => ({
  siteId,
  approvedOn,
  documentId: `doc-${version}`,
  version,
  registeredAt: new Date(registered),
  recordedAt: new Date(recorded),
});

describe("protocol in force", () => {
  it("is the version approved at the site latest on or before the day, none before the first", () => {
    const approvals = [a("S", "2026-02-01", "1.0"), a("S", "2026-05-10", "2.0")];
    expect(approvalInForce(approvals, "2026-01-31")).toBeNull();
    expect(approvalInForce(approvals, "2026-02-01")?.version).toBe("1.0");
    expect(approvalInForce(approvals, "2026-05-09")?.version).toBe("1.0");
    expect(approvalInForce(approvals, "2026-05-10")?.version).toBe("2.0");
    expect(approvalInForce([...approvals].reverse(), "2027-01-01")?.version).toBe("2.0");
  });

  it("two versions approved the same day: the later registered one", () => {
    const approvals = [
      a("S", "2026-03-01", "2.0", "2026-02-20T10:00:00Z"),
      a("S", "2026-03-01", "1.1", "2026-02-10T10:00:00Z"),
    ];
    expect(approvalInForce(approvals, "2026-03-01")?.version).toBe("2.0");
  });

  it("reads the day on the site's clock, and keeps sites apart", () => {
    const lookup = inForceLookup(
      [a("AKL", "2026-03-02", "2.0"), a("AKL", "2026-01-01", "1.0"), a("LAX", "2026-01-01", "1.0")],
      new Map([
        ["AKL", "Pacific/Auckland"],
        ["LAX", "America/Los_Angeles"],
      ]),
    );
    // 2026-03-01 12:00 UTC is already 2 March in Auckland (UTC+13): version 2.0 is in force there.
    const at = new Date("2026-03-01T12:00:00Z");
    expect(dateInZone(at, "Pacific/Auckland")).toBe("2026-03-02");
    expect(lookup("AKL", at)?.version).toBe("2.0");
    expect(lookup("AKL", new Date("2026-03-01T10:59:00Z"))?.version).toBe("1.0");
    expect(lookup("LAX", at)).toEqual({ documentId: "doc-1.0", version: "1.0" });
    expect(lookup("LAX", new Date("2026-01-01T07:59:00Z"))).toBeNull(); // 31 December in Los Angeles
    expect(lookup("NOWHERE", at)).toBeNull();
  });

  it("counts only approvals recorded by the value's instant (one back-dated later changes nothing)", () => {
    // 2.0's approval at S is dated 10 January but recorded on 20 March.
    const lookup = inForceLookup(
      [
        a("S", "2026-01-05", "1.0", undefined, "2026-01-05T09:00:00Z"),
        a("S", "2026-01-10", "2.0", undefined, "2026-03-20T12:00:00Z"),
      ],
      new Map([["S", "UTC"]]),
    );
    expect(lookup("S", new Date("2026-02-01T12:00:00Z"))?.version).toBe("1.0"); // entered in February: 2.0 unknown
    expect(lookup("S", new Date("2026-03-20T11:59:59Z"))?.version).toBe("1.0");
    expect(lookup("S", new Date("2026-03-20T12:00:00Z"))?.version).toBe("2.0"); // from its recording on
    expect(lookup("S", new Date("2026-01-05T08:59:59Z"))).toBeNull(); // 1.0's approval not yet recorded either
  });

  it("reads an unknown time zone as UTC", () => {
    expect(dateInZone(new Date("2026-03-01T23:30:00Z"), "Not/AZone")).toBe("2026-03-01");
  });
});
