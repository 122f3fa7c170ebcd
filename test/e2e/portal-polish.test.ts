/**
 * Small things that make the portal feel finished (issue 18), in Chromium on a desktop (1366x900) and a phone
 * (390x844): the TOTP set-up page shows a QR code of the otpauth:// URI beside the key; the delegation log picks staff
 * from a list, empties its form after a grant, and revoking asks for a confirmation; enrolling a participant empties
 * the form; "Lock the whole study" is a red danger action below the table, refused without its confirmation; the
 * missing-data report and the CRF/dictionary downloads are on their pages, and no page scrolls sideways on a phone.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Browser, Page } from "playwright-core";
import { startPortal, type Portal, demoPasswordOf } from "../helpers/portal.ts";
import { demoClone } from "../helpers/demo-snapshot.ts";
import { launchChromium, shot, totp } from "../helpers/browser.ts";

let portal: Portal;
let browser: Browser;
let password: string;

const DESKTOP = { viewport: { width: 1366, height: 900 } };
const PHONE = { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, locale: "en-US" };
const S = "/studies/DEMO-001";

beforeAll(async () => {
  portal = await startPortal({ DATA_DIR: (await demoClone("pglite")).dataDir });
  password = demoPasswordOf(portal);
  browser = await launchChromium();
}, 240_000);
afterAll(async () => {
  if (process.env.E2E_DEBUG) console.log(portal?.output());
  await browser?.close();
  await portal?.stop();
});

/** Sign in; the TOTP set-up page (required or not) is checked for its QR code, kept as a screenshot, then used. */
async function signIn(opts: Parameters<Browser["newContext"]>[0], email: string, name: string): Promise<Page> {
  const p = await (await browser.newContext(opts)).newPage();
  await p.goto(`${portal.url}/login`);
  await p.getByLabel("Email").fill(email);
  await p.getByLabel("Password").fill(password);
  await p.getByRole("button", { name: "Sign in" }).click();
  await p.waitForURL(/\/account\/totp|\/studies/);
  if (!p.url().includes("/account/totp")) await p.goto(`${portal.url}/account/totp`);
  const qr = p.getByTestId("totp-qr");
  await expect.poll(() => qr.isVisible()).toBe(true);
  const secret = (await p.getByTestId("totp-secret").textContent())!.trim();
  expect(await qr.getAttribute("src")).toMatch(/^data:image\/png;base64,/);
  expect(await qr.getAttribute("alt")).toContain(secret);
  // A real image, decoded by the browser: the QR code.
  expect(await qr.evaluate((img: HTMLImageElement) => img.naturalWidth)).toBeGreaterThan(50);
  await shot(p, `polish-totp-${name}`);
  await p.getByLabel("Code").fill(await totp(secret));
  await p.getByRole("button", { name: "Turn on" }).click();
  await p.waitForURL(/\/studies|\/account$/);
  return p;
}

const noSideScroll = (p: Page) => p.evaluate(() => document.documentElement.scrollWidth);

describe("portal polish", () => {
  it("delegation: staff from a list, the form empties after a grant, revoking is confirmed", async () => {
    const inv = await signIn(DESKTOP, "investigator@demo.trialseal.test", "desktop");
    await inv.goto(`${portal.url}${S}/delegation`);
    const options = await inv.locator("#delegate option").allTextContents();
    expect(options.some((o) => o.startsWith("Cora Coordinator (coordinator"))).toBe(true);
    expect(options.some((o) => o.includes("Ian Investigator"))).toBe(false); // not to oneself
    await inv.locator("#delegate").selectOption({ label: options.find((o) => o.startsWith("Cora"))! });
    await inv.locator("#task").selectOption({ index: 0 });
    await inv.locator("#startsOn").fill("2026-01-05");
    await inv.locator("#course").fill("GCP refresher");
    await inv.locator("#completedOn").fill("2025-12-01");
    await inv.locator("#evidence").setInputFiles({
      name: "gcp.pdf",
      mimeType: "application/pdf",
      buffer: Buffer.from("%PDF-1.4 certificate"),
    });
    await inv.getByRole("button", { name: "Delegate" }).click();
    await expect.poll(() => inv.getByRole("status").textContent()).toContain("Saved");
    // The form is empty again: the next grant starts afresh.
    expect(await inv.locator("#course").inputValue()).toBe("");
    expect(await inv.locator("#delegate").inputValue()).toBe("");
    const row = inv.locator("tr[data-delegation]").last();
    const revoke = row.getByRole("button", { name: "Revoke" });
    expect(await revoke.getAttribute("class")).toContain("button-danger");
    await shot(inv, "polish-delegation-desktop");
    // Without the confirmation the browser does not send it (a required checkbox, no JavaScript needed) ...
    await revoke.click();
    expect(await row.locator(".badge").textContent()).not.toBe("revoked");
    // ... and the server refuses it too.
    const id = await row.getAttribute("data-delegation");
    const refused = await inv.evaluate(async (rid) => {
      const body = new URLSearchParams({ intent: "revoke", id: rid!, reason: "left the site" });
      const r = await fetch(`${location.pathname}?_data=routes%2Fstudies%2Fstudies.%24code.delegation`, {
        method: "POST",
        body,
      });
      return { status: r.status, body: await r.text() };
    }, id);
    expect(refused.status).toBe(422);
    expect(refused.body).toContain("I understand");
    await row.getByLabel("Reason").fill("left the site");
    await row.getByRole("checkbox").check();
    await revoke.click();
    await expect.poll(() => inv.locator(`tr[data-delegation="${id}"] .badge`).textContent()).toBe("revoked");
  });

  it("participants: enrolling empties the form; locking the study is a confirmed danger action", async () => {
    const coord = await signIn(PHONE, "coordinator@demo.trialseal.test", "phone");
    await coord.goto(`${portal.url}${S}/participants`);
    await coord.locator("#fullName").fill("Polly Polish");
    await coord.getByRole("button", { name: "Enroll a participant" }).click();
    await expect.poll(() => coord.getByRole("status").textContent()).toMatch(/^Enrolled /);
    expect(await coord.locator("#fullName").inputValue()).toBe("");
    expect(await noSideScroll(coord)).toBeLessThanOrEqual(390);
    await shot(coord, "polish-participants-phone");
    await coord.goto(`${portal.url}${S}/missing-data`);
    await expect.poll(() => coord.locator("h1").textContent()).toBe("Missing data");
    expect(await noSideScroll(coord)).toBeLessThanOrEqual(390);
    await shot(coord, "polish-missing-data-phone");

    const dm = await signIn(DESKTOP, "datamanager@demo.trialseal.test", "desktop-dm");
    await dm.goto(`${portal.url}${S}/participants`);
    const lock = dm.getByRole("button", { name: "Lock the whole study" });
    // Below the participants table, folded away in a danger zone, red and outlined.
    expect(await lock.isVisible()).toBe(false);
    const below = await dm.evaluate(() => {
      const table = document.querySelector("main table")!;
      const zone = document.querySelector("main .danger-zone")!;
      return Boolean(table.compareDocumentPosition(zone) & Node.DOCUMENT_POSITION_FOLLOWING);
    });
    expect(below).toBe(true);
    await dm.locator("details.danger-zone summary").click();
    const colour = await lock.evaluate((b) => getComputedStyle(b).color);
    expect(colour).toBe("rgb(207, 34, 46)");
    await dm.locator("#study-lock-reason").fill("database lock for the interim analysis");
    await lock.click();
    await expect.poll(() => dm.getByRole("alert").first().textContent()).toContain("I understand");
    expect(await dm.locator("[data-lock=study]").count()).toBe(0);
    await shot(dm, "polish-lock-refused-desktop");
    await dm.locator('input[name="confirm"]').check();
    await dm.getByRole("button", { name: "Lock the whole study" }).click();
    await expect.poll(() => dm.locator("[data-lock=study]").count()).toBe(1);

    // The exports page (review) offers the dictionary, the CRFs and the missing-data report.
    await dm.goto(`${portal.url}${S}/review`);
    for (const x of ["dictionary", "crf-blank", "crf-annotated"])
      expect(await dm.locator(`[data-export="${x}"]`).count()).toBe(1);
    const pdf = await dm.evaluate(async (u) => {
      const r = await fetch(u);
      return {
        type: r.headers.get("content-type"),
        head: new TextDecoder().decode((await r.arrayBuffer()).slice(0, 5)),
      };
    }, `${S}/exports/crf/annotated`);
    expect(pdf).toEqual({ type: "application/pdf", head: "%PDF-" });
    await dm.goto(`${portal.url}${S}/missing-data`);
    await shot(dm, "polish-missing-data-desktop");
  });
});
