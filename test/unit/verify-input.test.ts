/**
 * Issue 16 item 11: what `trialseal verify` calls unreadable (exit 2) and what invalid (exit 1). Input that is not
 * JSON, or not an object with the bundle's `format` marker, is unreadable, within bounded memory and time;
 * anything that claims the bundle format and fails a check stays invalid, so removing a field never turns
 * "tampered" into "could not check".
 */
import { mkdtempSync, openSync, closeSync, ftruncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { runVerify } from "../../bin/verify-command.ts";

let dir: string;
let policy: string;
let stderr: string[];

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), "trialseal-verify-input-"));
  policy = path.join(dir, "policy.json");
  writeFileSync(
    policy,
    JSON.stringify({ format: "trialseal-trust/v1", origin: "example.org/log", logKeys: [{ vkey: "a+b+c" }] }),
  );
});

afterEach(() => vi.restoreAllMocks());

async function verifyText(name: string, text: string | Buffer): Promise<number> {
  const file = path.join(dir, name);
  writeFileSync(file, text);
  return verifyFile(file);
}

async function verifyFile(file: string): Promise<number> {
  stderr = [];
  vi.spyOn(process.stderr, "write").mockImplementation((s) => {
    stderr.push(String(s));
    return true;
  });
  vi.spyOn(process.stdout, "write").mockImplementation(() => true);
  return runVerify([file], { trust: policy });
}

const deep = (n: number, open: string, close: string, inner = "0") => open.repeat(n) + inner + close.repeat(n);

describe("trialseal verify: unreadable input is exit 2, one line", () => {
  it.each([
    ["an empty array", "[]"],
    ["a number beyond double range", "1e309"],
    ["null", "null"],
    ["a string", '"trialseal-proof/v1"'],
    ["an object without a format marker", '{"payload":{}}'],
    ["another format", '{"format":"trialseal-trust/v1"}'],
    ["a non-string format", '{"format":1}'],
    ["broken JSON", '{"format":"trialseal-proof/v1",'],
    ["an empty file", ""],
    ["200,000-deep arrays", deep(200_000, "[", "]")],
    ["200,000-deep objects", deep(200_000, '{"a":', "}")],
    ["bytes that are not UTF-8", Buffer.from([0xff, 0xfe, 0x7b, 0x7d])],
  ])("%s", async (name, text) => {
    const code = await verifyText(`${name.replace(/\W+/g, "-")}.json`, text);
    expect(code).toBe(2);
    const out = stderr.join("");
    expect(out).toMatch(/unreadable/);
    expect(out.trim().split("\n")).toHaveLength(1);
    expect(out).not.toMatch(/\bat .*:\d+:\d+/);
  });

  it("a file far larger than any bundle is refused before it is read", async () => {
    const file = path.join(dir, "huge.json");
    const fd = openSync(file, "w");
    ftruncateSync(fd, 2 * 1024 ** 3); // sparse: 2 GiB on paper, nothing on disk
    closeSync(fd);
    expect(await verifyFile(file)).toBe(2);
    expect(stderr.join("")).toMatch(/unreadable: .*larger than/);
  });
});

describe("trialseal verify: a bundle that fails a check stays invalid (exit 1)", () => {
  it.each([
    ["the bare marker", '{"format":"trialseal-proof/v1"}'],
    ["a field removed", '{"format":"trialseal-proof/v1","payload":{"v":1},"envelope":{}}'],
    ["a deep value inside a claimed bundle", `{"format":"trialseal-proof/v1","payload":${deep(200_000, "[", "]")}}`],
    ["an unknown version of the format", '{"format":"trialseal-proof/v9"}'],
  ])("%s", async (name, text) => {
    expect(await verifyText(`${name.replace(/\W+/g, "-")}.json`, text)).toBe(1);
    expect(stderr.join("")).toMatch(/invalid/);
  });
});
