/**
 * In a real browser (Chromium via playwright-core), on a PostgreSQL-backed portal: an admin creates a study
 * and a site, invites an investigator and a coordinator, imports and approves a form with the live preview;
 * the investigator accepts the invitation, enrols TOTP and delegates data entry to the coordinator; the
 * coordinator, without a current enrollment delegation, is refused enrolling a participant, and succeeds once
 * it is delegated. Screenshots are kept in test-results/screenshots.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import postgres from "postgres";
import type { Browser, Page } from "playwright-core";
import { startPortal, type Portal, demoPasswordOf } from "../helpers/portal.ts";
import { demoClone } from "../helpers/demo-snapshot.ts";
import { launchChromium, shot, signInAndEnrol as signInWithTotp } from "../helpers/browser.ts";
import { nextStepTotp } from "../helpers/totp.ts";

let portal: Portal;
let browser: Browser;
let pg: { url: string; drop: () => Promise<void> };
let sql: postgres.Sql;
let demoPassword: string;

beforeAll(async () => {
  const clone = await demoClone("postgres"); // the demo seeded once per run (test/helpers/demo-snapshot.ts)
  pg = { url: clone.databaseUrl!, drop: clone.drop };
  const dataDir = clone.dataDir;
  portal = await startPortal({ DATA_DIR: dataDir, DATABASE_URL: pg.url });
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

/** The newest message the outbox holds for an address (the development mailbox). */
async function mailTo(address: string, kind: string) {
  const rows = await sql`SELECT body FROM outbox WHERE to_address = ${address} AND kind = ${kind}
      ORDER BY created_at DESC LIMIT 1`;
  expect(rows.length, `${kind} mail for ${address}`).toBe(1);
  return String(rows[0].body);
}

const signInAndEnrol = (page: Page, email: string, password: string) =>
  signInWithTotp(page, portal.url, email, password);

async function acceptInvitation(page: Page, email: string, password: string) {
  const link = /(http\S+\/reset-password\/\S+)/.exec(await mailTo(email, "invitation"))![1];
  await page.goto(link);
  await page.getByLabel("New password (12 to 128 characters)").fill(password);
  await page.getByLabel("New password again").fill(password);
  await page.getByRole("button", { name: "Set password" }).click();
  await page.waitForURL(/\/login/);
}

describe("study setup in the browser (Chromium, PostgreSQL portal)", () => {
  it("admin sets up a study; the investigator delegates; delegation decides what the coordinator may do", async () => {
    const admin = await (await browser.newContext()).newPage();
    await signInAndEnrol(admin, "admin@demo.trialseal.test", demoPassword);

    // A new study with its first site, then a second site.
    await admin.getByRole("link", { name: "New study" }).click();
    await admin.getByLabel("Protocol code").fill("E2E-1");
    await admin.getByLabel("Title").fill("Browser-tested study");
    await admin.getByLabel("First site code").fill("SITE-A");
    await admin.getByLabel("First site name").fill("Site A");
    await admin.getByRole("button", { name: "Create study" }).click();
    await admin.waitForURL(/\/studies\/E2E-1\/staff$/);
    await admin.getByLabel("New site code").fill("SITE-B");
    await admin.getByLabel("Site name").fill("Site B");
    await admin.getByRole("button", { name: "Add site" }).click();
    await expect.poll(() => admin.getByRole("status").textContent()).toContain("Site SITE-B added.");

    // Invitations: an investigator (principal) and a coordinator, both at SITE-A.
    for (const [name, email, role] of [
      ["Ivy Investigator", "ivy@e2e.test", "investigator"],
      ["Cole Coordinator", "cole@e2e.test", "coordinator"],
      ["Mo Monitor", "mo@e2e.test", "monitor"],
      ["Dee Datamanager", "dee@e2e.test", "data_manager"],
    ] as const) {
      await admin.getByLabel("Full name").fill(name);
      await admin.getByLabel("Email").fill(email);
      await admin.getByLabel("Role").selectOption(role);
      await admin
        .getByLabel("Site (investigators and coordinators)")
        .selectOption(role === "investigator" || role === "coordinator" ? "SITE-A" : "");
      if (role === "investigator") await admin.getByLabel("Investigator type").selectOption("principal");
      await admin.getByRole("button", { name: "Invite" }).click();
      await expect.poll(() => admin.getByRole("status").textContent()).toContain(`Invitation sent to ${email}.`);
    }
    // The invitees (the platform admin holds no study role).
    await expect.poll(() => admin.locator("tr[data-staff]").count()).toBe(4);
    await shot(admin, "01-admin-staff");

    // The outbox (no SMTP_URL here: the development mailbox) lists the four invitations, reached from the studies
    // page; on a phone the table scrolls inside its container, not the page.
    await admin.goto(`${portal.url}/studies`);
    await admin.getByRole("link", { name: "Outbox" }).click();
    await admin.waitForURL(/\/outbox$/);
    expect(await admin.locator("[data-smtp=off]").textContent()).toContain("SMTP_URL is not set: nothing is sent.");
    for (const email of ["ivy@e2e.test", "cole@e2e.test", "mo@e2e.test", "dee@e2e.test"])
      expect(await admin.locator("tr[data-state=queued]", { hasText: email }).count(), email).toBeGreaterThan(0);
    await shot(admin, "01b-admin-outbox");
    const desktopSize = admin.viewportSize()!;
    await admin.setViewportSize({ width: 390, height: 844 });
    await admin.reload();
    expect(
      await admin.evaluate(() => document.documentElement.scrollWidth > document.documentElement.clientWidth),
    ).toBe(false);
    await shot(admin, "01c-admin-outbox-phone");
    await admin.setViewportSize(desktopSize);

    // A form version in the JSON editor: the live preview follows, invalid JSON is flagged before saving.
    await admin.goto(`${portal.url}/studies/E2E-1/forms`);
    const editor = admin.getByLabel("Definition (JSON)");
    await editor.fill("{ not json");
    await expect.poll(() => admin.locator("#definition-check").textContent()).toMatch(/not JSON/);
    await editor.fill(
      JSON.stringify(
        {
          code: "VITALS",
          title: "Vital signs",
          version: 1,
          visits: ["SCREENING"],
          fields: [
            {
              name: "sbp",
              label: "Systolic BP",
              type: "number",
              integer: true,
              unit: "mmHg",
              min: 50,
              max: 250,
              required: true,
            },
            {
              name: "smoker",
              label: "Smoker",
              type: "choice",
              options: [
                { value: "Y", label: "Yes" },
                { value: "N", label: "No" },
              ],
            },
          ],
        },
        null,
        2,
      ),
    );
    await expect.poll(() => admin.locator("#definition-check").textContent()).toBe("Valid definition.");
    await expect.poll(() => admin.locator(".preview").textContent()).toContain("Systolic BP *");
    await shot(admin, "02-admin-form-editor");
    await admin.getByRole("button", { name: "Save version" }).click();
    await expect.poll(() => admin.locator('tr[data-form="VITALS-1"]').textContent()).toContain("draft");
    await admin.locator('tr[data-form="VITALS-1"]').getByRole("button", { name: "Approve" }).click();
    await expect.poll(() => admin.locator('tr[data-form="VITALS-1"]').textContent()).toContain("approved");
    const [approval] = await sql`SELECT count(*)::int AS n FROM ledger_entries e JOIN studies s ON s.id = e.study_id
        WHERE s.code = 'E2E-1' AND e.kind = 'form.approved'`;
    expect(approval.n).toBe(1);

    // An IRB-approved consent document version, with a preview of its text.
    await admin.goto(`${portal.url}/studies/E2E-1/consent`);
    await admin.getByLabel("Version").fill("1.0");
    await admin.getByLabel("Title", { exact: true }).fill("Informed consent form");
    await admin.getByLabel("Text (Markdown)").fill("# Informed consent\n\nYou are invited to take part in this study.");
    await expect
      .poll(() => admin.locator("[data-preview-error]").textContent())
      .toMatch(/needs at least one `## section`/);
    await admin
      .getByLabel("Text (Markdown)")
      .fill(
        "# Informed consent\n\n## Purpose\nYou are invited to take part in this study.\n\n" +
          "[optional:future_research] Samples for future research.",
      );
    await expect.poll(() => admin.locator(".preview h2").textContent()).toBe("Informed consent");
    await expect.poll(() => admin.locator(".preview h3").textContent()).toBe("Purpose");
    await expect
      .poll(() => admin.locator(".preview").textContent())
      .toContain("Sections to acknowledge: 1; comprehension questions: 0; optional items: 1.");
    await admin.getByLabel("IRB / ethics committee").fill("Central IRB");
    await admin.getByLabel("IRB approval date").fill("2026-01-20");
    await admin.getByRole("button", { name: "Record approved version" }).click();
    await expect
      .poll(() => admin.locator('tr[data-consent="ICF-1.0"]').textContent())
      .toContain("Central IRB, 2026-01-20");

    // The coordinator accepts the invitation; without a delegation, enrolling is refused.
    const coord = await (await browser.newContext()).newPage();
    await acceptInvitation(coord, "cole@e2e.test", "violet harbor lantern 31");
    await signInAndEnrol(coord, "cole@e2e.test", "violet harbor lantern 31");
    await coord.goto(`${portal.url}/studies/E2E-1/participants`);
    await coord.getByRole("button", { name: "Enroll a participant" }).click();
    await expect
      .poll(() => coord.getByRole("alert").textContent())
      .toMatch(/enrollment at this site has not been delegated to you/);
    await shot(coord, "03-coordinator-refused");

    // The investigator accepts, enrols a second factor (required for the role) and delegates.
    const inv = await (await browser.newContext()).newPage();
    await acceptInvitation(inv, "ivy@e2e.test", "granite meadow puzzle 52");
    const ivySecret = (await signInAndEnrol(inv, "ivy@e2e.test", "granite meadow puzzle 52"))!;
    await inv.goto(`${portal.url}/studies/E2E-1/delegation`);
    for (const task of ["data_entry", "enrollment"]) {
      await inv.getByLabel("Staff member").selectOption("cole@e2e.test"); // picked from the site's staff
      await inv.getByLabel("Task", { exact: true }).selectOption(task);
      await inv.getByLabel("From (YYYY-MM-DD)").fill("2026-01-01");
      await inv.getByLabel("Training course").fill("ICH E6(R3) GCP");
      await inv.getByLabel("Training completed on").fill("2025-12-01");
      await inv.getByLabel("Evidence (certificate file)").setInputFiles({
        name: "gcp.pdf",
        mimeType: "application/pdf",
        buffer: Buffer.from("%PDF-1.4 GCP certificate of Cole"),
      });
      await inv.getByRole("button", { name: "Delegate" }).click();
      await expect.poll(() => inv.getByRole("status").textContent()).toContain("Saved, and sealed into the log.");
    }
    await expect.poll(() => inv.locator("tr[data-delegation]").count()).toBe(2);
    await shot(inv, "04-investigator-delegation-log");

    // Now the coordinator may enrol: the first subject code of the site.
    await coord.goto(`${portal.url}/studies/E2E-1/participants`);
    await coord.getByRole("button", { name: "Enroll a participant" }).click();
    await expect.poll(() => coord.getByRole("status").textContent()).toContain("Enrolled SITE-A-001.");
    await expect.poll(() => coord.locator('tr[data-subject="SITE-A-001"]').count()).toBe(1);
    await shot(coord, "05-coordinator-enrolled");

    // CRF entry with field-level validation, then a correction with a reason; the history keeps both versions
    // and the seal status turns to sealed.
    await coord.getByRole("link", { name: "SITE-A-001" }).click();
    await coord.locator('[data-enter="VITALS-SCREENING"]').click();
    await coord.getByLabel("Systolic BP *").fill("300");
    await coord.getByRole("button", { name: "Save" }).click();
    await expect
      .poll(() => coord.locator("#f_sbp-error").textContent())
      .toMatch(/Systolic BP must be between 50 and 250 mmHg/);
    await coord.getByLabel("Systolic BP *").fill("120");
    await coord.getByLabel("Smoker").selectOption("N");
    await coord.getByRole("button", { name: "Save" }).click();
    // No CRF data before a complete consent (ADR 0021): the page names the subject and the reason.
    await expect
      .poll(() => coord.getByRole("alert").textContent())
      .toMatch(/^subject SITE-A-001 has not consented yet: no CRF data may be recorded before a complete consent/);
    // The administrator allows VITALS before consent (pre-screening) on the settings page; the save then goes in.
    await admin.goto(`${portal.url}/studies/E2E-1/settings`);
    await admin.getByLabel("VITALS").check();
    await admin.getByRole("button", { name: "Save settings" }).click();
    await expect
      .poll(() => admin.getByRole("status").textContent())
      .toBe("Settings version 1 saved and sealed: VITALS may be recorded before consent.");
    await coord.getByRole("button", { name: "Save" }).click();
    await coord.waitForURL(/\/records\//);
    await coord.getByLabel("Systolic BP *").fill("122");
    await coord.getByRole("button", { name: "Save correction" }).click();
    await expect.poll(() => coord.getByRole("alert").textContent()).toMatch(/reason for (the )?change/);
    await coord.getByLabel("Systolic BP *").fill("122");
    await coord.getByLabel("Reason for change *").fill("transcription error");
    await coord.getByRole("button", { name: "Save correction" }).click();
    await expect.poll(() => coord.locator('tr[data-version="2"]').textContent()).toContain("sbp: 120 → 122");
    await expect.poll(() => coord.locator('tr[data-version="2"]').textContent()).toContain("transcription error");
    await expect
      .poll(
        async () => {
          await coord.reload();
          return coord.locator('tr[data-version="1"] td[data-seal]').textContent();
        },
        { timeout: 60_000 },
      )
      .toMatch(/^sealed in batch \d+/);
    await shot(coord, "06-record-history");
    const recordUrl = coord.url();

    // The investigator signs (password and a fresh authenticator code; a code is never accepted twice). The
    // enrolment may have used the current step's code: the next step's is fresh, and accepted (one step of skew).
    await inv.goto(recordUrl);
    await inv.getByLabel("Meaning of this signature").selectOption("approved");
    await inv.getByLabel("Your password").fill("granite meadow puzzle 52");
    await inv.getByLabel("Authenticator code").fill(await nextStepTotp(ivySecret));
    await inv.getByRole("button", { name: "Sign", exact: true }).click();
    await expect
      .poll(() => inv.locator('[data-signature="valid"]').textContent())
      .toMatch(/Ivy Investigator, .* UTC, meaning: approved \(version 2\)/);

    // A monitor raises a query on the field; the coordinator answers; the monitor closes it.
    const mon = await (await browser.newContext()).newPage();
    await acceptInvitation(mon, "mo@e2e.test", "copper window orchard 73");
    await signInAndEnrol(mon, "mo@e2e.test", "copper window orchard 73");
    await mon.goto(recordUrl);
    await mon.getByLabel("Field").selectOption("sbp");
    await mon.getByLabel("Query").fill("Please confirm 122 against the source.");
    await mon.getByRole("button", { name: "Raise query" }).click();
    await expect.poll(() => mon.locator('tr[data-query="open"]').count()).toBe(1);
    await coord.goto(recordUrl);
    await coord.getByLabel("Answer").fill("Confirmed against the clinic chart.");
    await coord.getByRole("button", { name: "Answer", exact: true }).click();
    await expect.poll(() => coord.locator('tr[data-query="answered"]').count()).toBe(1);
    await mon.goto(recordUrl);
    await mon.getByRole("button", { name: "Close", exact: true }).click();
    await expect.poll(() => mon.locator('tr[data-query="closed"]').count()).toBe(1);
    await shot(mon, "07-monitor-query-closed");

    // A data manager locks the record: the coordinator can no longer edit it.
    const dm = await (await browser.newContext()).newPage();
    await acceptInvitation(dm, "dee@e2e.test", "silver canyon ribbon 84");
    await signInAndEnrol(dm, "dee@e2e.test", "silver canyon ribbon 84");
    await dm.goto(recordUrl);
    await dm.getByLabel("Reason to lock").fill("cleaned for interim analysis");
    await dm.getByRole("button", { name: "Lock record" }).click();
    await expect.poll(() => dm.locator("[data-lock]").textContent()).toContain("cleaned for interim analysis");
    await coord.goto(recordUrl);
    expect(await coord.getByRole("button", { name: "Save correction" }).count()).toBe(0);
    const refused = await coord.request.put(
      `${portal.url}/api/v1/studies/E2E-1/records/${recordUrl.split("/").pop()}`,
      { data: { data: { sbp: 130 }, reason: "late" }, headers: { origin: portal.url } },
    );
    expect(refused.status()).toBe(423);
    await shot(coord, "08-record-locked");
    const kinds =
      await sql`SELECT e.kind FROM ledger_entries e JOIN studies s ON s.id = e.study_id WHERE s.code = 'E2E-1'`;
    // Every audit-trail event of the study is an entry of its own (ADR 0016): as many as the study's events.
    const [events] = await sql`SELECT count(*)::int AS n FROM audit_events a
      JOIN studies s ON s.id = a.study_id WHERE s.code = 'E2E-1'`;
    expect(kinds.filter((k) => k.kind === "audit.event").length).toBe(events.n);
    expect(events.n).toBeGreaterThan(0);
    expect(
      kinds
        .map((k) => k.kind)
        .filter((k) => k !== "audit.event")
        .sort(),
    ).toEqual(
      [
        "consent_document.approved",
        "study.settings_changed",
        "delegation.granted",
        "delegation.granted",
        "form.approved",
        "participant.enrolled",
        "record.saved",
        "record.saved",
        "signature.applied",
        "query.opened",
        "query.answered",
        "query.closed",
        "lock.set",
        "role.granted",
        "role.granted",
        "role.granted",
        "role.granted",
        "site.added",
        "site.added",
        "study.registered",
      ].sort(),
    );
  });
});
