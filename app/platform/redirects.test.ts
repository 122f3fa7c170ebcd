import { describe, expect, it } from "vitest";
import { safeNext } from "./session.server.ts";

// Issue 16 item 5: `next` is resolved as a browser resolves a Location (WHATWG URL, which strips tabs and
// newlines) and followed only when it stays on the portal's own origin.
describe("safeNext: where a sign-in step may send the browser", () => {
  it.each([
    ["/\t/evil.example/phish"],
    ["/\n/evil.example/phish"],
    ["/\r\n/evil.example"],
    ["//evil.example/x"],
    ["/\\evil.example/x"],
    ["\\/evil.example"],
    ["/.//evil.example/x"],
    ["https://evil.example/"],
    ["http:evil.example"],
    ["javascript:alert(1)"],
    [" /studies"],
    [""],
  ])("refuses %j (falls back)", (next) => {
    expect(safeNext(next)).toBe("/studies");
    expect(safeNext(next, "/account")).toBe("/account");
  });

  it.each([
    ["/studies/DEMO-001", "/studies/DEMO-001"],
    ["/studies/DEMO-001/subjects?site=A#top", "/studies/DEMO-001/subjects?site=A#top"],
    ["/studies/DEMO-001/../DEMO-002", "/studies/DEMO-002"],
  ])("follows %j as %j", (next, expected) => {
    expect(safeNext(next)).toBe(expected);
  });

  it("never returns a value a Location header cannot carry or a browser reads as another host", () => {
    for (const c of ["\t", "\n", "\r", "\u0000", "\u00a0", " "]) {
      const r = safeNext(`/${c}/evil.example/x`);
      expect([...r].some((ch) => ch.charCodeAt(0) < 0x20)).toBe(false);
      expect(new URL(r, "https://portal.example").origin).toBe("https://portal.example");
    }
  });
});
