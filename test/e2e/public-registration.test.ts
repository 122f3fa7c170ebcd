/**
 * The SAP's outcome list and the public registration page (issue 20, ADRs 0049 and 0050) in Chromium against a
 * PostgreSQL-backed demo portal, on a desktop (1366x900) and a phone (390x844). The demo's own page is published
 * (its outcome list sealed before the first enrolment, so not flagged). On a study of its own with a participant
 * enrolled and nothing registered, the admin enters the outcome list (a reason is required and the version is
 * flagged), publishes the page; signed out, a visitor opens it, picks the registered protocol PDF and learns it is a
 * registered version, picks another PDF and learns it is not; the browser sends nothing while it checks.
 * Unpublished, the page is not found.
 */
import { randomBytes } from "node:crypto";
import type { Page, Request } from "playwright-core";
import { describe, expect, it } from "vitest";
import { openDatabase } from "../../db/client.ts";
import { contextFor } from "../../app/platform/context.server.ts";
import { enrollParticipant } from "../../app/participants/participants.server.ts";
import { DEMO_OUTCOMES } from "../../app/registration/demo.server.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { shot } from "../helpers/browser.ts";
import { TEST_DATABASE_URL } from "../helpers/db.ts";
import { demoPortalInBrowser } from "../helpers/demo-browser.ts";
import { testEnv } from "../helpers/env.ts";
import { insertStudyDocument, tinyPdf } from "../helpers/study-document-rows.ts";
import { createStaff } from "../helpers/study-staff.ts";

const DESKTOP = { width: 1366, height: 900 };
const PHONE = { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, locale: "en-US" };
const ADMIN = "admin@demo.trialseal.test";
/** A study of this test's own: the demo's page is already published with its outcome list. */
const CODE = "PUBREG-1";
const PROTOCOL = tinyPdf(`e2e protocol ${randomBytes(8).toString("hex")}`);
const OTHER = tinyPdf(`some other pdf ${randomBytes(8).toString("hex")}`);

const demo = demoPortalInBrowser();
/** The admin's signed-in page (a second sign-in would need the second factor enrolled by the first). */
let adminPage: Page;
const scrollWidth = (p: Page) => p.evaluate(() => document.documentElement.scrollWidth);

/** Open the public page signed out (a fresh browser context), wait for the drop zone to be live. */
async function visitor(opts: Parameters<typeof demo.browser.newContext>[0]) {
  const p = await (await demo.browser.newContext(opts)).newPage();
  const res = await p.goto(`${demo.portal.url}/registry/${CODE}`);
  expect(res?.status()).toBe(200);
  await expect.poll(() => p.locator("[data-pdf-check]").getAttribute("data-pdf-check")).toBe("ready");
  return p;
}

/** Pick a file in the drop zone and return the verdict's text, checking no request leaves the page meanwhile. */
async function check(p: Page, name: string, bytes: Uint8Array) {
  const sent: Request[] = [];
  const onRequest = (r: Request) => sent.push(r);
  p.on("request", onRequest);
  await p.locator("#pdf-check-file").setInputFiles({ name, mimeType: "application/pdf", buffer: Buffer.from(bytes) });
  const result = p.locator("[data-check-result]");
  await expect.poll(async () => (await result.count()) > 0 && (await result.textContent())?.includes(name)).toBe(true);
  p.off("request", onRequest);
  expect(sent.map((r) => `${r.method()} ${r.url()}`)).toEqual([]);
  return { kind: await result.getAttribute("data-check-result"), text: (await result.textContent()) ?? "" };
}

describe("outcomes and the public registration page in the browser (Chromium, PostgreSQL portal)", () => {
  it("the demo's page is public: its documents and its outcome list, sealed before the first enrolment", async () => {
    const p = await (await demo.browser.newContext({ viewport: DESKTOP })).newPage();
    expect((await p.goto(`${demo.portal.url}/registry/DEMO-001`))?.status()).toBe(200);
    await expect.poll(() => p.locator("[data-pdf-check]").getAttribute("data-pdf-check")).toBe("ready");
    expect(await p.locator("[data-outcome-version]").count()).toBe(1);
    expect(await p.locator("[data-after-first-enrolment]").count()).toBe(0);
    const text = (await p.locator("main").textContent()) ?? "";
    for (const o of DEMO_OUTCOMES) expect(text).toContain(o.name);
    const res = await p.goto(`${demo.portal.url}/registry/DEMO-001.json`);
    expect(res?.status()).toBe(200);
    const json = JSON.parse(await res!.text());
    expect(JSON.stringify(json)).not.toContain("@demo.trialseal.test");
    expect(json.documents.map((d: { type: string; version: string }) => `${d.type} ${d.version}`).sort()).toEqual([
      "protocol 1.0",
      "sap 1.0",
    ]);
  });

  it("the admin sets the outcome list (a reason is needed after enrolment) and publishes the page", async () => {
    // A study with a participant enrolled and nothing registered; its protocol and SAP, registered through the
    // documents service on the portal's database.
    const [{ name }] = await demo.sql`SELECT current_database() AS name`;
    const url = new URL(TEST_DATABASE_URL);
    url.pathname = `/${name}`;
    const database = await openDatabase({ url: url.toString(), poolSize: 2 });
    try {
      const ctx = contextFor({ ...testEnv(), databaseUrl: url.toString() }, database);
      const [admin] = await demo.sql`SELECT id FROM users WHERE email = ${ADMIN}`;
      await createStudy(
        ctx,
        { code: CODE, title: "Registered in the browser", sites: [{ code: "S1", name: "S1" }] },
        null,
      );
      const staff = await createStaff(ctx, CODE, "pubreg.test", [["inv", "investigator", "S1"]]);
      await enrollParticipant(ctx, staff.principals.inv, { study: CODE, site: "S1" });
      await insertStudyDocument(ctx, CODE, String(admin.id), {
        type: "protocol",
        version: "1.0",
        content: PROTOCOL,
      });
      await insertStudyDocument(ctx, CODE, String(admin.id), {
        type: "sap",
        version: "1.0",
        content: tinyPdf("s"),
      });
    } finally {
      await database.close();
    }
    // Not published yet: not found, signed in or not.
    const anon = await (await demo.browser.newContext({ viewport: DESKTOP })).newPage();
    expect((await anon.goto(`${demo.portal.url}/registry/${CODE}`))?.status()).toBe(404);
    expect((await anon.goto(`${demo.portal.url}/registry/${CODE}.json`))?.status()).toBe(404);

    const p = await demo.page({ viewport: DESKTOP }, ADMIN);
    adminPage = p;
    await p.goto(`${demo.portal.url}/studies/${CODE}/outcomes`);
    await p.locator("#o-0-type").selectOption("primary");
    await p.locator("#o-0-name").fill("Change in systolic blood pressure");
    await p.locator("#o-0-measure").fill("Seated systolic blood pressure (mmHg), mean of three readings");
    await p.locator("#o-0-timePoint").fill("Week 12");
    await p.locator("#o-0-analysis").fill("ANCOVA adjusted for baseline and site");
    await p.getByRole("button", { name: "Add another outcome" }).click();
    await expect.poll(() => p.locator("#o-1-name").count()).toBe(1);
    await p.locator("#o-1-name").fill("Heart rate");
    await p.locator("#o-1-measure").fill("Resting heart rate (bpm)");
    await p.locator("#o-1-timePoint").fill("Week 12");
    await p.locator("#o-1-analysis").fill("Mixed model for repeated measures");
    // Without a reason: refused (the demo already has participants), the reason field named and marked.
    await p.locator("#reason").evaluate((el) => el.removeAttribute("required"));
    await p.getByRole("button", { name: "Save and seal the list" }).click();
    await expect
      .poll(() => p.getByRole("alert").first().textContent())
      .toBe("reason: a participant is already enrolled, so a change to the outcome list needs a reason");
    expect(await p.locator("#reason").getAttribute("aria-invalid")).toBe("true");
    expect(await p.locator("#o-1-name").inputValue()).toBe("Heart rate");
    await p.locator("#reason").fill("Outcome list entered from SAP 1.0 after the first participants were enrolled");
    await p.getByRole("button", { name: "Save and seal the list" }).click();
    await expect.poll(() => p.getByRole("status").first().textContent()).toContain("Outcome list version 1 saved");
    await expect.poll(() => p.locator("[data-outcome-version='1'] .badge.flag").count()).toBe(1);
    await shot(p, "outcomes-desktop");

    await p.goto(`${demo.portal.url}/studies/${CODE}/registration`);
    await p.getByRole("button", { name: "Publish the public page" }).click();
    await expect.poll(() => p.locator("[data-registration]").getAttribute("data-registration")).toBe("published");
    expect(await p.getByRole("link", { name: `/registry/${CODE}`, exact: true }).count()).toBe(1);
    await shot(p, "registration-switch-desktop");
  });

  it("signed out, a registered PDF is recognised in the browser and another is not (desktop)", async () => {
    const p = await visitor({ viewport: DESKTOP });
    expect(await p.locator("header.top").textContent()).not.toContain("Ada Admin");
    await expect.poll(() => p.locator("[data-after-first-enrolment]").count()).toBe(1);
    const ok = await check(p, "protocol-v1.pdf", PROTOCOL);
    expect(ok.kind).toBe("registered");
    expect(ok.text).toMatch(/This is a registered version: version 1\.0 of the protocol, (committed|recorded) on /);
    await shot(p, "public-registration-registered-desktop");
    const no = await check(p, "draft.pdf", OTHER);
    expect(no.kind).toBe("not-registered");
    expect(no.text).toContain("This file is not a registered version of any document of this study.");
    await shot(p, "public-registration-not-registered-desktop");
    // The JSON twin, signed out.
    const res = await p.goto(`${demo.portal.url}/registry/${CODE}.json`);
    expect(res?.status()).toBe(200);
    const body = await res!.text();
    expect(body).not.toContain("@demo.trialseal.test");
    expect(body).not.toContain("@pubreg.test");
    expect(body).not.toContain("S1-001");
  });

  it("on a phone: the same checks, and the page never scrolls sideways", async () => {
    const p = await visitor(PHONE);
    expect(await scrollWidth(p)).toBeLessThanOrEqual(390);
    expect((await check(p, "protocol.pdf", PROTOCOL)).kind).toBe("registered");
    expect(await scrollWidth(p)).toBeLessThanOrEqual(390);
    await shot(p, "public-registration-registered-phone");
    expect((await check(p, "other.pdf", OTHER)).kind).toBe("not-registered");
    await shot(p, "public-registration-not-registered-phone");
    const admin = adminPage;
    await admin.setViewportSize(PHONE.viewport);
    await admin.goto(`${demo.portal.url}/studies/${CODE}/outcomes`);
    expect(await scrollWidth(admin)).toBeLessThanOrEqual(390);
    await shot(admin, "outcomes-phone");
  });
});
