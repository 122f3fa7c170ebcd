/** The audit.event payload (ADR 0016): salted hashes only, strict schema, checkable by whoever holds the text. */
import { describe, expect, it } from "vitest";
import { nodeCrypto } from "../../anchoring/adapters/crypto-node.ts";
import { canonicalize } from "../../anchoring/log/canonical.ts";
import { buildEntry, newSalt } from "../../anchoring/log/entry.ts";
import { parsePayload } from "../../anchoring/log/payloads.ts";
import { eventPayloadFields, saltedHash } from "./seal-event.server.ts";
import { addressHmac } from "./address-hmac.server.ts";

const dataKey = new Uint8Array(32).fill(7);

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
  it("carries the address as an HMAC under the deployment key, label and detail as salted hashes", () => {
    const salt = newSalt();
    const built = buildEntry(nodeCrypto, "audit.event", eventPayloadFields(nodeCrypto, salt, row, { dataKey }), salt);
    expect(built.payloadText).not.toContain("203.0.113.7");
    expect(built.payloadText).not.toContain("example.test");
    expect(built.payloadText).not.toContain("bad_password");
    const p = JSON.parse(built.payloadText);
    expect(p).toMatchObject({ event: 42, at: "2026-03-01T09:30:00.123Z", action: "login", outcome: "failure" });
    expect(p.v).toBe(2);
    // Not the salted hash (the salt travels with the payload: 2^32 IPv4 guesses would find the address) ...
    expect(p.ip).not.toBe(saltedHash(nodeCrypto, p.salt, "203.0.113.7"));
    // ... but the HMAC under a key derived from DATA_KEY, which a bundle holder does not have.
    expect(p.ip).toBe(addressHmac(dataKey, "203.0.113.7"));
    expect(p.ip).not.toBe(addressHmac(new Uint8Array(32).fill(8), "203.0.113.7"));
    // Version 1 payloads (written before) held the salted hash: recomputed as such for the integrity audit.
    expect(eventPayloadFields(nodeCrypto, p.salt, row, { v: 1, dataKey }).ip).toBe(
      saltedHash(nodeCrypto, p.salt, "203.0.113.7"),
    );
    expect(p.actorLabel).toBe(saltedHash(nodeCrypto, p.salt, "someone@example.test"));
    // The detail as the jsonb column gives it back (undefined members dropped), canonical.
    expect(p.detail).toBe(saltedHash(nodeCrypto, p.salt, canonicalize({ reason: "bad_password", failures: 3 })));
    expect(p.count).toBeUndefined();
  });

  it("carries the count of an aggregated event in clear", () => {
    const salt = newSalt();
    const f = eventPayloadFields(nodeCrypto, salt, { ...row, detail: { aggregated: true, count: 24 } }, { dataKey });
    expect(f.count).toBe(24);
  });

  it("is strict: an address in clear or an unknown key is refused", () => {
    const salt = newSalt();
    const ok = { v: 2, salt, ...eventPayloadFields(nodeCrypto, salt, row, { dataKey }) };
    expect(parsePayload("audit.event", ok).success).toBe(true);
    expect(parsePayload("audit.event", { ...ok, v: 1 }).success).toBe(true);
    expect(parsePayload("audit.event", { ...ok, v: 3 })).toMatchObject({ success: false });
    expect(parsePayload("audit.event", { ...ok, ip: "203.0.113.7" })).toMatchObject({ success: false });
    expect(parsePayload("audit.event", { ...ok, email: "x" })).toMatchObject({ success: false });
    expect(parsePayload("audit.event", { ...ok, at: "2026-03-01" })).toMatchObject({ success: false });
  });
});
