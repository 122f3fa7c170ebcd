/**
 * The study audit trail in a real browser (Chromium, PostgreSQL portal), issue 15 item 2: after an investigator
 * enters a CRF record and corrects it, the monitor's audit page shows the change per field (old -> new) with the
 * field's label and code, who, the reason for change and the seal check; times in UTC in the server's HTML with the
 * viewer's local time added in the browser; the participant and field filters narrow it; it stays usable on a
 * desktop (1366x900) and a phone (390x844: no sideways scrolling). Screenshots in test-results/screenshots.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Browser, Page } from "playwright-core";
import { startPortal, tempDataDir, type Portal } from "../helpers/portal.ts";
import { openTestDatabase, type TestDb } from "../helpers/db.ts";
import { launchChromium, shot, signInAndEnrol } from "../helpers/browser.ts";
import { principalForUser } from "../../app/accounts/auth.server.ts";
import { findUserByEmail } from "../../db/queries/users.ts";
import { enrollParticipant } from "../../app/participants/participants.server.ts";
import { correctRecord, saveRecord } from "../../app/records/records.server.ts";
import { setFormsBeforeConsent } from "../../app/studies/settings.server.ts";

let portal: Portal;
let browser: Browser;
let t: TestDb;
let subject = "";
let password = "";

async function principal(email: string) {
  const u = await findUserByEmail(t.ctx.db, email);
  return (await principalForUser(t.ctx, u!.id))!;
}

beforeAll(async () => {
  t = await openTestDatabase("postgres");
  portal = await startPortal({ DATA_DIR: tempDataDir(), DATABASE_URL: t.url! });
  password = /Demo password \(all demo users\): (\S+)/.exec(portal.output())![1];
  const admin = await principal("admin@demo.trialseal.test");
  const inv = await principal("investigator@demo.trialseal.test");
  // Consent is not under test: the demo study allows VITALS before consent (ADR 0021).
  await setFormsBeforeConsent(t.ctx, admin, "DEMO-001", { formsBeforeConsent: "VITALS" });
  subject = (await enrollParticipant(t.ctx, inv, { study: "DEMO-001", site: "SITE-01" })).subjectCode;
  const r = await saveRecord(t.ctx, inv, "DEMO-001", {
    subject,
    form: "VITALS",
    visit: "SCREENING",
    data: { sbp: 128, dbp: 82, visit_date: "2026-11-02", smoker: "N" },
  });
  await correctRecord(t.ctx, inv, "DEMO-001", r.id, {
    data: { sbp: 138, dbp: 82, visit_date: "2026-11-02", smoker: "Y" },
    reason: "transcription error from the source notes",
  });
  browser = await launchChromium();
});
afterAll(async () => {
  if (process.env.E2E_DEBUG) console.log(portal?.output());
  await browser?.close();
  await portal?.stop();
  await t?.close();
});

async function monitorPage(viewport: { width: number; height: number }, pw: string): Promise<Page> {
  const page = await (await browser.newContext({ viewport, timezoneId: "America/New_York" })).newPage();
  await signInAndEnrol(page, portal.url, "monitor@demo.trialseal.test", pw);
  return page;
}

describe("the audit trail page in the browser (Chromium, PostgreSQL portal)", () => {
  it("shows each field's change with label and code, reason, UTC and local time, desktop and phone", async () => {
    const desktop = await monitorPage({ width: 1366, height: 900 }, password);
    const url = `${portal.url}/studies/DEMO-001/audit?subject=${subject}`;
    // The server's HTML already has the UTC times and the per-field lines (before any script runs).
    const html = await (await desktop.request.get(url)).text();
    expect(html).toMatch(/\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC/);
    expect(html).not.toContain(" local<");
    await desktop.goto(url);
    const correction = desktop.locator('tr[data-action="record.correct"]');
    await expect.poll(() => correction.count()).toBe(2);
    const texts = await correction.allTextContents();
    expect(texts.some((x) => x.includes("Systolic BP (sbp)") && x.includes("128 → 138"))).toBe(true);
    expect(texts.some((x) => x.includes("Smoker (smoker)") && x.includes("No (N) → Yes (Y)"))).toBe(true);
    for (const x of texts) {
      expect(x).toContain("transcription error from the source notes");
      expect(x).toContain("investigator@demo.trialseal.test");
      expect(x).toContain("matches its sealed entry");
    }
    await expect.poll(() => desktop.locator(".local-time").first().textContent()).toMatch(/local/);
    const page = await desktop.locator("main").textContent();
    expect(page).not.toMatch(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/);
    expect(page).not.toContain('{"');
    await shot(desktop, "audit-trail-1366x900");

    await desktop.getByLabel("Field (code)").fill("smoker");
    await desktop.getByRole("button", { name: "Filter" }).click();
    await desktop.waitForURL(/field=smoker/);
    await expect.poll(() => desktop.locator("tbody tr").count()).toBe(2);
    const smoker = await desktop.locator("tbody tr").allTextContents();
    expect(smoker.every((x) => x.includes("Smoker (smoker)"))).toBe(true);

    // The same signed-in monitor on a phone-sized window.
    const phone = desktop;
    await phone.setViewportSize({ width: 390, height: 844 });
    await phone.goto(url);
    await expect.poll(() => phone.locator('tr[data-action="record.correct"]').count()).toBe(2);
    await expect.poll(() => phone.locator(".local-time").first().textContent()).toMatch(/local/);
    const width = await phone.evaluate(() => document.documentElement.scrollWidth);
    expect(width).toBeLessThanOrEqual(390);
    await shot(phone, "audit-trail-390x844");
  });
});
