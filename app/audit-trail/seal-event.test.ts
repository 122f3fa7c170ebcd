/** The audit.event payload (ADR 0016): salted hashes only, strict schema, checkable by whoever holds the text. */
import { describe, expect, it } from "vitest";
import { nodeCrypto } from "../../anchoring/adapters/crypto-node.ts";
import { canonicalize } from "../../anchoring/log/canonical.ts";
import { buildEntry, newSalt } from "../../anchoring/log/entry.ts";
import { parsePayload } from "../../anchoring/log/payloads.ts";
import { eventPayloadFields, saltedHash } from "./seal-event.server.ts";

const row = {
  id: 42,
  at: new Date("2026-03-01T09:30:00.123Z"),
  action: "login",
  outcome: "failure" as const,
  actorUserId: null,
  actorLabel: "someone@example.test",
  siteId: null,
  participantId: null,
  ip: "203.0.113.7",
  detail: { reason: "bad_password", note: undefined, failures: 3 },
};

describe("audit.event payload", () => {
  it("carries the address, label and detail only as hashes of the payload's salt and the text", () => {
    const salt = newSalt();
    const built = buildEntry(nodeCrypto, "audit.event", eventPayloadFields(nodeCrypto, salt, row), salt);
    expect(built.payloadText).not.toContain("203.0.113.7");
    expect(built.payloadText).not.toContain("example.test");
    expect(built.payloadText).not.toContain("bad_password");
    const p = JSON.parse(built.payloadText);
    expect(p).toMatchObject({ event: 42, at: "2026-03-01T09:30:00.123Z", action: "login", outcome: "failure" });
    expect(p.ip).toBe(saltedHash(nodeCrypto, p.salt, "203.0.113.7"));
    expect(p.ip).not.toBe(saltedHash(nodeCrypto, newSalt(), "203.0.113.7"));
    expect(p.actorLabel).toBe(saltedHash(nodeCrypto, p.salt, "someone@example.test"));
    // The detail as the jsonb column gives it back (undefined members dropped), canonical.
    expect(p.detail).toBe(saltedHash(nodeCrypto, p.salt, canonicalize({ reason: "bad_password", failures: 3 })));
    expect(p.count).toBeUndefined();
  });

  it("carries the count of an aggregated event in clear", () => {
    const salt = newSalt();
    const f = eventPayloadFields(nodeCrypto, salt, { ...row, detail: { aggregated: true, count: 24 } });
    expect(f.count).toBe(24);
  });

  it("is strict: an address in clear or an unknown key is refused", () => {
    const salt = newSalt();
    const ok = { v: 1, salt, ...eventPayloadFields(nodeCrypto, salt, row) };
    expect(parsePayload("audit.event", ok).success).toBe(true);
    expect(parsePayload("audit.event", { ...ok, ip: "203.0.113.7" })).toMatchObject({ success: false });
    expect(parsePayload("audit.event", { ...ok, email: "x" })).toMatchObject({ success: false });
    expect(parsePayload("audit.event", { ...ok, at: "2026-03-01" })).toMatchObject({ success: false });
  });
});
