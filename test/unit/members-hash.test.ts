import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { nodeCrypto } from "../../anchoring/adapters/crypto-node.ts";
import { membersHash } from "../../app/data-sharing/members-hash.ts";

const sha = (s: string) => createHash("sha256").update(s, "utf8").digest("hex");

describe("membersHash (data_use.delivered)", () => {
  it("is SHA-256 of the salt, a newline, then the ids sorted one per line", () => {
    expect(membersHash(nodeCrypto, "s1", ["b", "a", "c"])).toBe(sha("s1\na\nb\nc"));
  });
  it("does not depend on the order the ids come in, and does not change the caller's array", () => {
    const ids = ["z9", "a1", "m5"];
    expect(membersHash(nodeCrypto, "salt", ids)).toBe(membersHash(nodeCrypto, "salt", ["a1", "m5", "z9"]));
    expect(ids).toEqual(["z9", "a1", "m5"]);
  });
  it("is the hash of the salt alone for an empty delivery", () => {
    expect(membersHash(nodeCrypto, "salt", [])).toBe(sha("salt"));
  });
  it("changes when a member is added, removed, or the salt differs", () => {
    const base = membersHash(nodeCrypto, "salt", ["a", "b"]);
    expect(membersHash(nodeCrypto, "salt", ["a"])).not.toBe(base);
    expect(membersHash(nodeCrypto, "salt", ["a", "b", "c"])).not.toBe(base);
    expect(membersHash(nodeCrypto, "other", ["a", "b"])).not.toBe(base);
  });
});
