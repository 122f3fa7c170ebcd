/**
 * Verification in the browser: /verify (no account) checks bundles and a trust policy inside the page; a bundle
 * with one byte changed is refused naming the step; the saved `trialseal verifier-html` page opened from disk
 * gives the same results. Nothing is uploaded: the page makes no request when verifying local files.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Browser, Page } from "playwright-core";
import { cliAsync, startPortal, type Portal } from "../helpers/portal.ts";
import { demoClone } from "../helpers/demo-snapshot.ts";
import { launchChromium, shot } from "../helpers/browser.ts";
import { waitFor } from "../helpers/wait.ts";

let portal: Portal;
let browser: Browser;
let env: Record<string, string>;
const dir = mkdtempSync(path.join(tmpdir(), "ts-verify-"));

beforeAll(async () => {
  env = { DATA_DIR: (await demoClone("pglite")).dataDir, LOCAL_ANCHOR_INTERVAL_MS: "300" };
  portal = await startPortal(env);
  browser = await launchChromium();
});
afterAll(async () => {
  await browser?.close();
  await portal?.stop();
});

async function verifyIn(page: Page, files: string[], policy: string) {
  await page.locator("#policy-file").setInputFiles(policy);
  await page.locator("#bundle-files").setInputFiles(files);
  await page.getByRole("button", { name: "Verify" }).click();
  await expect.poll(() => page.locator("section.report").count()).toBe(files.length);
}

describe("verification page (Chromium)", () => {
  it(
    "verifies real bundles in the page, names the failed step of a tampered one, " + "and works the same saved to disk",
    async () => {
      const token = (
        await cliAsync(["tokens", "create", "--study", "DEMO-001", "--name", "verify"], env)
      ).stdout.trim();
      const bundle: any = await waitFor(
        async () => {
          const res = await fetch(`${portal.url}/api/v1/entries/0/proof`, {
            headers: { authorization: `Bearer ${token}` },
          });
          if (res.status !== 200) return null;
          const b = await res.json();
          return b.checkpoints.some((c: any) => c.anchors.length > 0) ? b : null;
        },
        { what: "entry 0 sealed and anchored" },
      );
      expect(bundle.checkpoints.some((c: any) => c.anchors.length > 0)).toBe(true);
      const policyFile = path.join(dir, "policy.json");
      writeFileSync(policyFile, await (await fetch(`${portal.url}/.well-known/trialseal.json`)).text());
      const good = path.join(dir, "good.json");
      writeFileSync(good, JSON.stringify(bundle));
      const tampered = structuredClone(bundle);
      tampered.payload.salt = (tampered.payload.salt[0] === "A" ? "B" : "A") + tampered.payload.salt.slice(1);
      const bad = path.join(dir, "tampered.json");
      writeFileSync(bad, JSON.stringify(tampered));

      const page = await (await browser.newContext()).newPage();
      const requests: string[] = [];
      await page.goto(`${portal.url}/verify`);
      page.on("request", (r) => requests.push(r.url()));
      await verifyIn(page, [good, bad], policyFile);
      await expect
        .poll(() => page.locator('section[data-file="good.json"]').getAttribute("data-verdict"))
        .toBe("valid");
      expect(
        await page.locator('section[data-file="good.json"] li[data-step*="anchor[local]"]').getAttribute("class"),
      ).toBe("ok");
      expect(await page.locator('section[data-file="good.json"] .time').textContent()).toMatch(
        /Proven to exist by \d{4}-/,
      );
      expect(await page.locator('section[data-file="tampered.json"]').getAttribute("data-verdict")).toBe("invalid");
      expect(await page.locator('section[data-file="tampered.json"] .failed-step').textContent()).toMatch(
        /payload\.hash \[PAYLOAD_HASH_MISMATCH\]/,
      );
      // Its anchors still hold, but an invalid bundle proves nothing: no "Proven to exist by" line.
      expect(await page.locator('section[data-file="tampered.json"] .time').count()).toBe(0);
      expect(await page.locator('section[data-file="tampered.json"]').textContent()).not.toMatch(/exist(ed)? by/i);
      expect(requests).toEqual([]); // nothing uploaded, nothing fetched
      await shot(page, "09-verify-page");

      // The pinned-policy path: the page fetches this site's policy and accepts it only with the right SHA-256.
      const { createHash } = await import("node:crypto");
      const pin = createHash("sha256")
        .update(await (await fetch(`${portal.url}/.well-known/trialseal.json`)).text())
        .digest("hex");
      const pinned = await (await browser.newContext()).newPage();
      await pinned.goto(`${portal.url}/verify`);
      await pinned.locator("#policy-pin").fill("0".repeat(64));
      await pinned.locator("#bundle-files").setInputFiles([good]);
      await pinned.getByRole("button", { name: "Verify" }).click();
      await expect.poll(() => pinned.locator("#status").textContent()).toMatch(/not the pinned/);
      await pinned.locator("#policy-pin").fill(pin);
      await pinned.getByRole("button", { name: "Verify" }).click();
      await expect
        .poll(() => pinned.locator('section[data-file="good.json"]').getAttribute("data-verdict"))
        .toBe("valid");

      // The saved page, opened from disk: same results.
      const html = await cliAsync(["verifier-html"], env);
      expect(html.code).toBe(0);
      expect(html.stderr).toMatch(/^sha256 [0-9a-f]{64}\n$/);
      const saved = path.join(dir, "verify.html");
      writeFileSync(saved, html.stdout);
      const offline = await (await browser.newContext()).newPage();
      await offline.goto(`file://${saved}`);
      await verifyIn(offline, [good, bad], policyFile);
      expect(await offline.locator('section[data-file="good.json"]').getAttribute("data-verdict")).toBe("valid");
      expect(await offline.locator('section[data-file="tampered.json"] .failed-step').textContent()).toMatch(
        /PAYLOAD_HASH_MISMATCH/,
      );
    },
  );
});
