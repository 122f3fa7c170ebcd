import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { nodeCrypto as c, nodeSigner } from "../adapters/crypto-node.ts";
import {
  checkpointText,
  keyId,
  noteSignedBy,
  parseCheckpoint,
  parseNote,
  parseVkey,
  signNote,
  vkeyString,
} from "./checkpoint.ts";
import { toHex } from "./bytes.ts";

describe("C2SP signed notes and checkpoints", () => {
  it("round-trips vkeys for any key, including base64 keys that contain '+'", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (seed) => {
        const s = nodeSigner(seed);
        const v = vkeyString(c, "example.com/log", s.publicKey);
        const k = parseVkey(c, v);
        expect(toHex(k.publicKey)).toBe(toHex(s.publicKey));
        expect(toHex(k.id)).toBe(toHex(keyId(c, "example.com/log", s.publicKey)));
      }),
      { numRuns: 300 },
    );
  });

  it("signs and verifies checkpoints; an edited body or another key fails", () => {
    const s = nodeSigner(new Uint8Array(32).fill(1));
    const body = checkpointText({ origin: "example.com/log", treeSize: 5, root: new Uint8Array(32).fill(9) });
    expect(body).toBe("example.com/log\n5\nCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=\n");
    const note = signNote(c, body, "example.com/log", s);
    expect(note.startsWith(`${body}\n\u2014 example.com/log `)).toBe(true);
    const key = parseVkey(c, vkeyString(c, "example.com/log", s.publicKey));
    expect(noteSignedBy(c, parseNote(note), key)).toBe(true);
    expect(parseCheckpoint(parseNote(note).text)).toMatchObject({ origin: "example.com/log", treeSize: 5 });
    expect(noteSignedBy(c, parseNote(note.replace("\n5\n", "\n6\n")), key)).toBe(false);
    const other = parseVkey(c, vkeyString(c, "example.com/log", nodeSigner(new Uint8Array(32).fill(2)).publicKey));
    expect(noteSignedBy(c, parseNote(note), other)).toBe(false);
    expect(() => parseNote(body)).toThrow(/blank line/);
    expect(() => parseCheckpoint("o\n-1\nAA==\n")).toThrow(/tree size/);
  });
});
