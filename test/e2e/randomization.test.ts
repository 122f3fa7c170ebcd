/**
 * The randomization pages (ADR 0052/0053) in Chromium against a PostgreSQL-backed demo portal, on a desktop (1366x900)
 * and a phone (390x844), on a study of its own (the demo's list is already committed; its staff and a consented
 * participant made through the services on the portal's database): the unblinded statistician generates a list from the
 * design form, previews and commits it; the coordinator randomizes a participant from the participant page and sees the
 * number only; the investigator unblinds in an emergency with a reason and a ticked confirmation; no page scrolls
 * sideways on the phone (the committed roots included).
 */
import type { Browser, Page } from "playwright-core";
import { describe, expect, it } from "vitest";
import { openDatabase } from "../../db/client.ts";
import { enrollParticipant } from "../../app/participants/participants.server.ts";
import { contextFor } from "../../app/platform/context.server.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { shot, signInAndEnrol } from "../helpers/browser.ts";
import { giveCompleteConsent } from "../helpers/consent.ts";
import { TEST_DATABASE_URL } from "../helpers/db.ts";
import { demoPortalInBrowser } from "../helpers/demo-browser.ts";
import { testEnv } from "../helpers/env.ts";
import { createStaff, STAFF_PASSWORD } from "../helpers/study-staff.ts";

const DESKTOP = { width: 1366, height: 900 };
const PHONE = { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, locale: "en-US" };
const CODE = "RANDE2E-1";
const DOMAIN = "rande2e.test";
const STAT = `statistician@${DOMAIN}`;
const COORD = `coordinator@${DOMAIN}`;
const INV = `investigator@${DOMAIN}`;

const demo = demoPortalInBrowser();
const scrollWidth = (p: Page) => p.evaluate(() => document.documentElement.scrollWidth);

/** The study, its staff and one consented participant, through the services on the portal's database. */
async function setUpStudy(): Promise<string> {
  const [{ name }] = await demo.sql`SELECT current_database() AS name`;
  const url = new URL(TEST_DATABASE_URL);
  url.pathname = `/${name}`;
  const database = await openDatabase({ url: url.toString(), poolSize: 2 });
  try {
    const ctx = contextFor({ ...testEnv(), databaseUrl: url.toString() }, database);
    await createStudy(
      ctx,
      { code: CODE, title: "Randomization in the browser", sites: [{ code: "SITE-01", name: "S" }] },
      null,
    );
    const staff = await createStaff(ctx, CODE, DOMAIN, [
      ["statistician", "unblinded_statistician"],
      ["coordinator", "coordinator", "SITE-01"],
      ["investigator", "investigator", "SITE-01"],
    ]);
    const { subjectCode } = await enrollParticipant(ctx, staff.principals.investigator, {
      study: CODE,
      site: "SITE-01",
    });
    await giveCompleteConsent(ctx, CODE, subjectCode);
    return subjectCode;
  } finally {
    await database.close();
  }
}

/** A new browser context signed in as one of the study's staff (enrolling the second factor where needed). */
async function staffPage(opts: Parameters<Browser["newContext"]>[0], email: string) {
  const p = await (await demo.browser.newContext(opts)).newPage();
  await signInAndEnrol(p, demo.portal.url, email, STAFF_PASSWORD);
  return p;
}

describe("randomization in the browser (Chromium, PostgreSQL portal)", () => {
  it("commits a list, randomizes blinded, unblinds in an emergency; readable on a phone", async () => {
    const subjectCode = await setUpStudy();
    const page = `${demo.portal.url}/studies/${CODE}/randomization`;
    const subject = `${demo.portal.url}/studies/${CODE}/participants/${subjectCode}`;
    const stat = await staffPage({ viewport: DESKTOP }, STAT);
    await stat.goto(page);
    const factor = stat.getByRole("group", { name: "Stratification factor 1 (optional)" });
    await factor.getByLabel("Name (lower case, e.g. sex)").fill("sex");
    await factor.getByLabel("Label").fill("Sex");
    await factor.getByLabel("Levels, separated by commas").fill("F, M");
    await stat.getByLabel("Slots per stratum").fill("20");
    await stat.getByRole("button", { name: "Generate a list" }).click();
    // The new draft's preview is shown at once (no click), under the message that it was just made.
    await expect.poll(() => stat.locator("[data-preview] tbody tr").count()).toBe(2);
    expect(await stat.getByRole("status").textContent()).toMatch(/generated from a new random seed/);
    await shot(stat, "randomization-preview-desktop");
    // Discard does not look like Commit; committing is final, so it asks for a confirmation first.
    expect(await stat.getByRole("button", { name: "Discard this draft" }).getAttribute("class")).toBe("button-danger");
    await stat.getByRole("button", { name: "Commit this list" }).click();
    await expect.poll(() => stat.getByRole("alert").textContent()).toMatch(/^confirm: tick "I understand/);
    expect(await stat.locator("[data-committed]").getAttribute("data-committed")).toBe("no");
    await stat.getByLabel("I understand that committing is final").check();
    await stat.getByRole("button", { name: "Commit this list" }).click();
    await expect.poll(() => stat.locator("[data-committed]").getAttribute("data-committed")).toBe("yes");
    // The same session on a phone-sized window (a second sign-in would need the second factor).
    const statPhone = stat;
    await statPhone.setViewportSize(PHONE.viewport);
    await statPhone.goto(page);
    await expect.poll(() => statPhone.locator("[data-strata] tbody tr").count()).toBe(2);
    expect(await scrollWidth(statPhone)).toBeLessThanOrEqual(390);
    await shot(statPhone, "randomization-statistician-phone");

    const coord = await staffPage(PHONE, COORD);
    await coord.goto(subject);
    await coord.getByLabel("F", { exact: true }).check();
    await coord.getByRole("button", { name: "Randomize" }).click();
    await expect.poll(() => coord.locator("[data-randomization-number]").textContent()).toBe("R01-0001");
    expect(await coord.locator("[data-arm]").count()).toBe(0);
    expect(await scrollWidth(coord)).toBeLessThanOrEqual(390);
    await shot(coord, "randomization-participant-coordinator-phone");
    await coord.goto(page);
    expect(await coord.locator("[data-strata]").textContent()).not.toMatch(/[0-9a-f]{64}/);
    expect(await scrollWidth(coord)).toBeLessThanOrEqual(390);

    const inv = await staffPage(PHONE, INV);
    await inv.goto(subject);
    await inv.getByText("Emergency unblinding").click();
    await inv.getByLabel("Reason for unblinding").fill("Anaphylaxis; the emergency physician needs the treatment");
    await inv.getByRole("button", { name: "Unblind this participant" }).click();
    // Without the confirmation the portal refuses and says why next to the box; wait for that answer before
    // confirming (a click while the first answer is on its way could race it). Then it goes through.
    await expect
      .poll(() => inv.locator('[role="alert"][data-field="confirm"]').textContent())
      .toBe("confirm: tick the box to confirm the unblinding");
    expect(await inv.locator("[data-arm]").count()).toBe(0);
    await inv.getByLabel("I confirm this participant must be unblinded now").check();
    await inv.getByRole("button", { name: "Unblind this participant" }).click();
    await expect.poll(() => inv.locator("[data-arm]").count()).toBe(1);
    expect(await scrollWidth(inv)).toBeLessThanOrEqual(390);
    await shot(inv, "randomization-emergency-unblinded-phone");
  }, 240_000);
});
