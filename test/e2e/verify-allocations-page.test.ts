/**
 * Issue 20 (ADR 0055): the browser verification page checks a study's allocations file in the page. A faithful
 * file, with the SHA-256 of the trust policy it carries pinned, is shown valid in words with its allocations per
 * stratum and arm; a file where two participants took the same slot and one where an arm was changed after the
 * commitment are shown invalid, naming the stratum, the slot and what it means; a policy other than the pinned one
 * is refused. The page is the one `trialseal verifier-html` saves, opened from disk, on a desktop (1366x900) and a
 * phone (390x844). Nothing is uploaded.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildVerifierHtml } from "../../bin/build-verifier.mjs";
import { buildAllocationsFile, inOrder, POLICY_SHA256 } from "../helpers/allocations-file.ts";
import { launchChromium, shot } from "../helpers/browser.ts";

let browser: Browser;
const dir = mkdtempSync(path.join(tmpdir(), "ts-verify-alloc-"));
const page = path.join(dir, "verify.html");
const files: Record<string, string> = {};

beforeAll(async () => {
  writeFileSync(page, (await buildVerifierHtml()).html);
  const write = (name: string, value: unknown) => {
    files[name] = path.join(dir, `${name}.json`);
    writeFileSync(files[name], JSON.stringify(value));
  };
  write("allocations", buildAllocationsFile({ allocations: inOrder(4), emergencies: ["P-1-002"] }).file);
  const reused = inOrder(4);
  reused[4] = { ...reused[4], seq: 1 }; // site S1: slot 1 again instead of slot 2
  write("reused", buildAllocationsFile({ allocations: reused }).file);
  write(
    "anchored",
    buildAllocationsFile({
      allocations: inOrder(2),
      batchSize: 1,
      commitmentAnchoredAt: "2026-06-01T09:05:00.000Z",
      firstAllocationAt: "2026-06-01T10:00:00.000Z",
    }).file,
  );
  const altered = buildAllocationsFile({ allocations: inOrder(4), seed: null }).file;
  altered.strata[1].slots[3].arm = altered.strata[1].slots[3].arm === "A" ? "P" : "A";
  write("altered", altered);
  browser = await launchChromium();
});
afterAll(async () => {
  await browser?.close();
});

describe("verification page: a study's allocations (Chromium)", () => {
  for (const [device, viewport] of [
    ["desktop", { width: 1366, height: 900 }],
    ["phone", { width: 390, height: 844 }],
  ] as const) {
    it(`shows every allocation proven, and names a reused and an altered slot (${device})`, async () => {
      const p = await (await browser.newContext({ viewport })).newPage();
      const requests: string[] = [];
      await p.goto(`file://${page}`);
      p.on("request", (r) => requests.push(r.url()));
      const check = async (name: string, pin = POLICY_SHA256) => {
        await p.locator("#policy-pin").fill(pin);
        await p.locator("#allocations-file").setInputFiles(files[name]);
        await p.getByRole("button", { name: "Verify" }).click();
        const report = p.locator(`section.report[data-file="${name}.json"]`);
        await expect.poll(() => report.count()).toBe(1);
        return report;
      };

      const good = await check("allocations");
      expect(await good.getAttribute("data-verdict")).toBe("valid");
      expect(await good.locator(".summary").textContent()).toMatch(
        /Every one of the 8 allocations of study ALLOC-1 took exactly its slot .* no slot was skipped, reused or chan/,
      );
      expect(await good.locator('li[data-stratum="site=S1"]').textContent()).toMatch(
        /4 of \d+ slots allocated; by arm: /,
      );
      // Its commitment has no anchor: still valid, with the warning in words.
      const warning = good.locator('li[data-warning="COMMITMENT_NOT_ANCHORED_BEFORE_FIRST_ALLOCATION"]');
      expect(await warning.textContent()).toMatch(
        /^Warning: No independent time stamp \(anchor\) shows that the list was sealed before the first participant/,
      );
      expect(await good.locator(".timing").textContent()).toMatch(/The list's seal has no verified time stamp/);
      await shot(p, `20-verify-allocations-valid-${device}`);

      const anchored = await check("anchored");
      expect(await anchored.getAttribute("data-verdict")).toBe("valid");
      expect(await anchored.locator("li[data-warning]").count()).toBe(0);
      const timing = await anchored.locator(".timing").textContent();
      expect(timing).toMatch(/proven to have existed by 2026-06-01T09:05:00\.001Z \(time stamp of ledger local/);
      expect(timing).toMatch(/first participant was allocated at 2026-06-01T10:00:00\.000Z, after the seal was time-/);

      const reused = await check("reused");
      expect(await reused.getAttribute("data-verdict")).toBe("invalid");
      const reusedProblem = reused.locator('li[data-code="SLOT_REUSED"]');
      expect(await reusedProblem.textContent()).toMatch(
        /^site=S1, R01-0002 \(slot 1, subject P-1-002 and P-1-003\): Two participants were given the same slot/,
      );
      expect(await reusedProblem.textContent()).toMatch(/subject P-1-002, then subject P-1-003/);

      const altered = await check("altered");
      expect(await altered.getAttribute("data-verdict")).toBe("invalid");
      expect(await altered.locator('li[data-code="SLOT_ALTERED"]').textContent()).toMatch(
        /^site=S2, R02-0004 \(slot 3(, subject [^)]+)?\): A slot of the list .* was changed after the list was sealed/,
      );
      await shot(p, `20-verify-allocations-altered-${device}`);

      const unpinned = await check("allocations", "0".repeat(64));
      expect(await unpinned.getAttribute("data-verdict")).toBe("invalid");
      expect(await unpinned.locator('li[data-code="POLICY_NOT_PINNED"]').count()).toBe(1);
      expect(requests).toEqual([]); // nothing uploaded, nothing fetched

      const wide = await p.evaluate(() =>
        [...document.querySelectorAll("body *")]
          .filter((e) => e.getBoundingClientRect().right > window.innerWidth)
          .map((e) => `${e.tagName}#${e.id}.${e.className}`),
      );
      expect(wide).toEqual([]);
    });
  }
});
