/**
 * Field-level history and one signature per meaning (issue 17), in Chromium against a PostgreSQL-backed portal,
 * on a desktop (1366x900) and a phone (390x844): the coordinator corrects two values of a demo record; on the record
 * page each value opens its own history (with the keyboard too): version, when, who, old -> new with units, the
 * reason for change and the proof state; a calculated value and a missing-data code show in words. The investigator
 * signs a version, and signing it again with the same meaning is refused in plain words. Nothing overflows
 * horizontally on the phone. Screenshots are kept in test-results/screenshots.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import postgres from "postgres";
import type { Browser, Page } from "playwright-core";
import { startPortal, type Portal, demoPasswordOf } from "../helpers/portal.ts";
import { demoClone } from "../helpers/demo-snapshot.ts";
import { launchChromium, shot, signInAndEnrol } from "../helpers/browser.ts";
import { nextStepTotp } from "../helpers/totp.ts";

let portal: Portal;
let browser: Browser;
let pg: { url: string; drop: () => Promise<void> };
let sql: postgres.Sql;
let demoPassword: string;

const DESKTOP = { viewport: { width: 1366, height: 900 } };
const PHONE = { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true };

beforeAll(async () => {
  const clone = await demoClone("postgres"); // the demo seeded once per run (test/helpers/demo-snapshot.ts)
  pg = { url: clone.databaseUrl!, drop: clone.drop };
  portal = await startPortal(clone.env);
  demoPassword = demoPasswordOf(portal);
  sql = postgres(pg.url, { max: 2, onnotice: () => {} });
  browser = await launchChromium();
});
afterAll(async () => {
  if (process.env.E2E_DEBUG) console.log(portal?.output());
  await browser?.close();
  await sql?.end();
  await portal?.stop();
  await pg?.drop();
});

async function signedIn(opts: Parameters<Browser["newContext"]>[0], email: string) {
  const page = await (await browser.newContext(opts)).newPage();
  const secret = await signInAndEnrol(page, portal.url, email, demoPassword);
  return { page, secret };
}

/** The record page of a demo subject's form at screening. */
async function openRecord(page: Page, subject: string, form: string) {
  await page.goto(`${portal.url}/studies/DEMO-001/participants/${subject}`);
  await page.locator(`a[data-record="${form}-SCREENING"]`).click();
  await page.waitForURL(/\/records\//);
  return page.url();
}

const history = (page: Page, field: string) => page.locator(`details[data-history="${field}"]`);
/** Each change of a field's history as its text reads (the words only a screen reader hears left out). */
const changes = async (page: Page, field: string) =>
  (
    await history(page, field)
      .locator("ol.changes > li")
      .evaluateAll((els) =>
        els.map((el) => {
          const c = el.cloneNode(true) as HTMLElement;
          for (const hidden of c.querySelectorAll(".visually-hidden")) hidden.remove();
          return c.textContent ?? "";
        }),
      )
  ).map((t) => t.replace(/\s+/g, " ").trim());

/** No element makes the page wider than the viewport. */
const overflowsHorizontally = (page: Page) =>
  page.evaluate((width) => document.documentElement.scrollWidth > width, page.viewportSize()!.width);

describe("field-level history in the browser (Chromium, PostgreSQL portal)", () => {
  it("each value opens its own history: when, who, old -> new, why, proof; a repeat signature is refused", async () => {
    const { page: coord } = await signedIn(DESKTOP, "coordinator@demo.trialseal.test");
    const recordUrl = await openRecord(coord, "SITE-01-004", "VITALS");

    // A refused correction lists its problems at the top and keeps what was typed.
    await coord.getByLabel(/^Systolic BP/).fill("");
    await coord.getByLabel(/^Weight/).fill("86");
    await coord.getByRole("button", { name: "Save correction" }).click();
    await expect
      .poll(() => coord.locator("#error-summary li").allTextContents())
      .toContainEqual(expect.stringMatching(/reason for (the )?change/i));
    expect(await coord.getByLabel(/^Weight/).inputValue()).toBe("86");
    await coord.getByLabel(/^Reason for change/).fill("transcribed from the wrong line of the source sheet");
    await coord.getByRole("button", { name: "Save correction" }).click();
    await expect
      .poll(() => coord.locator("#error-summary li").allTextContents())
      .toContainEqual(expect.stringMatching(/Systolic BP/));
    expect(await coord.getByLabel(/^Reason for change/).inputValue()).toBe(
      "transcribed from the wrong line of the source sheet",
    );
    await shot(coord, "field-history-00-desktop-correction-refused");
    // A correction of two values, with its reason.
    await coord.getByLabel(/^Systolic BP/).fill("132");
    await coord.getByLabel(/^Weight/).fill("86");
    await coord.getByLabel(/^Reason for change/).fill("transcribed from the wrong line of the source sheet");
    await coord.getByRole("button", { name: "Save correction" }).click();
    await expect.poll(() => coord.locator('tr[data-version="2"]').count()).toBe(1);

    // The history of one value opens from the keyboard (a disclosure: summary inside details).
    const sbp = history(coord, "sbp");
    expect(await sbp.getAttribute("open")).toBeNull();
    await sbp.locator("summary").focus();
    await coord.keyboard.press("Enter");
    await expect.poll(() => sbp.getAttribute("open")).toBe("");
    await expect.poll(() => sbp.locator("summary").textContent()).toContain("2 changes");
    const sbpChanges = await changes(coord, "sbp");
    expect(sbpChanges).toHaveLength(2);
    expect(sbpChanges[0]).toMatch(/v1/);
    expect(sbpChanges[0]).toMatch(/no value → 128 mmHg/);
    expect(sbpChanges[0]).toContain("First entry");
    expect(sbpChanges[1]).toMatch(/v2[\s\S]*UTC[\s\S]*by Cora Coordinator/);
    expect(sbpChanges[1]).toMatch(/128 mmHg → 132 mmHg/);
    expect(sbpChanges[1]).toContain("Reason for change: transcribed from the wrong line of the source sheet");
    expect(sbpChanges[1]).toMatch(/Proof: (pending seal|sealed in batch \d+)/);
    // The calculated BMI follows the weight; a field never entered says so.
    await history(coord, "bmi").locator("summary").click();
    const bmi = await changes(coord, "bmi");
    expect(bmi).toHaveLength(2);
    expect(bmi[1]).toMatch(/26\.5 kg\/m² → 27\.1 kg\/m²/);
    expect(await coord.locator('li[data-value-of="bmi"] .field-value').textContent()).toContain("calculated");
    await history(coord, "notes").locator("summary").click();
    await expect
      .poll(() => history(coord, "notes").textContent())
      .toContain("No value has been entered for this field in any version.");
    // The proof state follows the sealer: every change of systolic BP ends up sealed.
    await expect
      .poll(
        async () => {
          await coord.reload();
          await history(coord, "sbp").locator("summary").click();
          return history(coord, "sbp")
            .locator("[data-seal]")
            .evaluateAll((els) => els.map((e) => e.textContent));
        },
        { timeout: 120_000 },
      )
      .toEqual([expect.stringMatching(/^sealed in batch \d+/), expect.stringMatching(/^sealed in batch \d+/)]);
    await history(coord, "weight").locator("summary").click();
    await shot(coord, "field-history-01-desktop-corrected");

    // A missing-data code (the woman's temperature was not taken) with its reason, on a phone.
    const { page: phone } = await signedIn(PHONE, "coordinator@demo.trialseal.test");
    await openRecord(phone, "SITE-01-003", "VITALS");
    expect(await phone.locator('li[data-value-of="temp"] .field-value').textContent()).toMatch(
      /Not done \(NOT_DONE\)\s*\(Thermometer out of service at the screening visit\)/,
    );
    await history(phone, "temp").locator("summary").click();
    const temp = await changes(phone, "temp");
    expect(temp).toHaveLength(1);
    expect(temp[0]).toMatch(/no value → Not done \(NOT_DONE\)/);
    expect(temp[0]).toContain("Why the value is missing: Thermometer out of service at the screening visit");
    // The correction form starts from what the record holds, its missing-data code and reason included.
    expect(await phone.locator("#m_temp").inputValue()).toBe("NOT_DONE");
    expect(await phone.locator("#mr_temp").inputValue()).toBe("Thermometer out of service at the screening visit");
    expect(await overflowsHorizontally(phone)).toBe(false);
    await shot(phone, "field-history-02-phone-missing-code");
    await phone.goto(recordUrl);
    await history(phone, "sbp").locator("summary").click();
    await history(phone, "bmi").locator("summary").click();
    expect(await changes(phone, "sbp")).toHaveLength(2);
    expect(await overflowsHorizontally(phone)).toBe(false);
    await shot(phone, "field-history-03-phone-corrected");

    // The investigator signs version 2 as approver; the same signature again is refused in plain words.
    const { page: inv, secret } = await signedIn(DESKTOP, "investigator@demo.trialseal.test");
    await inv.goto(recordUrl);
    const signOnce = async () => {
      await inv.getByLabel("Meaning of this signature").selectOption("approved");
      await inv.getByLabel("Your password").fill(demoPassword);
      await inv.getByLabel("Authenticator code").fill(await nextStepTotp(secret!));
      await inv.getByRole("button", { name: "Sign", exact: true }).click();
    };
    await signOnce();
    await expect
      .poll(() => inv.locator('[data-signature="valid"]').textContent())
      .toMatch(/Ian Investigator, .* UTC, meaning: approved \(version 2\)/);
    await signOnce();
    await expect
      .poll(() => inv.locator("[data-sign-refused]").textContent())
      .toBe(
        "You have already signed version 2 as approver; the same signature cannot be given twice. Choose another " +
          "meaning, or sign again once a correction has made a new version.",
      );
    expect(await inv.locator('[data-signature="valid"]').count()).toBe(1);
    await shot(inv, "field-history-04-desktop-second-signature-refused");
    const [{ n }] = await sql`SELECT count(*)::int AS n FROM signatures`;
    expect(n).toBe(1);
  });
});
