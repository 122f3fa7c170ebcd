/**
 * Issue 21 (ADR 0061): the browser verification page checks a kit's chain-of-custody file in the page, with the
 * SHA-256 of the trust policy the file carries pinned. A faithful file is shown valid in words: the kit, every step
 * of its life (registered, shipped, received, the quarantine decision, dispensed to its participant, returned,
 * destruction recorded, witnessed by another person), and its kit type only when the file discloses it and the
 * disclosure matches the sealed commitment. A tampered dispensing, a disclosure naming another kit type and an
 * unpinned policy are shown invalid, naming the failing step and what it means. The page is the one `trialseal
 * verifier-html` saves, opened from disk, on a desktop (1366x900) and a phone (390x844). Nothing is uploaded.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildVerifierHtml } from "../../bin/build-verifier.mjs";
import { launchChromium, shot } from "../helpers/browser.ts";
import { buildCustodyFile, KIT, life, POLICY_SHA256, STUDY } from "../helpers/custody-file.ts";

let browser: Browser;
const dir = mkdtempSync(path.join(tmpdir(), "ts-verify-custody-"));
const page = path.join(dir, "verify.html");
const files: Record<string, string> = {};

beforeAll(async () => {
  writeFileSync(page, (await buildVerifierHtml()).html);
  const write = (name: string, value: unknown) => {
    files[name] = path.join(dir, `${name}.json`);
    writeFileSync(files[name], JSON.stringify(value));
  };
  // A blinded role's file: the kit's own steps, without its lot's entries or a disclosure.
  const kitSteps = () => life().filter((s) => !s.kind.startsWith("supply.lot_"));
  write("blinded", buildCustodyFile(kitSteps(), { disclosure: false }));
  write("unwitnessed", buildCustodyFile(kitSteps().slice(0, -1), { disclosure: false }));
  write("disclosed", buildCustodyFile());
  const tampered = buildCustodyFile(kitSteps(), { disclosure: false });
  (tampered.bundles[4] as { payload: { subject: string } }).payload.subject = "S1-009"; // the dispensing, seq 4
  write("tampered", tampered);
  const otherType = buildCustodyFile();
  otherType.disclosure!.kitType = "KIT-B";
  write("other-type", otherType);
  browser = await launchChromium();
});
afterAll(async () => {
  await browser?.close();
});

describe("verification page: a kit's chain of custody (Chromium)", () => {
  for (const [device, viewport] of [
    ["desktop", { width: 1366, height: 900 }],
    ["phone", { width: 390, height: 844 }],
  ] as const) {
    it(`shows every step of a kit's life proven, and names a tampered step (${device})`, async () => {
      const p = await (await browser.newContext({ viewport })).newPage();
      const requests: string[] = [];
      await p.goto(`file://${page}`);
      p.on("request", (r) => requests.push(r.url()));
      const check = async (name: string, pin = POLICY_SHA256) => {
        await p.locator("#policy-pin").fill(pin);
        await p.getByLabel("Kit chain of custody (custody JSON)").setInputFiles(files[name]);
        await p.getByRole("button", { name: "Verify" }).click();
        const report = p.locator(`section.report[data-kind="custody"][data-file="${name}.json"]`);
        await expect.poll(() => report.count()).toBe(1);
        return report;
      };

      // A blinded file: valid, every step in words, no kit type anywhere on the page.
      const blinded = await check("blinded");
      expect(await blinded.getAttribute("data-verdict")).toBe("valid");
      expect(await blinded.locator(".summary").textContent()).toBe(
        `Kit ${KIT} of study ${STUDY}: every step of its life in this file is proven by the study's sealed log, in ` +
          "an order a kit can live: registered, shipped, received, quarantine decision (released for use), " +
          "dispensed to S1-001, returned, destruction recorded, witnessed by another person " +
          "(8 sealed entries checked).",
      );
      expect(await blinded.locator(".life li.ok").count()).toBe(8);
      expect(await blinded.locator('.life li[data-step="supply.kit_dispensed"]').textContent()).toMatch(
        /^✔ Dispensed to participant S1-001 at site S1 \(seq 4, 2026-03-01T09:00:00\.004Z\)$/,
      );
      expect(await blinded.locator('.life li[data-step="supply.shipment_received"]').textContent()).toMatch(
        /Received at the site, 4\.0 °C to 15\.0 °C in transit: a temperature excursion, so quarantined/,
      );
      expect(await blinded.locator(".disclosure").getAttribute("data-disclosure")).toBe("none");
      expect(await p.locator("body").textContent()).not.toMatch(/KIT-A|L-100/);
      await shot(p, `verify-custody-valid-${device}`);

      // Disclosed: the kit type, matching its sealed commitment (and the lot's).
      const disclosed = await check("disclosed");
      expect(await disclosed.getAttribute("data-verdict")).toBe("valid");
      expect(await disclosed.locator(".disclosure").textContent()).toBe(
        "Kit type KIT-A, disclosed and matching its sealed commitment (its lot's commitment too).",
      );

      // A destruction not witnessed yet: still valid, with the warning in words.
      const unwitnessed = await check("unwitnessed");
      expect(await unwitnessed.getAttribute("data-verdict")).toBe("valid");
      expect(await unwitnessed.locator('.warnings li[data-warning="NOT_WITNESSED"]').textContent()).toMatch(
        /^Warning: The kit's destruction is recorded, but the file holds no witness/,
      );
      expect(await unwitnessed.locator('.life li[data-step="supply.destruction_recorded"]').textContent()).toMatch(
        /^✔ Destruction recorded at site S1 \(not witnessed yet\)/,
      );

      // A dispensing changed after it was sealed: the failing step named, what it means in words.
      const tampered = await check("tampered");
      expect(await tampered.getAttribute("data-verdict")).toBe("invalid");
      expect(await tampered.locator(".summary").textContent()).toMatch(
        new RegExp(`^Kit ${KIT} of study ${STUDY}: its chain of custody is NOT proven: 2 problems\\.$`),
      );
      expect(await tampered.locator('.problems li[data-code="BUNDLE_INVALID"]').textContent()).toMatch(
        /^The dispensing \(seq 4\): A sealed entry of the kit's life does not prove itself .* changed after it was se/,
      );
      expect(await tampered.locator('.problems li[data-code="STEP_MISSING"]').textContent()).toMatch(
        /^The return \(seq 5\): A step that the kit's life needs is not proven in the file/,
      );
      expect(await tampered.locator('.life li[data-step="supply.kit_dispensed"]').textContent()).toBe(
        "✘ The dispensing (seq 4): not proven [BUNDLE_INVALID]",
      );
      expect(await tampered.textContent()).not.toMatch(/S1-009/); // the forged value is never shown as proven
      await shot(p, `verify-custody-tampered-${device}`);

      // A disclosure naming another kit type: refused, and neither type shown.
      const otherType = await check("other-type");
      expect(await otherType.getAttribute("data-verdict")).toBe("invalid");
      const mismatch = otherType.locator('.problems li[data-code="DISCLOSURE_MISMATCH"]', {
        hasText: "The kit's registration (seq 2)",
      });
      expect(await mismatch.textContent()).toMatch(
        /^The kit's registration \(seq 2\): The kit type and lot disclosed in the file do not match what was sealed/,
      );
      expect(await otherType.textContent()).not.toMatch(/KIT-A|KIT-B/);

      const unpinned = await check("blinded", "0".repeat(64));
      expect(await unpinned.getAttribute("data-verdict")).toBe("invalid");
      expect(await unpinned.locator('.problems li[data-code="POLICY_NOT_PINNED"]').textContent()).toMatch(
        /^The trust policy in the file is not the one whose fingerprint \(SHA-256\) you gave/,
      );
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
