/**
 * Importing existing data on the import page (issue 18, ADR 0036/0037), in Chromium on a desktop (1366x900) and a
 * phone (390x844): the data manager checks a 5,000-row REDCap-layout CSV of the demo's adverse-event log (a dry
 * run: no problem, the mapping preview), imports it and follows its progress to the finished job with its counts;
 * then imports the REDCap ODM ClinicalData fixture, and a record page shows an imported value as migrated from the
 * file with the source system's claims. Screenshots are kept in test-results/screenshots.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { ROOT, demoPasswordOf, startPortal, type Portal } from "../helpers/portal.ts";
import { demoClone } from "../helpers/demo-snapshot.ts";
import { launchChromium, shot, signInAndEnrol } from "../helpers/browser.ts";
import { csvForForm } from "../helpers/import-files.ts";
import type { FormDefinition } from "../../anchoring/forms/definition.ts";

const AE = JSON.parse(
  readFileSync(path.join(ROOT, "app", "studies", "demo", "ae.form.json"), "utf8"),
) as FormDefinition;
const ODM_NAME = "redcap-clinical-odm.xml";
const ODM = readFileSync(path.join(ROOT, "test", "fixtures", ODM_NAME));
/** The demo's consented subjects (app/studies/demo-seed.server.ts). */
const SUBJECTS = ["SITE-01-001", "SITE-01-002", "SITE-01-003", "SITE-01-004"];
const CSV = csvForForm(AE, { rows: 5000, subjects: SUBJECTS, visit: "screening_arm_1", redcap: true });

let portal: Portal;
let browser: Browser;
let desktop: BrowserContext;

beforeAll(async () => {
  portal = await startPortal({ DATA_DIR: (await demoClone("pglite")).dataDir });
  browser = await launchChromium();
});
afterAll(async () => {
  if (process.env.E2E_DEBUG) console.log(portal?.output());
  await browser?.close();
  await portal?.stop();
});

const importPage = () => `${portal.url}/studies/DEMO-001/import`;

async function submit(page: Page, name: string, buffer: Buffer, intent: "Check (dry run)" | "Import") {
  const mimeType = name.endsWith(".xml") ? "application/xml" : "text/csv";
  await page.getByLabel(/^File \(CSV or ODM XML/).setInputFiles({ name, mimeType, buffer });
  const before = page.url();
  await page.getByRole("button", { name: intent, exact: true }).click();
  // A refused upload stays on the page with its reason in an alert: name it rather than time out.
  await expect
    .poll(async () => (page.url() !== before && /\?job=/.test(page.url()) ? "job" : await alertText(page)), {
      timeout: 60_000,
    })
    .toBe("job");
}

const alertText = async (page: Page) =>
  (await page.getByRole("alert").count()) ? await page.getByRole("alert").first().textContent() : "";

/** The job section of the job in the address (not the one shown before it) once it has ended. */
async function finished(page: Page) {
  const id = new URL(page.url()).searchParams.get("job");
  expect(id).toBeTruthy();
  const job = page.locator(`section[data-import-job="${id}"]`);
  await expect
    .poll(() => job.getAttribute("data-import-status"), { timeout: 120_000 })
    .toMatch(/^(done|problems|failed)$/);
  return job;
}

const overflows = (page: Page) =>
  page.evaluate((width) => document.documentElement.scrollWidth > width, page.viewportSize()!.width);

describe("import page: CSV and ODM files become sealed, migrated versions (Chromium)", () => {
  it("desktop: a 5,000-row CSV is checked, then imported with progress; the ODM file is imported", async () => {
    desktop = await browser.newContext({ viewport: { width: 1366, height: 900 } });
    const page = await desktop.newPage();
    await signInAndEnrol(page, portal.url, "datamanager@demo.trialseal.test", demoPasswordOf(portal));
    await page.goto(importPage());
    expect(await page.getByText("No import yet: choose a file above, check it, then import it.").count()).toBe(1);
    // The limit in words, once hydrated too (it printed "NaN MB" when the browser computed it from a server module).
    await expect.poll(() => page.getByText("File (CSV or ODM XML, at most 64 MB)").count()).toBe(1);

    // The form is picked from the study's approved forms (a file name that does not say it).
    const formSelect = page.getByLabel("Form (CSV files)");
    expect(await formSelect.locator("option").allTextContents()).toEqual(
      expect.arrayContaining(["From the file name (e.g. VITALS.csv)", expect.stringMatching(/\(AE\)$/)]),
    );
    await formSelect.selectOption("AE");
    await submit(page, "export-2026.csv", Buffer.from(CSV), "Check (dry run)");
    let job = await finished(page);
    expect(await job.getAttribute("data-import-status"), (await job.textContent()) ?? "").toBe("done");
    expect(await job.getByRole("heading").textContent()).toBe(
      "Check of export-2026.csv: Checked: no problem, nothing written",
    );
    // The mapping preview: each file column and the field it goes to, or why it is not imported.
    const mapping = job.locator("table[data-import-mapping]");
    expect(await mapping.locator('tr[data-column="term"]').textContent()).toMatch(/term\s*AE\s*·?\s*term/);
    expect(await mapping.locator('tr[data-column="redcap_event_name"]').textContent()).toMatch(/not imported/);
    await shot(page, "data-import-01-desktop-checked");

    await submit(page, "ae.csv", Buffer.from(CSV), "Import");
    job = await finished(page);
    expect(await job.getAttribute("data-import-status"), (await job.textContent()) ?? "").toBe("done");
    expect(await job.getByRole("heading").textContent()).toBe("Import of ae.csv: Imported");
    const progress = (await job.locator("[data-import-progress]").textContent()) ?? "";
    const m = /^100% · 5000 of 5000 rows · (\d+) rows\/s$/.exec(progress);
    expect(m, progress).not.toBeNull();
    expect(Number(m![1])).toBeGreaterThan(0);
    expect(await job.locator("progress").getAttribute("value")).toBe("100");
    expect(await job.locator("[data-import-result]").textContent()).toMatch(
      /^✓ \d+ values in 5000 records, sealed\. File SHA-256 [0-9a-f]{64}$/,
    );
    // The past imports are read again when the job ends: who, the file, its status and counts.
    const row = page.locator("table[data-import-jobs] tbody tr").first();
    await expect.poll(() => row.textContent()).toMatch(/datamanager@demo\.trialseal\.test\s*ae\.csv.*done5000/);
    await shot(page, "data-import-02-desktop-imported");

    await submit(page, ODM_NAME, ODM, "Import");
    job = await finished(page);
    expect(await job.getAttribute("data-import-status"), (await job.textContent()) ?? "").toBe("done");
    expect(await job.locator("[data-import-result]").textContent()).toMatch(/^✓ \d+ values in \d+ records, sealed/);
    expect(await job.textContent()).toMatch(/e-signatures? of the source system/);
    await shot(page, "data-import-03-desktop-odm-imported");

    // The subject's vital signs at screening came from the ODM file: its history says so, with the claims.
    await page.goto(`${portal.url}/studies/DEMO-001/participants/SITE-01-001`);
    await page.locator('a[data-record="VITALS-SCREENING"]').click();
    await page.waitForURL(/\/records\//);
    const sbp = page.locator('details[data-history="sbp"]');
    await sbp.locator("summary").click();
    const migrated = sbp.locator("[data-migrated]").first();
    expect(await migrated.textContent()).toMatch(
      new RegExp(`Migrated from ${ODM_NAME.replace(/\./g, "\\.")} \\(row \\d+\\)`),
    );
    expect(await migrated.textContent()).toMatch(/claimed by the source system.*jsmith/s);
    expect(await migrated.textContent()).toMatch(/2025-09-02T10:05:51\+02:00/);
    expect(await page.locator("[data-version-migrated]").count()).toBeGreaterThan(0);
    await shot(page, "data-import-04-desktop-record-migrated");
  });

  it("phone: the page fits 390 px; an ODM check shows its mapping preview and the signature note", async () => {
    const phone = await browser.newContext({
      viewport: { width: 390, height: 844 },
      isMobile: true,
      hasTouch: true,
      storageState: await desktop.storageState(),
    });
    const page = await phone.newPage();
    await page.goto(importPage());
    expect(await overflows(page)).toBe(false);
    await submit(page, ODM_NAME, ODM, "Check (dry run)");
    const job = await finished(page);
    expect(await job.getAttribute("data-import-status"), (await job.textContent()) ?? "").toBe("done");
    const mapping = job.locator("table[data-import-mapping]");
    expect(await mapping.locator('tr[data-column="sbp"]').textContent()).toMatch(/VITALS/);
    expect(await job.locator("[data-import-notes]").textContent()).toMatch(/e-signatures? of the source system/);
    expect(await overflows(page)).toBe(false);
    await shot(page, "data-import-05-phone-odm-checked");
    await phone.close();
  });
});
