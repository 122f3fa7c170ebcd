/**
 * Issue 22's must-show journey in Chromium against the demo portal on PostgreSQL. The demo (app/data-sharing/
 * demo.server.ts) holds three electronically consented participants who agreed to future research (SITE-01-007 to
 * -009; 008 said no since) and one earlier delivery holding 007 and 009. Then: the sponsor exports the study's data
 * as CSV from the review page (desktop 1366x900: an export event naming the participants); participant SITE-01-009,
 * on a phone (390x844), opens the link of their invitation email, enters the one-time code, changes future research
 * to No, saves, and sees the change and its history; the researcher asks for vital signs for research on the same
 * disease (DSRCH) over a period; the data access committee approves with a reason and makes a delivery; the
 * researcher downloads the ZIP: pseudonymised rows of the one participant who still agrees, the manifest counting
 * those who said no, and no subject code anywhere. Last, the participant's page (phone) lists the sponsor's export in
 * words (organisation and role, no staff name) and the earlier delivery that held their data, not the new one.
 * The integrity audit naming a deleted access event is covered in test/db/access-log.test.ts.
 * Screenshots: test-results/screenshots/data-sharing-*.png.
 */
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { strFromU8, unzipSync } from "fflate";
import type { Page } from "playwright-core";
import { describe, expect, it } from "vitest";
import { shot } from "../helpers/browser.ts";
import { demoPortalInBrowser } from "../helpers/demo-browser.ts";

const DESKTOP = { viewport: { width: 1366, height: 900 } };
const PHONE = { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true };
const PARTICIPANT = { subject: "SITE-01-009", name: "Priya Raman", email: "priya.raman@example.org" };
const demo = demoPortalInBrowser();
const dir = mkdtempSync(path.join(tmpdir(), "ts-data-sharing-"));

/** No sideways scroll: the page is no wider than the window. */
const fitsWidth = (p: Page) =>
  p.evaluate(() => document.scrollingElement!.scrollWidth <= document.scrollingElement!.clientWidth);

async function latestCode(address: string) {
  const rows = await demo.sql`SELECT body FROM outbox WHERE to_address = ${address} AND kind = 'consent_code'
      ORDER BY created_at DESC LIMIT 1`;
  return /is (\d{6})\./.exec(String(rows[0]?.body ?? ""))![1];
}

async function participantId(subject: string) {
  return (await demo.sql`SELECT id FROM participants WHERE subject_code = ${subject}`)[0].id as string;
}

describe("data sharing in the browser (Chromium, PostgreSQL demo portal)", () => {
  it("a participant says no on the phone, a researcher's request is approved and delivered without them, " +
    "and their page lists the sponsor's export and the earlier delivery", async () => {
    const { sql } = demo;
    const url = (p: string) => `${demo.portal.url}${p}`;

    // The sponsor exports the study's data (CSV) from the review page: an export event naming the participants.
    const sponsor = await demo.page(DESKTOP, "sponsor@demo.trialseal.test");
    await sponsor.goto(url("/studies/DEMO-001/review"));
    const [csv] = await Promise.all([
      sponsor.waitForEvent("download"),
      sponsor.locator('a[href="/studies/DEMO-001/export/csv"]').click(),
    ]);
    await csv.saveAs(path.join(dir, "study.csv"));
    await shot(sponsor, "data-sharing-01-sponsor-review");

    // The participant, on a phone, opens the link of their invitation email and enters the one-time code.
    const invitation = await sql`SELECT body FROM outbox WHERE to_address = ${PARTICIPANT.email}
          AND kind = 'consent_invitation' ORDER BY created_at DESC LIMIT 1`;
    const token = /\/consent\/(ci_[A-Za-z0-9_-]{43})/.exec(String(invitation[0]?.body ?? ""))![1];
    const phone = await (await demo.browser.newContext(PHONE)).newPage();
    await phone.goto(url(`/consent/${token}`));
    await phone.getByRole("button", { name: "Send me a code" }).click();
    await expect.poll(() => phone.getByRole("status").textContent()).toMatch(/We sent a 6-digit code by email/);
    await phone.getByLabel("Code").fill(await latestCode(PARTICIPANT.email));
    await phone.getByRole("button", { name: "Continue" }).click();
    const choice = phone.locator('fieldset[data-choice="future_research"]');
    await expect.poll(() => choice.count()).toBe(1);
    expect(await phone.locator('input[name="choice-future_research"][value="yes"]').isChecked()).toBe(true);
    await shot(phone, "data-sharing-02-participant-choices-phone");

    // They change future research to No and save: the choice in force and its history say so.
    await phone.locator('input[name="choice-future_research"][value="no"]').check();
    await phone.getByRole("button", { name: "Save my choices" }).click();
    await expect
      .poll(() => phone.getByRole("status").first().textContent())
      .toMatch(/Your choices are saved \(1 change\)\. They apply from now on\./);
    expect(await phone.locator('input[name="choice-future_research"][value="no"]').isChecked()).toBe(true);
    await phone.getByText("History of your choices").click();
    const history = (await phone.locator("[data-choice-history]").textContent()) ?? "";
    expect(history).toMatch(/UTC: yes to "I allow my samples.*\(by you\).*UTC: no to "I allow my samples.*\(by you\)/);
    expect(await fitsWidth(phone)).toBe(true);
    await shot(phone, "data-sharing-03-participant-said-no-phone");
    const changes = await sql`SELECT c.choices, c.by_participant FROM consent_choice_changes c
          JOIN participants p ON p.id = c.participant_id WHERE p.subject_code = ${PARTICIPANT.subject}`;
    expect(changes.map((c) => [c.choices, c.by_participant])).toEqual([[{ future_research: false }, true]]);

    // The researcher asks for vital signs for research on the same disease, over a period.
    const researcher = await demo.page(DESKTOP, "researcher@demo.trialseal.test");
    await researcher.goto(url("/studies/DEMO-001/data-requests"));
    await researcher.locator("#purpose").selectOption("DSRCH");
    for (const f of ["VITALS.sbp", "VITALS.dbp"])
      await researcher.locator(`input[name="fields"][value="${f}"]`).check();
    await researcher.getByLabel("Data collected from").fill("2020-01-01");
    await researcher.getByLabel("Data collected until").fill("2099-12-31");
    await researcher.getByLabel("Your institution").fill("University of Examples, Department of Cardiology");
    await researcher.getByLabel("Why you need these data").fill("Screening blood pressure across trials.");
    await shot(researcher, "data-sharing-04-researcher-request");
    await researcher.getByRole("button", { name: "Send the request" }).click();
    await researcher.waitForURL(/\/data-requests\/[0-9a-f-]{36}$/);
    const requestPath = new URL(researcher.url()).pathname;
    // The URL changes before the new page has rendered: wait for its text.
    await expect.poll(() => researcher.locator("main").textContent()).toContain("Awaiting the data access committee");

    // The committee (authenticator enrolled at sign-in) approves with a reason and makes a delivery.
    const dac = await demo.page(DESKTOP, "dac@demo.trialseal.test");
    await dac.goto(url(requestPath));
    await dac.locator('input[name="outcome"][value="approved"]').check();
    await dac.getByLabel(/days a delivery can be downloaded/).fill("14");
    await dac.getByLabel("Reason (shown to the researcher)").fill("Coded vital signs only; the purpose was consented.");
    await dac.getByRole("button", { name: "Record the decision" }).click();
    await expect.poll(() => dac.getByRole("button", { name: "Make a delivery now" }).count()).toBe(1);
    await dac.getByRole("button", { name: "Make a delivery now" }).click();
    await expect.poll(() => dac.locator("table tbody tr").count()).toBe(1);
    await expect
      .poll(() => dac.getByRole("status").first().textContent())
      .toMatch(
        new RegExp(
          "^Delivery made for 1 participant; downloadable until \\d{4}-\\d{2}-\\d{2} \\d{2}:\\d{2} UTC\\. " +
            "Manifest SHA-256 [0-9a-f]{64}\\.$",
        ),
      );
    await shot(dac, "data-sharing-05-committee-delivered");

    // The researcher downloads the ZIP: only the participant who still agrees, pseudonymised.
    await researcher.reload();
    const [zip] = await Promise.all([
      researcher.waitForEvent("download"),
      researcher.getByRole("link", { name: /Download ZIP/ }).click(),
    ]);
    await shot(researcher, "data-sharing-06-researcher-delivery");
    const file = path.join(dir, "delivery.zip");
    await zip.saveAs(file);
    const files = unzipSync(new Uint8Array(readFileSync(file)));
    const manifest = JSON.parse(strFromU8(files["manifest.json"]));
    const data = strFromU8(files["data.csv"]);
    const eligible = [await participantId("SITE-01-007")]; // 008 said no in the demo, 009 just now
    expect(manifest.purpose.code).toBe("DSRCH");
    expect(manifest.counts.included).toBe(eligible.length);
    expect(manifest.counts.excluded.declined).toBe(2);
    expect(manifest.counts.excluded.withdrawn).toBe(0);
    // Cells are quoted; no delivered field holds a comma (coded, numeric and date values only).
    const cells = (line: string) => line.split(",").map((c) => c.replace(/^"|"$/g, ""));
    const [header, ...rows] = data.split(/\r?\n/).filter(Boolean).map(cells);
    expect(header.slice(0, 1)).toEqual(["participant"]);
    expect(rows.length).toBeGreaterThan(0);
    const pseudonyms = new Set(rows.map((r) => r[0]));
    expect(pseudonyms.size).toBe(eligible.length);
    for (const p of pseudonyms) expect(p).toMatch(/^P-[0-9A-F]{10}$/);
    for (const text of [data, strFromU8(files["manifest.json"]), strFromU8(files["README.txt"])])
      expect(text).not.toMatch(/SITE-01-\d{3}/);
    const members = await sql`SELECT m.participant_id FROM data_use_delivery_participants m
          JOIN data_use_deliveries d ON d.id = m.delivery_id JOIN data_use_requests r ON r.id = d.request_id
          WHERE r.justification = 'Screening blood pressure across trials.'`;
    expect(members.map((m) => m.participant_id)).toEqual(eligible);

    // The participant's page (phone) lists the sponsor's export in words, no staff name, and the earlier
    // delivery that held their data (the demo's), not the new one.
    await phone.reload();
    const log = phone.locator("[data-access-log]");
    // The sponsor in words: "the sponsor (NAME)", or "the study sponsor" when the study names none (the demo).
    const [org] = await sql`SELECT o.name FROM studies s LEFT JOIN organizations o ON o.id = s.sponsor_org_id
        WHERE s.code = 'DEMO-001'`;
    const sponsorOrg = org?.name ? `the sponsor (${org.name})` : "the study sponsor";
    const exports = log.locator('li[data-what="export"]');
    await expect.poll(() => exports.count()).toBeGreaterThan(0);
    const exportText = (await exports.first().textContent()) ?? "";
    expect(exportText).toContain(`Who: ${sponsorOrg}, study administrator`);
    expect(exportText).toMatch(/including your data/);
    expect(await log.textContent()).not.toContain("Sofia Sponsor");
    const deliveries = log.locator('li[data-what="data-use delivery"]');
    expect(await deliveries.count()).toBe(1);
    expect(await deliveries.first().textContent()).toMatch(/Why: research on the same disease/);
    expect(await fitsWidth(phone)).toBe(true);
    await shot(phone, "data-sharing-07-participant-who-used-my-data-phone");
  }, 600_000);
});
