import { describe, expect, it } from "vitest";
import { decryptField, encryptField } from "./personal-data.server.ts";

const key = new Uint8Array(32).fill(3);

describe("personal data encryption (AES-256-GCM)", () => {
  it("round-trips, never stores the clear text, and uses a fresh IV each time", () => {
    const a = encryptField(key, "Zoë Müller-Łukasiewicz", "participants.name_enc:p1");
    const b = encryptField(key, "Zoë Müller-Łukasiewicz", "participants.name_enc:p1");
    expect(Buffer.from(a).includes(Buffer.from("Müller"))).toBe(false);
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(false);
    expect(decryptField(key, a, "participants.name_enc:p1")).toBe("Zoë Müller-Łukasiewicz");
  });

  it("fails for another key, another row or field, or a flipped bit", () => {
    const a = encryptField(key, "1990-01-02", "participants.birth_date_enc:p1");
    expect(() => decryptField(new Uint8Array(32).fill(4), a, "participants.birth_date_enc:p1")).toThrow();
    expect(() => decryptField(key, a, "participants.birth_date_enc:p2")).toThrow();
    const flipped = a.slice();
    flipped[20] ^= 1;
    expect(() => decryptField(key, flipped, "participants.birth_date_enc:p1")).toThrow();
  });
});
