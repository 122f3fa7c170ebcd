/**
 * Issue 17 "Must show" (ADR 0028): the browser verification page recomputes a record's calculated fields from the
 * sealed form definition its bundle carries. The named vectors (test/vectors/bundles/forms.ts): `valid-calculation`
 * is shown valid with the calculation step passed; `calculation-changed` (a genuine sealed entry whose BMI says
 * 31.2 while its values give 24.7) is shown invalid, naming the step, the code and the field, with what it means;
 * `calculation-changed-form-removed` (the same bundle with its form definition deleted: `form` is outside the signed
 * payload) is shown invalid too (FORM_DEFINITION_MISSING), never valid with the form steps "not checked".
 * The page is the one `trialseal verifier-html` saves (bin/build-verifier.mjs), opened from disk, on a desktop
 * (1366x900) and a phone (390x844). Nothing is uploaded.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Browser } from "playwright-core";
import { launchChromium, shot } from "../helpers/browser.ts";
import { buildVerifierHtml } from "../../bin/build-verifier.mjs";
import { formVectors } from "../vectors/bundles/forms.ts";

let browser: Browser;
const dir = mkdtempSync(path.join(tmpdir(), "ts-verify-calc-"));
const vectors = formVectors();
const page = path.join(dir, "verify.html");
const policy = path.join(dir, "trust-policy.json");
const files = ["valid-calculation", "calculation-changed", "calculation-changed-form-removed"].map((n) =>
  path.join(dir, `${n}.json`),
);

beforeAll(async () => {
  writeFileSync(page, (await buildVerifierHtml()).html);
  writeFileSync(policy, JSON.stringify(vectors["valid-calculation"].policy));
  for (const f of files) writeFileSync(f, JSON.stringify(vectors[path.basename(f, ".json")].bundle));
  browser = await launchChromium();
});
afterAll(async () => {
  await browser?.close();
});

describe("verification page: calculated fields recomputed (Chromium)", () => {
  for (const [device, viewport] of [
    ["desktop", { width: 1366, height: 900 }],
    ["phone", { width: 390, height: 844 }],
  ] as const) {
    it(`shows the changed calculation as failing, naming the field (${device})`, async () => {
      const p = await (await browser.newContext({ viewport })).newPage();
      const requests: string[] = [];
      await p.goto(`file://${page}`);
      p.on("request", (r) => requests.push(r.url()));
      await p.locator("#policy-file").setInputFiles(policy);
      await p.locator("#bundle-files").setInputFiles(files);
      await p.getByRole("button", { name: "Verify" }).click();
      await expect.poll(() => p.locator("section.report").count()).toBe(3);

      const valid = p.locator('section[data-file="valid-calculation.json"]');
      expect(await valid.getAttribute("data-verdict")).toBe("valid");
      expect(await valid.locator('li[data-step="form.calculations"]').getAttribute("class")).toBe("ok");
      expect(await valid.locator('li[data-step="form.calculations"]').textContent()).toMatch(/BMI \(bmi\) = 24\.7/);
      expect(await valid.locator('li[data-step="form.definition"]').getAttribute("class")).toBe("ok");

      const changed = p.locator('section[data-file="calculation-changed.json"]');
      expect(await changed.getAttribute("data-verdict")).toBe("invalid");
      expect(await changed.locator("h2").textContent()).toMatch(/INVALID/);
      expect(await changed.locator(".failed-step").textContent()).toBe(
        "Failed at form.calculations [CALCULATION_MISMATCH]: BMI (bmi): sealed 31.2, recomputed 24.7",
      );
      expect(await changed.locator(".explain").textContent()).toMatch(/calculated value .* is not what its form/);
      expect(await changed.locator('li[data-step="form.calculations"]').getAttribute("class")).toBe("failed");
      // Only the calculation fails: the entry itself is genuinely sealed and signed.
      expect(await changed.locator("li.failed").count()).toBe(1);
      expect(await changed.locator('li[data-step="payload.hash"]').getAttribute("class")).toBe("ok");
      expect(await changed.locator('li[data-step="checkpoint[0].signature"]').getAttribute("class")).toBe("ok");

      // Deleting the definition (outside the signature) does not make the changed calculation pass.
      const removed = p.locator('section[data-file="calculation-changed-form-removed.json"]');
      expect(await removed.getAttribute("data-verdict")).toBe("invalid");
      expect(await removed.locator("h2").textContent()).toMatch(/INVALID/);
      expect(await removed.locator(".failed-step").textContent()).toBe(
        "Failed at form.definition [FORM_DEFINITION_MISSING]: the bundle carries no form definition, but its " +
          "payload seals one (formSha256) for form VITALS version 2: without it the calculations and branching " +
          "cannot be checked",
      );
      expect(await removed.locator(".explain").textContent()).toMatch(/does not include that form's definition/);
      expect(await removed.locator('li[data-step="form.definition"]').getAttribute("class")).toBe("failed");
      expect(await removed.locator('li[data-step^="form."].not_checked').count()).toBe(0);
      expect(requests).toEqual([]); // nothing uploaded, nothing fetched

      await shot(p, `17-verify-calculation-${device}`);
      // Nothing wider than the screen: a regulator on a phone reads every line without scrolling sideways.
      const wide = await p.evaluate(() =>
        [...document.querySelectorAll("body *")]
          .filter((e) => e.getBoundingClientRect().right > window.innerWidth)
          .map((e) => `${e.tagName}#${e.id}.${e.className}`),
      );
      expect(wide).toEqual([]);
    });
  }
});
