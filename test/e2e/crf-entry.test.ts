/**
 * CRF entry that helps (issue 17), in Chromium against a PostgreSQL-backed portal, on a desktop (1366x900) and a
 * phone (390x844): the admin sets the site's time zone and brings in the demo's new form versions; the coordinator
 * (a German browser: decimal comma) fills forms with branching, a calculation, a missing-data code, a soft-limit
 * confirmation and a repeating adverse-event log; wrong input lists every error at once in plain words, focused;
 * the datetime is stored as RFC 3339 with the site's offset. On a phone the summary is in view after Save, and a
 * participant tapping Sign on the consent page sees every problem next to the button. A locked casebook offers no
 * entry form and says why. Screenshots are kept in test-results/screenshots.
 * Each person signs in once, through the login page, when the file's first test starts; the coordinator's other
 * browsers (the phone, an English desktop) carry that session instead of signing in again.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import type { Browser, Page } from "playwright-core";
import { ROOT } from "../helpers/portal.ts";
import { demoPortalInBrowser } from "../helpers/demo-browser.ts";
import { SCREENSHOTS, shot } from "../helpers/browser.ts";

const DESKTOP = { width: 1366, height: 900 };
const PHONE = { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, locale: "en-US" };

const demo = demoPortalInBrowser();
const { page } = demo;

interface People {
  admin: Page;
  /** The coordinator in a German browser (decimal comma) on a desktop. */
  coord: Page;
  dm: Page;
  investigator: Page;
}
let people: Promise<People> | undefined;
/**
 * Everyone this file needs, each signed in once through the login page, one after another (at once, they could make
 * a loaded portal answer a page later than a navigation waits), the first time a test asks.
 */
function signedIn(): Promise<People> {
  people ??= (async () => {
    const admin = await page({ viewport: DESKTOP }, "admin@demo.trialseal.test");
    const coord = await page({ viewport: DESKTOP, locale: "de-DE" }, "coordinator@demo.trialseal.test");
    const dm = await page({ viewport: DESKTOP }, "datamanager@demo.trialseal.test");
    const investigator = await page({ viewport: DESKTOP }, "investigator@demo.trialseal.test");
    return { admin, coord, dm, investigator };
  })();
  return people;
}

/** Another browser of the coordinator (a phone, another language): their signed-in session, not a new sign-in. */
async function coordinatorIn(opts: Parameters<Browser["newContext"]>[0]): Promise<Page> {
  const storageState = await (await signedIn()).coord.context().storageState();
  return (await demo.browser.newContext({ ...opts, storageState })).newPage();
}

/** What the phone shows without scrolling (the screenshots of `shot` are of the whole page). */
async function viewportShot(p: Page, name: string) {
  await p.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`) });
}

/** The id of the focused element ("" for none). */
const focusedId = () => (document.activeElement ? document.activeElement.id : "");

/** The texts of the error summary's items. */
const summaryItems = (p: Page, id = "error-summary") => p.locator(`#${id} li`).allTextContents();

/** Whether an element is entirely inside the viewport. */
async function inViewport(p: Page, selector: string) {
  return p.locator(selector).evaluate((el) => {
    const r = el.getBoundingClientRect();
    return r.top >= 0 && r.bottom <= window.innerHeight + 1 && r.height > 0;
  });
}

/** Bring in a demo form version through the editor, approved, unless the demo seed already has it. */
async function ensureForm(admin: Page, file: string) {
  const def = JSON.parse(readFileSync(path.join(ROOT, "app", "studies", "demo", file), "utf8"));
  // The forms page stays open after a save or an approval: load it only when elsewhere.
  if (new URL(admin.url()).pathname !== "/studies/DEMO-001/forms")
    await admin.goto(`${demo.portal.url}/studies/DEMO-001/forms`);
  const row = admin.locator(`tr[data-form="${def.code}-${def.version}"]`);
  if ((await row.count()) === 0) {
    await admin.getByLabel("Definition (JSON)").fill(JSON.stringify(def, null, 2));
    await expect.poll(() => admin.locator("#definition-check").textContent()).toBe("Valid definition.");
    await admin.getByRole("button", { name: "Save version" }).click();
    await expect.poll(() => row.count()).toBe(1);
  }
  if ((await row.textContent())?.includes("draft")) {
    await row.getByRole("button", { name: "Approve" }).click();
    await expect.poll(() => row.textContent()).toContain("approved");
  }
}

describe("CRF entry in the browser (Chromium, PostgreSQL portal)", () => {
  it("lists every error at once, branches, calculates, takes a decimal comma, codes and confirmations", async () => {
    // The admin: the demo site's clock is Berlin; the new form versions are approved.
    const { admin, coord } = await signedIn();
    await admin.goto(`${demo.portal.url}/studies/DEMO-001/staff`);
    await admin.getByLabel("Time zone of SITE-01").selectOption("Europe/Berlin");
    await admin.locator('[data-site="SITE-01"]').getByRole("button", { name: "Set time zone" }).click();
    await expect
      .poll(() => admin.getByRole("status").textContent())
      .toBe("Site SITE-01 now enters and shows times in Europe/Berlin.");
    await admin.getByLabel("Time zone of the new site").selectOption("America/New_York");
    await admin.getByLabel("New site code").fill("SITE-02");
    await admin.getByLabel("Site name").fill("Demo site 02");
    await admin.getByRole("button", { name: "Add site" }).click();
    await expect.poll(() => admin.locator('[data-site="SITE-02"]').textContent()).toContain("(America/New_York)");
    await shot(admin, "crf-00-site-time-zones");
    for (const f of ["demog-v2.form.json", "vitals-v2.form.json", "ae.form.json"]) await ensureForm(admin, f);

    // The coordinator, in a German browser (decimal comma), on a desktop.
    const subjectPage = `${demo.portal.url}/studies/DEMO-001/participants/SITE-01-001`;
    await coord.goto(subjectPage);

    // Demographics: an empty save names every required field at once, focused, each also at its field.
    await coord.locator('[data-enter="DEMOG-SCREENING"]').click();
    await coord.getByRole("button", { name: "Save" }).click();
    await expect
      .poll(() => summaryItems(coord))
      .toEqual([
        "Initials is required",
        "Sex at birth is required",
        "Age is required",
        "Consent obtained at is required",
      ]);
    await expect.poll(() => coord.locator("#error-summary h2").textContent()).toBe("4 problems to fix");
    await expect.poll(() => coord.evaluate(focusedId)).toBe("error-summary");
    expect(await coord.locator("#f_initials").getAttribute("aria-invalid")).toBe("true");
    expect(await coord.locator("#f_initials").getAttribute("aria-describedby")).toContain("f_initials-error");
    expect(await coord.locator("#f_initials-error").textContent()).toBe("Initials is required");
    await shot(coord, "crf-01-desktop-every-error-at-once");
    // A link of the summary takes the coordinator to the field.
    await coord.locator("#error-summary a", { hasText: "Age is required" }).click();
    await expect.poll(() => coord.evaluate(focusedId)).toBe("f_age");

    // Branching: "Pregnant" only for a female participant; hidden, it is not posted.
    expect(await coord.locator('[data-field="pregnant"]').isHidden()).toBe(true);
    await coord.getByLabel("Sex at birth *").selectOption("F");
    await expect.poll(() => coord.locator('[data-field="pregnant"]').isVisible()).toBe(true);
    await coord.getByLabel("Sex at birth *").selectOption("M");
    await expect.poll(() => coord.locator('[data-field="pregnant"]').isHidden()).toBe(true);
    await coord.getByLabel("Sex at birth *").selectOption("F");
    // A missing-data code with its reason instead of a value.
    await coord.locator("#m_pregnant").selectOption("ASKU");
    await expect.poll(() => coord.locator("#f_pregnant").isDisabled()).toBe(true);
    await coord.getByLabel("Why is Pregnant missing?").fill("participant preferred not to answer");
    await coord.getByLabel("Initials *").fill("AB");
    await coord.getByLabel("Age *").fill("45");
    await coord.locator("#f_height").fill("172,5");
    await coord.locator("#f_weight").fill("70,25");
    // Consent obtained at: a date and a time on the site's clock (Berlin, winter time).
    await coord.getByLabel("Consent obtained at: date").fill("2026-01-15");
    await coord.getByLabel("Consent obtained at: time").fill("09:30");
    await shot(coord, "crf-02-desktop-branching-missing-code");
    await coord.getByRole("button", { name: "Save" }).click();
    await coord.waitForURL(/\/records\//);
    const [demog] = await demo.sql`SELECT v.data_text, v.missing_text FROM record_versions v
      JOIN records r ON r.id = v.record_id WHERE r.form_code = 'DEMOG' AND v.version = 1
      AND r.participant_id = (SELECT id FROM participants WHERE subject_code = 'SITE-01-001')`;
    const stored = JSON.parse(demog.data_text);
    expect(stored.consent_datetime).toBe("2026-01-15T09:30:00+01:00");
    expect(stored.height).toBe(172.5);
    expect(stored.weight).toBe(70.25);
    expect(stored.pregnant).toBeUndefined();
    expect(JSON.parse(demog.missing_text)).toEqual({
      pregnant: { code: "ASKU", reason: "participant preferred not to answer" },
    });

    // Vital signs: wrong input of several kinds, every problem at once in plain words.
    await coord.goto(subjectPage);
    await coord.locator('[data-enter="VITALS-SCREENING"]').click();
    await expect
      .poll(() => coord.locator("h3.crf-section").allTextContents())
      .toEqual(["Visit", "Measurements", "Other observations"]);
    expect(await coord.locator('[data-field="sbp"] .unit').textContent()).toBe("mmHg");
    expect(await coord.locator('[data-field="temp"] .unit').textContent()).toBe("°C");
    expect(await coord.locator("#f_visit_date").getAttribute("type")).toBe("date");
    expect(await coord.locator("#f_visit_date").getAttribute("max")).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    // A number input is sized to its content, not the width of the form.
    const widths = await coord.evaluate(() => ({
      sbp: document.getElementById("f_sbp")!.getBoundingClientRect().width,
      form: document.querySelector(".crf")!.getBoundingClientRect().width,
    }));
    expect(widths.sbp).toBeLessThan(widths.form / 3);
    await coord.locator("#f_sbp").fill("12o");
    await coord.locator("#f_temp").fill("50");
    await coord.getByRole("button", { name: "Save" }).click();
    await expect
      .poll(() => summaryItems(coord))
      .toEqual([
        "Visit date is required",
        "Systolic BP must be a number, written with digits and a comma or a point for decimals, without thousands " +
          "separators (for example 37,2)",
        "Diastolic BP is required",
        "Temperature must be between 30 and 45 °C",
      ]);
    await expect.poll(() => coord.evaluate(focusedId)).toBe("error-summary");
    await shot(coord, "crf-03-desktop-wrong-input");

    // Fixed, with a value above the expected range: asked to confirm, told a query will be opened.
    await coord.locator("#f_visit_date").fill("2026-02-01");
    await coord.locator("#f_sbp").fill("172");
    await coord.locator("#f_dbp").fill("95");
    await coord.locator("#f_temp").fill("37,2");
    await coord.locator("#f_height").fill("172");
    await coord.locator("#f_weight").fill("70");
    // The calculation follows the inputs live (the server recomputes it and is authoritative).
    await expect.poll(() => coord.locator('output[data-calc="bmi"]').textContent()).toBe("23.7");
    await coord.getByRole("button", { name: "Save" }).click();
    await expect
      .poll(() => summaryItems(coord))
      .toEqual(["Systolic BP is outside the expected range 90–160 mmHg: check it and confirm"]);
    await expect.poll(() => coord.locator("#error-summary").textContent()).toMatch(/opens a query/);
    await shot(coord, "crf-04-desktop-confirm-soft-limit");
    await coord.getByLabel("I confirm this value").check();
    await coord.getByRole("button", { name: "Save" }).click();
    await coord.waitForURL(/\/records\//);
    const vitalsId = coord.url().split("/").pop()!;
    const [vitals] =
      await demo.sql`SELECT data_text, calculated_text FROM record_versions WHERE record_id = ${vitalsId}`;
    expect(JSON.parse(vitals.data_text)).toMatchObject({ sbp: 172, temp: 37.2, weight: 70 });
    expect(JSON.parse(vitals.calculated_text)).toEqual({ bmi: 23.7 });
    const [q] = await demo.sql`SELECT count(*)::int AS n FROM queries WHERE record_id = ${vitalsId} AND field = 'sbp'`;
    expect(q.n).toBe(1);

    // The adverse-event log: rows added over the study, each a record of its own.
    await coord.goto(subjectPage);
    await coord.locator('[data-enter="AE-SCREENING"]').click();
    await expect.poll(() => coord.locator("#entry-title").textContent()).toBe("Adverse events, visit SCREENING, row 1");
    await coord.getByLabel("Adverse event *").fill("Headache");
    await coord.locator("#f_onset").fill("2026-02-02");
    await coord.getByLabel("Severity *").selectOption("MILD");
    await coord.getByLabel("Outcome *").selectOption("RECOVERED");
    await coord.getByLabel("Serious *").selectOption("false");
    expect(await coord.locator('[data-section="seriousness"]').isHidden()).toBe(true);
    await coord.getByRole("button", { name: "Save" }).click();
    await coord.waitForURL(/\/records\//);
    await coord.goto(subjectPage);
    await coord.locator('[data-enter="AE-SCREENING"]').click();
    await expect.poll(() => coord.locator("#entry-title").textContent()).toBe("Adverse events, visit SCREENING, row 2");
    await coord.getByLabel("Adverse event *").fill("Fainting");
    await coord.locator("#m_onset").selectOption("UNK");
    await coord.getByLabel("Why is Date of onset missing?").fill("participant does not remember");
    await coord.getByLabel("Severity *").selectOption("SEVERE");
    await coord.getByLabel("Outcome *").selectOption("RECOVERING");
    await coord.getByLabel("Serious *").selectOption("true");
    // The seriousness section appears with its required field.
    await expect.poll(() => coord.locator('[data-section="seriousness"]').isVisible()).toBe(true);
    await coord.getByRole("button", { name: "Save" }).click();
    await expect.poll(() => summaryItems(coord)).toEqual(["Date of hospitalisation is required"]);
    await coord.locator("#f_hosp_date").fill("2026-02-03");
    await shot(coord, "crf-05-desktop-repeating-row");
    await coord.getByRole("button", { name: "Save" }).click();
    await coord.waitForURL(/\/records\//);
    await coord.goto(subjectPage);
    await expect
      .poll(() => coord.locator('[data-visit="AE-SCREENING"] .row-link').allTextContents())
      .toEqual([expect.stringMatching(/^row 1 \(v1\)/), expect.stringMatching(/^row 2 \(v1\)/)]);
    await shot(coord, "crf-06-desktop-participant-rows");
  });

  it("on a phone, the errors are in view after Save; a locked casebook offers no entry and says why", async () => {
    const phone = await coordinatorIn(PHONE);
    const subjectPage = `${demo.portal.url}/studies/DEMO-001/participants/SITE-01-002`;
    await phone.goto(subjectPage);
    await phone.locator('[data-enter="VITALS-SCREENING"]').click();
    await phone.locator("#f_temp").fill("37,2");
    await phone.getByRole("button", { name: "Save" }).click();
    await expect.poll(() => phone.locator("#error-summary").count()).toBe(1);
    // An en-US phone: the comma is not its decimal separator, and the message says how to write the number.
    await expect
      .poll(() => summaryItems(phone))
      .toEqual([
        "Visit date is required",
        "Systolic BP is required",
        "Diastolic BP is required",
        "Temperature must be a number, written with digits and a point for decimals, without thousands separators " +
          "(for example 37.2)",
      ]);
    await expect.poll(() => phone.evaluate(focusedId)).toBe("error-summary");
    await expect.poll(() => inViewport(phone, "#error-summary h2")).toBe(true);
    expect(await phone.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    await shot(phone, "crf-07-phone-errors-in-view");
    await viewportShot(phone, "crf-07b-phone-errors-in-view-viewport");

    // The data manager locks the casebook: no entry form, and the page says why.
    const { dm } = await signedIn();
    await dm.goto(subjectPage);
    await dm.locator("#cb-reason").fill("database lock for the interim analysis");
    await dm.getByRole("button", { name: "Lock casebook" }).click();
    await expect.poll(() => dm.locator("[data-entry-closed]").count()).toBe(1);
    await phone.goto(`${subjectPage}?form=VITALS&visit=SCREENING`);
    await expect
      .poll(() => phone.locator("[data-entry-closed]").textContent())
      .toBe(
        "No data entry. This participant's casebook is locked (database lock for the interim analysis): no data " +
          "can be entered or corrected until a data manager unlocks it.",
      );
    expect(await phone.locator("[data-enter]").count()).toBe(0);
    expect(await phone.getByRole("button", { name: "Save" }).count()).toBe(0);
    await shot(phone, "crf-08-phone-locked-casebook");
  });

  it("a participant tapping Sign on a phone sees every problem next to the button", async () => {
    const NAME = "Jonas Weber-Adeyemi";
    const EMAIL = "jonas.wa@example.org";
    const coord = await coordinatorIn({ viewport: DESKTOP });
    await coord.goto(`${demo.portal.url}/studies/DEMO-001/participants`);
    await coord.getByLabel("Full name").fill(NAME);
    await coord.getByLabel("Email").fill(EMAIL);
    await coord.getByRole("button", { name: "Enroll a participant" }).click();
    await expect.poll(() => coord.locator("[data-consent-state]").last().textContent()).toBe("not consented");
    await coord.locator("[data-consent-state]").last().click();
    await coord.waitForURL(/\/consent$/);
    const subject = /participants\/([^/]+)\/consent/.exec(coord.url())![1];
    const { investigator } = await signedIn();
    await investigator.goto(`${demo.portal.url}/studies/DEMO-001/participants/${subject}/consent`);
    await investigator.getByRole("button", { name: "Confirm contact" }).click();
    // Every contact row carries data-confirmed-by (empty until confirmed): wait for the confirmation itself.
    await expect
      .poll(() => investigator.locator("[data-signer-contact=participant] [data-confirmed-by]").textContent())
      .toMatch(/^confirmed by /);
    await coord.reload();
    await coord.getByRole("button", { name: "Create invitation" }).click();
    const link = (await coord.locator("[data-invitation-url]").textContent())!.trim();

    const phone = await (await demo.browser.newContext(PHONE)).newPage();
    await phone.goto(link);
    await phone.getByRole("button", { name: "Send me a code" }).click();
    await expect.poll(() => phone.getByRole("status").textContent()).toMatch(/We sent a 6-digit code/);
    const [mail] = await demo.sql`SELECT body FROM outbox WHERE to_address = ${EMAIL} AND kind = 'consent_code'
      ORDER BY created_at DESC LIMIT 1`;
    await phone.getByLabel("Code").fill(/is (\d{6})\./.exec(String(mail.body))![1]);
    await phone.getByRole("button", { name: "Continue" }).click();
    await expect.poll(() => phone.locator('[data-step="sign"]').count()).toBe(1);

    // One section read, the name typed wrong, nothing else: every problem at once, beside the Sign button.
    await phone.locator('input[name="ack"]').first().check();
    await phone.getByLabel("Type your full name").fill("Jonas Someone");
    await phone.getByRole("button", { name: "Sign" }).click();
    await expect.poll(() => phone.locator("#sign-problems").count()).toBe(1);
    const items = await summaryItems(phone, "sign-problems");
    expect(items.length).toBeGreaterThanOrEqual(3);
    expect(items).toContain(
      "The name you typed does not match the name the study team recorded. Type your full name as it appears on " +
        "your records, or ask the study team.",
    );
    expect(items).toContain("Please confirm that typing your name is your electronic signature.");
    await expect.poll(() => phone.evaluate(focusedId)).toBe("sign-problems");
    await expect.poll(() => inViewport(phone, "#sign-problems h2")).toBe(true);
    // The summary sits right above the Sign button, and each problem is also shown at its place.
    const gap = await phone.evaluate(() => {
      const s = document.getElementById("sign-problems")!.getBoundingClientRect();
      const b = [...document.querySelectorAll("button")].find((x) => x.textContent === "Sign")!.getBoundingClientRect();
      return b.top - s.bottom;
    });
    expect(gap).toBeGreaterThanOrEqual(0);
    expect(gap).toBeLessThan(100);
    expect(await phone.locator("#typedName-error").textContent()).toMatch(/does not match/);
    expect(await phone.locator("#typedName").getAttribute("aria-invalid")).toBe("true");
    expect(await phone.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    await shot(phone, "crf-09-phone-consent-every-problem");
    await viewportShot(phone, "crf-09b-phone-consent-viewport-after-sign");
    expect(
      (
        await demo.sql`SELECT count(*)::int AS n FROM consent_signatures s JOIN participants p
      ON p.id = s.participant_id WHERE p.subject_code = ${subject}`
      )[0].n,
    ).toBe(0);
  });
});
