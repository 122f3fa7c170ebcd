/**
 * The study documents page (ADR 0048) in Chromium against a PostgreSQL-backed demo portal, on a desktop (1366x900) and
 * a phone (390x844): the demo's protocol 1.0 is listed with its SHA-256 and site approval; the admin amends it, first
 * without a reason (refused, the Reason field named and marked) then with one; the investigator records the site's
 * approval of the amendment; a record page entered before that approval was recorded still shows "Protocol in force
 * at SITE-01: version 1.0" (approvals count from when they are recorded, ADR 0048); the PDF downloads as an
 * attachment with its sealed SHA-256. On the phone (the monitor) neither page scrolls sideways.
 */
import { createHash } from "node:crypto";
import type { Page } from "playwright-core";
import { describe, expect, it } from "vitest";
import { demoPdf } from "../../app/study-documents/demo.server.ts";
import { shot } from "../helpers/browser.ts";
import { demoPortalInBrowser } from "../helpers/demo-browser.ts";

const DESKTOP = { width: 1366, height: 900 };
const PHONE = { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, locale: "en-US" };
const ADMIN = "admin@demo.trialseal.test";
const INVESTIGATOR = "investigator@demo.trialseal.test";
const MONITOR = "monitor@demo.trialseal.test";
const REASON = "Added a week 24 visit for the safety follow-up";

const demo = demoPortalInBrowser();
const scrollWidth = (p: Page) => p.evaluate(() => document.documentElement.scrollWidth);
/** A date `days` before today (UTC), YYYY-MM-DD: never in the future at any site. */
const daysAgo = (days: number) => new Date(Date.now() - days * 86_400_000).toISOString().slice(0, 10);

async function register(
  p: Page,
  f: { version: string; approvedOn: string; body: string; replaces?: string; reason?: string; pdf: Uint8Array },
) {
  const form = p.locator("[data-register-form]");
  await form.getByLabel("Type").selectOption("protocol");
  await form.getByLabel(/^Version/).fill(f.version);
  await form.getByLabel("Approval date").fill(f.approvedOn);
  await form.getByLabel(/^Approving body/).fill(f.body);
  if (f.replaces) await form.getByLabel(/^Replaces/).selectOption({ label: `Protocol version ${f.replaces}` });
  await form.getByLabel(/^Reason/).fill(f.reason ?? "");
  await form
    .getByLabel("PDF file")
    .setInputFiles({ name: `protocol-${f.version}.pdf`, mimeType: "application/pdf", buffer: Buffer.from(f.pdf) });
  await form.getByRole("button", { name: "Register and seal" }).click();
}

describe("study documents page in the browser (Chromium, PostgreSQL portal)", () => {
  it("registers and amends the protocol, records a site approval, shows the protocol on a record", async () => {
    const admin = await demo.page({ viewport: DESKTOP }, ADMIN);
    const url = `${demo.portal.url}/studies/DEMO-001/documents`;
    await admin.goto(url);
    await expect.poll(() => admin.locator("h1").textContent()).toBe("Protocol and plans");
    // The demo seeds the protocol 1.0, approved at SITE-01: its card shows the sealed SHA-256.
    const seeded = await demo.sql`SELECT d.version, encode(d.sha256, 'hex') AS sha FROM study_documents d
      JOIN studies s ON s.id = d.study_id WHERE s.code = 'DEMO-001' AND d.type = 'protocol'`;
    expect(seeded.map((d) => d.version)).toEqual(["1.0"]);
    const v1 = admin.locator('[data-document-type="protocol"] [data-version="1.0"]');
    await expect.poll(() => v1.locator("[data-sha256]").textContent()).toBe(seeded[0].sha);
    expect(await v1.locator('[data-site-approval="SITE-01"]').count()).toBe(1);
    // An amendment without a reason: refused in words naming the field; the field marked.
    const v2 = await demoPdf("Protocol 2.0", ["e2e amendment"]);
    await register(admin, {
      version: "2.0",
      approvedOn: daysAgo(3),
      body: "Demo Central EC",
      replaces: "1.0",
      pdf: v2,
    });
    await expect
      .poll(() => admin.getByRole("alert").textContent())
      .toBe("Reason: give the reason for amending version 1.0");
    expect(await admin.locator("#doc-reason").getAttribute("aria-invalid")).toBe("true");
    await register(admin, {
      version: "2.0",
      approvedOn: daysAgo(3),
      body: "Demo Central EC",
      replaces: "1.0",
      reason: REASON,
      pdf: v2,
    });
    await expect.poll(() => admin.getByRole("status").textContent()).toMatch(/Protocol version 2.0 registered/);
    const card = admin.locator('[data-document-type="protocol"] [data-version="2.0"]');
    await expect.poll(() => card.locator("[data-reason]").textContent()).toBe(REASON);
    const sha = createHash("sha256").update(v2).digest("hex");
    expect(await card.locator("[data-sha256]").textContent()).toBe(sha);
    const [row] = await demo.sql`SELECT encode(sha256, 'hex') AS sha FROM study_documents WHERE version = '2.0'`;
    expect(row.sha).toBe(sha);
    // The PDF downloads as an attachment, the very bytes sealed.
    const download = await admin.request.get(
      `${demo.portal.url}${await card.getByRole("link", { name: "protocol-2.0.pdf" }).getAttribute("href")}`,
    );
    expect(download.status()).toBe(200);
    expect(download.headers()["content-disposition"]).toMatch(/^attachment; filename="protocol-2.0.pdf"/);
    expect(
      createHash("sha256")
        .update(await download.body())
        .digest("hex"),
    ).toBe(sha);
    await shot(admin, "study-documents-desktop");

    // The investigator records the site's approval of version 2.0.
    const inv = await demo.page({ viewport: DESKTOP }, INVESTIGATOR);
    await inv.goto(url);
    const approval = inv.locator("[data-approval-form]");
    await approval.getByLabel("Document version").selectOption({ label: "Protocol version 2.0" });
    await approval.getByLabel("Site", { exact: true }).selectOption("SITE-01");
    await approval.getByLabel("Approval date at the site").fill(daysAgo(2));
    await approval.getByRole("button", { name: "Record approval" }).click();
    await expect.poll(() => inv.getByRole("status").textContent()).toMatch(/version 2.0 at SITE-01/);
    await expect.poll(() => inv.locator('[data-version="2.0"] [data-site-approval="SITE-01"]').count()).toBe(1);

    // A record page: each version names the protocol in force at its site when it was entered: the demo's records
    // were entered before version 2.0's site approval was recorded, so 1.0 (ADR 0048: never retroactive).
    const [rec] = await demo.sql`SELECT r.id FROM records r JOIN sites s ON s.id = r.site_id
      WHERE s.code = 'SITE-01' ORDER BY r.created_at LIMIT 1`;
    await inv.goto(`${demo.portal.url}/studies/DEMO-001/records/${rec.id}`);
    await expect
      .poll(() => inv.locator("[data-protocol-in-force]").first().textContent())
      .toBe("Protocol in force at SITE-01: version 1.0");
    await shot(inv, "study-documents-record-protocol-desktop");

    const phone = await demo.page(PHONE, MONITOR);
    await phone.goto(url);
    await expect.poll(() => phone.locator('[data-version="2.0"] [data-sha256]').textContent()).toBe(sha);
    expect(await scrollWidth(phone)).toBeLessThanOrEqual(390);
    await shot(phone, "study-documents-phone");
    await phone.goto(`${demo.portal.url}/studies/DEMO-001/records/${rec.id}`);
    await expect.poll(() => phone.locator("[data-protocol-in-force]").first().textContent()).toMatch(/version 1\.0/);
    expect(await scrollWidth(phone)).toBeLessThanOrEqual(390);
    await shot(phone, "study-documents-record-protocol-phone");
  }, 240_000);
});
