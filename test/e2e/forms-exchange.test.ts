/**
 * Moving forms in and out on the forms page, in Chromium on a desktop (1366x900) and a phone (390x844): an admin
 * uploads a REDCap data dictionary with bad rows and sees every problem with its row (nothing imported), then the
 * good dictionary (4 forms, approved), downloads the forms as a REDCap dictionary, JSON and ODM; on the phone an
 * unusable file is named and a JSON definition imports. Screenshots are kept in test-results/screenshots.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Browser, BrowserContext, Download, Page } from "playwright-core";
import { ROOT, demoPasswordOf, startPortal, type Portal } from "../helpers/portal.ts";
import { demoClone } from "../helpers/demo-snapshot.ts";
import { launchChromium, shot, signInAndEnrol } from "../helpers/browser.ts";

const FIXTURE = readFileSync(path.join(ROOT, "test", "fixtures", "redcap-dictionary.csv"), "utf8");
const BAD = FIXTURE.replace("vs_time,vital_signs,,text,", "vs_time,vital_signs,,file,").replace(
  '"1, Hispanic or Latino',
  '"1 Hispanic or Latino',
);

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

async function upload(page: Page, name: string, text: string, fill: { visits?: string; repeating?: string } = {}) {
  await page.getByLabel("File of forms").setInputFiles({ name, mimeType: "text/plain", buffer: Buffer.from(text) });
  await page.getByLabel("Visits").fill(fill.visits ?? "");
  await page.getByLabel("Repeating forms").fill(fill.repeating ?? "");
  await page.getByRole("button", { name: "Import file" }).click();
}

async function downloaded(page: Page, format: string): Promise<{ name: string; text: string }> {
  const [download] = await Promise.all([
    page.waitForEvent("download") as Promise<Download>,
    page.locator(`a[data-export="${format}"]`).click(),
  ]);
  const file = await download.path();
  return { name: download.suggestedFilename(), text: readFileSync(file!, "utf8") };
}

describe("forms page: import and export files of forms (Chromium)", () => {
  it("desktop: every bad row shown, nothing imported; the good dictionary imports; exports download", async () => {
    desktop = await browser.newContext({ viewport: { width: 1366, height: 900 }, acceptDownloads: true });
    const page = await desktop.newPage();
    await signInAndEnrol(page, portal.url, "admin@demo.trialseal.test", demoPasswordOf(portal));
    await page.goto(`${portal.url}/studies/DEMO-001/forms`);
    const before = await page.locator("tr[data-form]").count();

    await upload(page, "project_DataDictionary.csv", BAD, { visits: "SCREENING, WEEK4", repeating: "adverse_events" });
    const problems = page.locator("#file-problems");
    await expect.poll(() => problems.isVisible()).toBe(true);
    expect(await problems.getByRole("heading").textContent()).toBe(
      "The file was refused: 2 problems. Nothing was imported.",
    );
    expect(await problems.locator("tbody tr").allInnerTexts()).toEqual([
      expect.stringMatching(/^Row 16\s+Choices, Calculations, OR Slider Labels\s+the choice "1 Hispanic or Latino"/),
      expect.stringMatching(/^Row 23\s+Field Type\s+file fields cannot be imported/),
    ]);
    expect(await page.getByRole("alert").textContent()).toMatch(/project_DataDictionary\.csv: the file was refused/);
    expect(await page.locator("tr[data-form]").count()).toBe(before);
    await shot(page, "forms-exchange-desktop-refused");

    await upload(page, "project_DataDictionary.csv", FIXTURE, {
      visits: "SCREENING, WEEK4",
      repeating: "adverse_events",
    });
    await expect.poll(() => page.getByRole("status").first().textContent()).toMatch(/^Imported 4 forms from/);
    // Not approved (the box was left unticked): four drafts, one per instrument.
    for (const code of ["DEMOGRAPHICS", "VITAL_SIGNS", "MEDICAL_HISTORY", "ADVERSE_EVENTS"])
      expect(await page.locator(`tr[data-form="${code}-1"]`).textContent()).toMatch(/draft/);
    expect(await page.locator("#file-problems").count()).toBe(0);
    await shot(page, "forms-exchange-desktop-imported");

    const csv = await downloaded(page, "redcap");
    expect(csv.name).toBe("DEMO-001-redcap-dictionary.csv");
    expect(csv.text.split("\r\n")[0]).toMatch(/^"Variable \/ Field Name","Form Name","Section Header",/);
    // Exports hold the latest approved version of every form: the demo's forms, not the four drafts just imported.
    expect(csv.text).toContain('"bmi","vitals","","calc","BMI"');
    expect(csv.text).not.toContain('"vital_signs"');
    const json = await downloaded(page, "json");
    const exported = JSON.parse(json.text).map((f: { code: string }) => f.code);
    expect(exported).toEqual(expect.arrayContaining(["AE", "DEMOG", "VITALS"]));
    expect(exported).not.toContain("ADVERSE_EVENTS");
    const odm = await downloaded(page, "odm");
    expect(odm.name).toBe("DEMO-001-odm-metadata.xml");
    expect(odm.text).toMatch(/<ODM [^>]*ODMVersion="1\.3\.2"/);
  });

  it("phone: an unusable file is named; a JSON definition imports and is approved", async () => {
    const phone = await browser.newContext({
      viewport: { width: 390, height: 844 },
      isMobile: true,
      hasTouch: true,
      storageState: await desktop.storageState(),
    });
    const page = await phone.newPage();
    await page.goto(`${portal.url}/studies/DEMO-001/forms`);
    await upload(page, "notes.txt", "Remember to ask about the dictionary\n");
    await expect
      .poll(() => page.getByRole("alert").textContent())
      .toMatch(/^notes\.txt: cannot tell the file's format/);
    await shot(page, "forms-exchange-phone-unusable");

    const def = {
      code: "CONMEDS",
      title: "Concomitant medications",
      version: 1,
      visits: ["ANY"],
      fields: [{ name: "drug", label: "Medication", type: "text", required: true }],
    };
    await page.getByLabel("Approve now (each approval sealed into the log)").check();
    await upload(page, "conmeds.json", JSON.stringify(def), { repeating: "CONMEDS" });
    await expect
      .poll(() => page.getByRole("status").first().textContent())
      .toMatch(/^Imported 1 form from JSON \(TrialSeal definitions\) conmeds\.json: CONMEDS version 1; approved/);
    expect(await page.locator('tr[data-form="CONMEDS-1"]').textContent()).toMatch(/approved/);
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    expect(width).toBeLessThanOrEqual(390);
    await shot(page, "forms-exchange-phone-imported");
    await phone.close();
  });
});
