/**
 * Issue 20's journey, end to end, in Chromium against a PostgreSQL portal (no demo seed: a study of its own, made
 * with the CLI): the admin registers protocol 1.0 and SAP 1.0 (PDFs made here with pdfkit), enters the outcome list,
 * amends the SAP to 1.1 with a reason and publishes the registration page; signed out, on a phone, a visitor drops
 * the SAP 1.1 PDF (registered, with its commit time) and another PDF (not registered); the unblinded statistician
 * generates and commits a list stratified by two sites; 40 participants are enrolled through the API and consented,
 * three randomized by a coordinator on the participant page (number, never the arm) and the rest through the API,
 * 20 per stratum; an investigator unblinds one in an emergency with a reason (and sees the arm); the data manager
 * locks the database and the statistician unblinds the study; the allocations file downloaded from the lock page
 * verifies offline with `trialseal verify-allocations --pin SHA256-OF-THE-TRUST-POLICY` (exit 0: 40 allocations in
 * 2 strata) and in the browser verifier (/verify); a copy with one slot's arm changed exits 1 naming that slot.
 * Screenshots: test-results/screenshots/journey-*.png.
 */
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import type { Browser, Page } from "playwright-core";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from "vitest";
import type { AppContext } from "../../app/platform/context.server.ts";
import { createAppContext } from "../../app/platform/context.server.ts";
import { parseEnv } from "../../app/platform/env.server.ts";
import { launchChromium, SCREENSHOTS, shot, signInAndEnrol } from "../helpers/browser.ts";
import { giveCompleteConsent } from "../helpers/consent.ts";
import { createScratchPostgres } from "../helpers/db.ts";
import { cliWithInput, inPool, onePagePdf } from "../helpers/journey.ts";
import { type Portal, startPortal, tempDataDir } from "../helpers/portal.ts";
import { waitFor } from "../helpers/wait.ts";

const DESKTOP = { viewport: { width: 1366, height: 900 } };
const PHONE = { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, locale: "en-US" };
const CODE = "JRNY-20";
const DOMAIN = "journey.trialseal.test";
const PASSWORD = "journey amber otter winter forty-two";
const ARMS = /Zentrolimab|Placebo|KIT-ZEN|KIT-PBO/;
const SAP_REASON = "Sensitivity analysis added for participants who miss the week 12 visit";
const EMERGENCY_REASON = "Anaphylaxis after the second dose; the emergency physician needs the treatment";

let pg: { url: string; drop: () => Promise<void> };
let portal: Portal;
let browser: Browser;
let sql: postgres.Sql;
let ctx: AppContext;
let env: Record<string, string>;
let dir: string;

const url = (p: string) => `${portal.url}${p}`;
const scrollWidth = (p: Page) => p.evaluate(() => document.documentElement.scrollWidth);
const daysAgo = (days: number) => new Date(Date.now() - days * 86_400_000).toISOString().slice(0, 10);
const email = (key: string) => `${key}@${DOMAIN}`;

/** The CLI on the portal's database and DATA_DIR (its keys: the trust policy is the portal's). */
const cli = (args: string[], input = "") => cliWithInput(args, env, input);

/** Every page opened, to keep a screenshot of each when the journey fails. */
const pages: Page[] = [];
async function newPage(opts: Parameters<Browser["newContext"]>[0]): Promise<Page> {
  const p = await (await browser.newContext(opts)).newPage();
  pages.push(p);
  return p;
}

async function signedIn(opts: Parameters<Browser["newContext"]>[0], key: string): Promise<Page> {
  const p = await newPage(opts);
  await signInAndEnrol(p, portal.url, email(key), PASSWORD);
  return p;
}

/** POST JSON to the API with the study's token. */
async function api(token: string, p: string, body: unknown) {
  const res = await fetch(url(p), {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

beforeAll(async () => {
  pg = await createScratchPostgres();
  const dataDir = tempDataDir();
  dir = tempDataDir();
  env = { DATA_DIR: dataDir, DATABASE_URL: pg.url, SEED_DEMO: "false" };
  [portal, browser] = await Promise.all([startPortal(env), launchChromium()]);
  sql = postgres(pg.url, { max: 2, onnotice: () => {} });
  // The portal's own configuration (its secrets and keys in DATA_DIR): consent is given through the services.
  ctx = await createAppContext(parseEnv({ NODE_ENV: "development", ...env }), { migrate: false });
});
afterAll(async () => {
  if (process.env.E2E_DEBUG) console.log(portal?.output());
  await ctx?.database.close();
  await browser?.close();
  await sql?.end();
  await portal?.stop();
  await pg?.drop();
});

describe("issue 20 journey: sealed documents, public check, committed list, 40 allocations verified offline", () => {
  it("from the protocol upload to every allocation proven against the committed root", async () => {
    onTestFailed(async () => {
      for (const [i, p] of pages.entries()) await shot(p, `journey-failed-page-${i}`).catch(() => {});
    });
    // ---- The study, its staff and an API token, with the CLI ----------------------------------------------------
    const created = await cli([
      "studies",
      "create",
      "--code",
      CODE,
      "--title",
      "Journey: zentrolimab versus placebo",
      "--site",
      "S1=North Hospital",
      "--site",
      "S2=South Clinic",
    ]);
    expect(created.code, created.stderr).toBe(0);
    const staff = [
      ["admin", "admin"],
      ["stat", "unblinded_statistician"],
      ["dm", "data_manager"],
      ["coord", "coordinator", "S1"],
      ["inv", "investigator", "S1"],
    ] as const;
    const [policy, token, ...made] = await Promise.all([
      cli(["trust-policy"]),
      cli(["tokens", "create", "--study", CODE, "--name", "journey enrolment"]),
      ...staff.map(([key, role, site]) =>
        cli(
          [
            "users",
            "create",
            "--email",
            email(key),
            "--role",
            role,
            "--study",
            CODE,
            ...(site ? ["--site", site] : []),
            "--name",
            `Journey ${key}`,
            "--password-stdin",
          ],
          PASSWORD,
        ),
      ),
    ]);
    for (const r of [policy, token, ...made]) expect(r.code, r.stderr).toBe(0);
    const pin = createHash("sha256").update(policy.stdout).digest("hex");
    const apiToken = token.stdout.trim();

    // ---- 1. The admin: protocol 1.0, SAP 1.0, the outcome list, SAP 1.1 with a reason, the public page ----------
    const admin = await signedIn(DESKTOP, "admin");
    await admin.goto(url(`/studies/${CODE}/documents`));
    const protocol = await onePagePdf(`${CODE} protocol version 1.0`, ["Randomized, double-blind, two sites."]);
    const sap10 = await onePagePdf(`${CODE} statistical analysis plan 1.0`, ["Primary: SBP change at week 12."]);
    const sap11 = await onePagePdf(`${CODE} statistical analysis plan 1.1`, ["Adds a sensitivity analysis."]);
    const register = async (f: {
      type: "protocol" | "sap";
      version: string;
      pdf: Buffer;
      replaces?: string;
      reason?: string;
    }) => {
      const form = admin.locator("[data-register-form]");
      await form.getByLabel("Type").selectOption(f.type);
      await form.getByLabel(/^Version/).fill(f.version);
      await form.getByLabel("Approval date").fill(daysAgo(f.replaces ? 2 : 20));
      await form.getByLabel(/^Approving body/).fill("Journey Central Ethics Committee");
      if (f.replaces)
        await form
          .getByLabel(/^Replaces/)
          .selectOption({ label: `Statistical analysis plan (SAP) version ${f.replaces}` });
      await form.getByLabel(/^Reason/).fill(f.reason ?? "");
      await form.getByLabel("PDF file").setInputFiles({
        name: `${f.type}-${f.version}.pdf`,
        mimeType: "application/pdf",
        buffer: f.pdf,
      });
      await form.getByRole("button", { name: "Register and seal" }).click();
      await expect
        .poll(() => admin.locator(`[data-document-type="${f.type}"] [data-version="${f.version}"]`).count())
        .toBe(1);
    };
    await register({ type: "protocol", version: "1.0", pdf: protocol });
    await register({ type: "sap", version: "1.0", pdf: sap10 });

    await admin.goto(url(`/studies/${CODE}/outcomes`));
    await admin.locator("#o-0-type").selectOption("primary");
    await admin.locator("#o-0-name").fill("Change in systolic blood pressure");
    await admin.locator("#o-0-measure").fill("Seated systolic blood pressure (mmHg), mean of three readings");
    await admin.locator("#o-0-timePoint").fill("Week 12");
    await admin.locator("#o-0-analysis").fill("ANCOVA adjusted for baseline and site");
    await admin.getByRole("button", { name: "Save and seal the list" }).click();
    await expect.poll(() => admin.getByRole("status").first().textContent()).toContain("Outcome list version 1 saved");
    await shot(admin, "journey-01-outcomes-desktop");

    await admin.goto(url(`/studies/${CODE}/documents`));
    await register({ type: "sap", version: "1.1", pdf: sap11, replaces: "1.0", reason: SAP_REASON });
    const sapCard = admin.locator('[data-document-type="sap"] [data-version="1.1"]');
    expect(await sapCard.locator("[data-reason]").textContent()).toBe(SAP_REASON);
    const sap11Sha = createHash("sha256").update(sap11).digest("hex");
    expect(await sapCard.locator("[data-sha256]").textContent()).toBe(sap11Sha);
    await shot(admin, "journey-02-documents-desktop");

    await admin.goto(url(`/studies/${CODE}/registration`));
    await admin.getByRole("button", { name: "Publish the public page" }).click();
    await expect.poll(() => admin.locator("[data-registration]").getAttribute("data-registration")).toBe("published");
    await shot(admin, "journey-03-registration-desktop");

    // ---- 2. Signed out, on a phone: the SAP 1.1 PDF is registered (with its commit time), another is not -------
    const visitor = await newPage(PHONE);
    const checkPdf = async (name: string, bytes: Buffer) => {
      await visitor.locator("#pdf-check-file").setInputFiles({ name, mimeType: "application/pdf", buffer: bytes });
      const result = visitor.locator("[data-check-result]");
      await expect
        .poll(async () => (await result.count()) > 0 && (await result.textContent())?.includes(name))
        .toBe(true);
      return { kind: await result.getAttribute("data-check-result"), text: (await result.textContent()) ?? "" };
    };
    // The portal's sealer seals within a second or so: reload until the verdict gives the commit time.
    const registered = await waitFor(
      async () => {
        await visitor.goto(url(`/registry/${CODE}`));
        await expect.poll(() => visitor.locator("[data-pdf-check]").getAttribute("data-pdf-check")).toBe("ready");
        const r = await checkPdf("sap-1.1.pdf", sap11);
        return r.text.includes("committed on") && r;
      },
      { what: "the public page to show SAP 1.1 as registered and committed" },
    );
    expect(registered.kind).toBe("registered");
    expect(registered.text).toMatch(/^This is a registered version: version 1\.1 of the statistical analysis plan, /);
    expect(registered.text).toMatch(/, committed on \d{4}-\d\d-\d\d \d\d:\d\d UTC \(sealed in batch \d+ of the log\)/);
    expect(await scrollWidth(visitor)).toBeLessThanOrEqual(390);
    await shot(visitor, "journey-04-public-registered-phone");
    const unknown = await onePagePdf(`${CODE} statistical analysis plan 1.2 (draft)`, ["Never registered."]);
    const no = await checkPdf("sap-1.2-draft.pdf", unknown);
    expect(no.kind).toBe("not-registered");
    expect(no.text).toContain("This file is not a registered version of any document of this study.");
    expect(await scrollWidth(visitor)).toBeLessThanOrEqual(390);
    await shot(visitor, "journey-05-public-not-registered-phone");

    // ---- 3. The unblinded statistician generates and commits a list: two strata (sites S1 and S2) ---------------
    const stat = await signedIn(DESKTOP, "stat");
    await stat.goto(url(`/studies/${CODE}/randomization`));
    const design = stat.locator("[data-design-form]");
    await design.getByLabel(/^Arms/).fill("ZEN, Zentrolimab 5 mg, 1\nPBO, Placebo, 1");
    await design.getByLabel(/^Block sizes/).fill("4, 6");
    await design.getByLabel("Slots per stratum").fill("20");
    await design.getByLabel(/^Kit types/).fill("KIT-ZEN = ZEN\nKIT-PBO = PBO");
    for (const s of ["S1", "S2"]) expect(await design.getByLabel(new RegExp(`^\\s*${s} `)).isChecked()).toBe(true);
    await stat.getByRole("button", { name: "Generate a list" }).click();
    // The draft is made (a link to preview it) or refused (an alert, shown in the failure message).
    const previewLink = stat.getByRole("link", { name: "Preview the new draft" });
    await expect
      .poll(async () => (await stat.getByRole("alert").count()) + (await previewLink.count()))
      .toBeGreaterThan(0);
    expect(await stat.getByRole("alert").count(), (await stat.locator("main").textContent()) ?? "").toBe(0);
    await previewLink.click();
    await expect.poll(() => stat.locator("[data-preview] tbody tr").count()).toBe(2);
    await shot(stat, "journey-06-list-preview-desktop");
    await stat.getByLabel("I understand that committing is final").check();
    await stat.getByRole("button", { name: "Commit this list" }).click();
    await expect.poll(() => stat.locator("[data-committed]").getAttribute("data-committed")).toBe("yes");
    expect(await stat.locator("[data-strata] tbody tr").count()).toBe(2);

    // ---- 4. 40 participants enrolled through the API and consented; 3 randomized on the page, 37 by the API ----
    const subjects = await inPool(
      Array.from({ length: 40 }, (_, i) => (i < 20 ? "S1" : "S2")),
      4,
      async (site) => {
        const r = await api(apiToken, `/api/v1/studies/${CODE}/participants`, { site, disposition: "enrolled" });
        expect(r.status, JSON.stringify(r.body)).toBe(201);
        return String(r.body.subject);
      },
    );
    expect(new Set(subjects).size).toBe(40);
    // Paper consent, scanned and attested (what the other randomization tests do): one at a time, since each
    // attestation re-enters the investigator's password and concurrent attempts from one address are throttled.
    for (const s of subjects) await giveCompleteConsent(ctx, CODE, s);

    const coord = await signedIn(PHONE, "coord");
    for (const [i, subject] of ["S1-001", "S1-002", "S1-003"].entries()) {
      await coord.goto(url(`/studies/${CODE}/participants/${subject}`));
      await coord.getByRole("button", { name: "Randomize" }).click();
      await expect.poll(() => coord.locator("[data-randomization-number]").textContent()).toBe(`R01-000${i + 1}`);
      expect(await coord.locator("[data-arm]").count()).toBe(0);
      expect(await coord.locator("body").textContent()).not.toMatch(ARMS);
    }
    expect(await scrollWidth(coord)).toBeLessThanOrEqual(390);
    await shot(coord, "journey-07-randomized-coordinator-phone");

    const rest = subjects.filter((s) => !["S1-001", "S1-002", "S1-003"].includes(s));
    const numbers = await inPool(rest, 4, async (s) => {
      const r = await api(apiToken, `/api/v1/studies/${CODE}/participants/${s}/randomization`, { factors: {} });
      expect(r.status, JSON.stringify(r.body)).toBe(201);
      expect(JSON.stringify(r.body)).not.toMatch(ARMS);
      return `${r.body.stratum} ${r.body.number}`;
    });
    expect(new Set(numbers).size).toBe(37);
    await stat.reload();
    for (const s of ["site=S1", "site=S2"])
      await expect.poll(() => stat.locator(`[data-stratum="${s}"] td`).nth(2).textContent()).toBe("20");
    await shot(stat, "journey-08-list-20-per-stratum-desktop");

    // ---- 5. The investigator unblinds S1-002 in an emergency, with a reason; the arm is shown to them -----------
    const inv = await signedIn(PHONE, "inv");
    await inv.goto(url(`/studies/${CODE}/participants/S1-002`));
    expect(await inv.locator("[data-arm]").count()).toBe(0);
    await inv.getByText("Emergency unblinding").click();
    await inv.getByLabel("Reason for unblinding").fill(EMERGENCY_REASON);
    await inv.getByLabel("I confirm this participant must be unblinded now").check();
    await inv.getByRole("button", { name: "Unblind this participant" }).click();
    await expect.poll(() => inv.locator("[data-arm]").getAttribute("data-arm")).toMatch(/^(ZEN|PBO)$/);
    expect(await inv.locator("[data-emergency-unblinded]").count()).toBe(1);
    expect(await scrollWidth(inv)).toBeLessThanOrEqual(390);
    await shot(inv, "journey-09-emergency-unblinded-investigator-phone");
    // The coordinator still sees the number only.
    await coord.goto(url(`/studies/${CODE}/participants/S1-002`));
    await expect.poll(() => coord.locator("[data-randomization-number]").textContent()).toBe("R01-0002");
    expect(await coord.locator("body").textContent()).not.toMatch(ARMS);

    // ---- 6. The data manager locks the database; the statistician unblinds the study ---------------------------
    const dm = await signedIn(DESKTOP, "dm");
    await dm.goto(url(`/studies/${CODE}/lock`));
    await dm.getByLabel("Reason for the database lock").fill("Last participant out, every query closed");
    await dm.getByRole("button", { name: "Lock the database" }).click();
    await expect.poll(() => dm.locator("[data-lock-state]").getAttribute("data-lock-state")).toBe("locked");
    await shot(dm, "journey-10-locked-desktop");

    await stat.goto(url(`/studies/${CODE}/lock`));
    await stat.locator("summary", { hasText: "Unblind the study" }).click();
    await stat.getByLabel(/I understand that every participant's arm becomes visible/).check();
    await stat.getByRole("button", { name: "Unblind the study" }).click();
    await expect.poll(() => stat.locator("[data-unblinded]").getAttribute("data-unblinded")).toBe("yes");
    await shot(stat, "journey-11-unblinded-desktop");

    // ---- 7. The allocations file from the lock page, verified offline (CLI) and in the browser verifier ---------
    const [download] = await Promise.all([
      stat.waitForEvent("download"),
      stat.locator('[data-download="allocations"]').click(),
    ]);
    const file = path.join(dir, download.suggestedFilename() || `${CODE}-allocations.json`);
    await download.saveAs(file);
    const ok = await cli(["verify-allocations", file, "--pin", pin]);
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(
      /: VALID \(study JRNY-20; 2 strata, 40 slots, 40 allocations, 1 emergency unblindings?, \d+ bundles, every slot/,
    );
    expect(ok.stdout).toMatch(/^ {2}site=S1: 20 of 20 slots allocated \(/m);
    expect(ok.stdout).toMatch(/^ {2}site=S2: 20 of 20 slots allocated \(/m);

    const verifier = await newPage(DESKTOP);
    await verifier.goto(url("/verify"));
    await verifier.locator("#policy-pin").fill(pin);
    await verifier.locator("#allocations-file").setInputFiles(file);
    await verifier.getByRole("button", { name: "Verify" }).click();
    const report = verifier.locator(`section.report[data-file="${path.basename(file)}"]`);
    await expect.poll(() => report.count()).toBe(1);
    expect(await report.getAttribute("data-verdict")).toBe("valid");
    expect(await report.locator(".summary").textContent()).toMatch(
      /Every one of the 40 allocations of study JRNY-20 took exactly its slot/,
    );
    await shot(verifier, "journey-12-verify-allocations-valid-desktop");

    // The public page, signed out on the phone: the lock and unblinding times, no arm.
    await visitor.goto(url(`/registry/${CODE}`));
    await expect
      .poll(() => visitor.locator("[data-database-lock]").getAttribute("data-database-lock"))
      .toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(await visitor.locator("[data-unblinding]").getAttribute("data-unblinding")).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(await visitor.locator("body").textContent()).not.toMatch(ARMS);
    expect(await scrollWidth(visitor)).toBeLessThanOrEqual(390);
    await visitor.locator("#lock-title").scrollIntoViewIfNeeded();
    await visitor.screenshot({ path: path.join(SCREENSHOTS, "journey-13-public-locked-unblinded-phone.png") });

    // ---- 8. One slot's arm changed in a copy: exit 1 naming that slot ------------------------------------------
    const doc = JSON.parse(readFileSync(file, "utf8")) as {
      strata: { key: string; slots: { seq: number; arm: string }[] }[];
    };
    const s1 = doc.strata.find((s) => s.key === "site=S1")!;
    const slot = s1.slots[7];
    slot.arm = slot.arm === "ZEN" ? "PBO" : "ZEN";
    const tampered = path.join(dir, "tampered-allocations.json");
    writeFileSync(tampered, JSON.stringify(doc));
    const bad = await cli(["verify-allocations", tampered, "--pin", pin]);
    expect(bad.code, bad.stdout + bad.stderr).toBe(1);
    expect(bad.stdout).toMatch(/INVALID/);
    expect(bad.stderr).toMatch(new RegExp(`invalid: \\[SLOT_ALTERED\\] site=S1, R01-\\d{4} \\(slot ${slot.seq}[,)]`));
  }, 420_000);
});
