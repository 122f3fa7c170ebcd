/**
 * `trialseal verify-allocations FILE (--pin SHA256 | --trust POLICY.json)`: exit 0 valid, 1 invalid naming the slot
 * on one line per problem, 2 unreadable, one line and no stack trace. Three runs spawn the CLI itself
 * (bin/trialseal.js, as a user runs it); the rest call the command function in this process.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { runVerifyAllocations } from "../../bin/verify-allocations-command.ts";
import { buildAllocationsFile, inOrder, POLICY_SHA256, POLICY_TEXT } from "../helpers/allocations-file.ts";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
let dir: string;
let good: string;
let reused: string;
let policy: string;

const write = (name: string, text: string) => {
  const f = path.join(dir, name);
  writeFileSync(f, text);
  return f;
};

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), "trialseal-verify-allocations-"));
  good = write("good.json", JSON.stringify(buildAllocationsFile({ allocations: inOrder(3) }).file));
  const allocations = inOrder(3);
  allocations[4] = { ...allocations[4], seq: 1 }; // site S1 slot 2 -> slot 1 again
  reused = write("reused.json", JSON.stringify(buildAllocationsFile({ allocations }).file));
  policy = write("policy.json", POLICY_TEXT);
});

afterEach(() => vi.restoreAllMocks());

const cli = (args: string[]) =>
  spawnSync(process.execPath, [path.join(ROOT, "bin", "trialseal.js"), "verify-allocations", ...args], {
    encoding: "utf8",
    env: { ...process.env, DATA_DIR: dir },
  });

describe("trialseal verify-allocations (the CLI)", () => {
  it("exit 0 for a faithful file with the pinned policy", () => {
    const r = cli([good, "--pin", POLICY_SHA256]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/: VALID \(study ALLOC-1; 2 strata, \d+ slots, 6 allocations/);
    expect(r.stdout).toMatch(/site=S1: 3 of \d+ slots allocated \(/);
  });

  it("exit 1 naming the reused slot on one line", () => {
    const r = cli([reused, "--pin", POLICY_SHA256]);
    expect(r.status).toBe(1);
    const lines = r.stderr.trim().split("\n");
    expect(lines).toEqual([
      expect.stringMatching(
        /invalid: \[SLOT_REUSED\] site=S1, R01-0002 \(slot 1, subject .+\): the slot was taken twice/,
      ),
    ]);
  });

  it("exit 2 for a file that is not an allocations file, one line, no stack trace", () => {
    const r = cli([write("not.json", "{nope"), "--pin", POLICY_SHA256]);
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split("\n")).toEqual([expect.stringMatching(/unreadable: not JSON$/)]);
  });
});

describe("trialseal verify-allocations (the command, in process)", () => {
  let stdout: string[];
  let stderr: string[];
  const run = async (file: string, o: { trust?: string; pin?: string; json?: boolean }) => {
    stdout = [];
    stderr = [];
    vi.spyOn(process.stdout, "write").mockImplementation((s) => stdout.push(String(s)) > 0);
    vi.spyOn(process.stderr, "write").mockImplementation((s) => stderr.push(String(s)) > 0);
    return runVerifyAllocations(file, o);
  };

  it("--trust policy.json instead of the pin", async () => {
    expect(await run(good, { trust: policy })).toBe(0);
  });

  it("a commitment not anchored before the first allocation: a WARNING line with its code, still exit 0", async () => {
    expect(await run(good, { pin: POLICY_SHA256 })).toBe(0);
    const out = stdout.join("");
    expect(out).toMatch(/: VALID \(/);
    expect(out).toMatch(/\n {2}commitment: no verified anchor; first allocation at 2026-06-01T09:00:00\.001Z\n/);
    expect(out).toMatch(
      /\n {2}WARNING \[COMMITMENT_NOT_ANCHORED_BEFORE_FIRST_ALLOCATION\]: the commitment has no verified anchor/,
    );
    expect(stderr.join("")).toBe("");
    const anchored = buildAllocationsFile({
      allocations: inOrder(2),
      batchSize: 1,
      commitmentAnchoredAt: "2026-06-01T09:05:00.000Z",
      firstAllocationAt: "2026-06-01T10:00:00.000Z",
    }).file;
    expect(await run(write("anchored.json", JSON.stringify(anchored)), { pin: POLICY_SHA256 })).toBe(0);
    expect(stdout.join("")).toContain(
      "\n  commitment: existed by 2026-06-01T09:05:00.001Z (anchored in ledger local at 2026-06-01T09:05:00.000Z), " +
        "before the first allocation at 2026-06-01T10:00:00.000Z\n",
    );
    expect(stdout.join("")).not.toMatch(/WARNING/);
  });

  it("--json: the report", async () => {
    expect(await run(reused, { pin: POLICY_SHA256, json: true })).toBe(1);
    const report = JSON.parse(stdout.join(""));
    expect(report.problems).toEqual([expect.objectContaining({ code: "SLOT_REUSED", stratum: "site=S1", seq: 1 })]);
  });

  it("a policy other than the pinned one: invalid (exit 1), as verify-package", async () => {
    expect(await run(good, { pin: "0".repeat(64) })).toBe(1);
    expect(stderr.join("")).toMatch(/invalid: \[POLICY_NOT_PINNED\]/);
  });

  it("the format marker but a field missing: invalid (exit 1) naming the field", async () => {
    const { file } = buildAllocationsFile({ allocations: inOrder(1) });
    const broken = JSON.parse(JSON.stringify(file));
    delete broken.allocations[0].inclusion;
    expect(await run(write("broken.json", JSON.stringify(broken)), { pin: POLICY_SHA256 })).toBe(1);
    expect(stderr.join("")).toMatch(/invalid: \[FILE_MALFORMED\]: allocations\.0\.inclusion/);
  });

  it.each([
    ["a missing file", () => path.join(dir, "missing.json"), { pin: POLICY_SHA256 }],
    ["a proof bundle instead", () => write("bundle.json", '{"format":"trialseal-proof/v1"}'), { pin: POLICY_SHA256 }],
    ["bytes that are not UTF-8", () => write("bin.json", "\xff\xfe"), { pin: POLICY_SHA256 }],
    ["no trust given", () => good, {}],
    ["both trusts given", () => good, { pin: POLICY_SHA256, trust: "x" }],
    ["a pin that is not a SHA-256", () => good, { pin: "abc" }],
    ["a trust policy that cannot be read", () => good, { trust: "/nonexistent/trialseal-policy.json" }],
  ])("%s: exit 2, one line", async (_name, file, o) => {
    expect(await run(file(), o)).toBe(2);
    expect(stderr.join("").trim().split("\n")).toHaveLength(1);
  });
});
