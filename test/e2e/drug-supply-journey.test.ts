/**
 * Issue 21's must-show journey, end to end, in Chromium against a PostgreSQL portal (no demo seed). A study of its
 * own is made through the services on the portal's database (test/helpers/supply-study.ts: a committed list with the
 * kit types KIT-ZOLVA / KIT-PLACQ, four randomized participants at S1) with some stock of the other kit type already
 * at S1 (one participant dispensed from it). Then, in the browser on a desktop (1366x900): the depot registers a lot
 * with its certificate of analysis (a PDF) and 20 kits; the sponsor releases it; the depot ships the 20 kits to S1;
 * the blinded site pharmacist receives them with a temperature excursion (quarantined); the sponsor releases them
 * with a reason; the pharmacist has a kit of the participant's allocation assigned and dispenses it (a kit of the
 * other type typed first is refused, the reason next to the field), records its return with counts, and records its
 * destruction (refused as their own witness), which the unblinded pharmacist witnesses in their own session with
 * their password and authenticator code; the sponsor recalls the lot and sees the affected participant
 * (`trialseal lots affected` prints it too); signed out, the kit's label token opens the public check (HTML and JSON;
 * an unknown token is a 404); the kit's custody file, downloaded from its page, verifies offline with
 * `trialseal verify-custody FILE --pin SHA256-OF-THE-TRUST-POLICY`; a dispensing row deleted behind the portal's back
 * is named by the integrity audit (review page). Last, a phone (390x844) pass over the pharmacy page, the kit page
 * and the public kit page: no sideways scroll. Screenshots: test-results/screenshots/drug-supply-*.png.
 */
import { createHash } from "node:crypto";
import path from "node:path";
import type { Browser, Page } from "playwright-core";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from "vitest";
import { assignKit, dispenseKit } from "../../app/drug-supply/dispensing.server.ts";
import { registerKits, registerLot, releaseLot } from "../../app/drug-supply/lots.server.ts";
import { receiveShipment, sendShipment } from "../../app/drug-supply/shipments.server.ts";
import type { AppContext } from "../../app/platform/context.server.ts";
import { createAppContext } from "../../app/platform/context.server.ts";
import { parseEnv } from "../../app/platform/env.server.ts";
import { launchChromium, SCREENSHOTS, shot, signInAndEnrol } from "../helpers/browser.ts";
import { createScratchPostgres } from "../helpers/db.ts";
import { cliWithInput, onePagePdf } from "../helpers/journey.ts";
import { type Portal, startPortal, tempDataDir } from "../helpers/portal.ts";
import { STAFF_PASSWORD } from "../helpers/study-staff.ts";
import { coaFile, lotInput } from "../helpers/supply-life.ts";
import { SUPPLY_SECRET, type SupplyStudy, supplyStudy } from "../helpers/supply-study.ts";
import { nextStepTotp } from "../helpers/totp.ts";
import { waitFor } from "../helpers/wait.ts";

const DESKTOP = { viewport: { width: 1366, height: 900 } };
const PHONE = { width: 390, height: 844 };
const CODE = "SUPPLY-E2E";
const DOMAIN = "supply-e2e.test";
const LOT = "LOT-E2E-01";
const STOCK_LOT = "LOT-E2E-00";
const QUARANTINE_REASON = "Stability data cover 14 °C for 48 hours";
const RECALL_REASON = "Out-of-specification dissolution at the 3-month stability time point";

let pg: { url: string; drop: () => Promise<void> };
let portal: Portal;
let browser: Browser;
let sql: postgres.Sql;
let ctx: AppContext;
let env: Record<string, string>;
let dir: string;

const url = (p: string) => `${portal.url}${p}`;
const cli = (args: string[], input = "") => cliWithInput(args, env, input);
/** No sideways scroll: the page is no wider than the window. */
const fitsWidth = (p: Page) =>
  p.evaluate(() => document.scrollingElement!.scrollWidth <= document.scrollingElement!.clientWidth);
const today = () => new Date().toISOString().slice(0, 10);

const pages: Page[] = [];
/** The authenticator secret each person enrolled at their first sign-in (for re-authentication). */
const totpSecrets: Record<string, string> = {};
async function signedIn(key: string): Promise<Page> {
  const p = await (await browser.newContext(DESKTOP)).newPage();
  pages.push(p);
  const secret = await signInAndEnrol(p, portal.url, `${key}@${DOMAIN}`, STAFF_PASSWORD);
  if (secret) totpSecrets[key] = secret;
  return p;
}

/** The page's flash (status) or error text once a form's answer is in. */
const statusText = (p: Page) => p.getByRole("status").first().textContent();

beforeAll(async () => {
  pg = await createScratchPostgres();
  dir = tempDataDir();
  env = { DATA_DIR: tempDataDir(), DATABASE_URL: pg.url, SEED_DEMO: "false" };
  [portal, browser] = await Promise.all([startPortal(env), launchChromium()]);
  sql = postgres(pg.url, { max: 2, onnotice: () => {} });
  // The portal's own configuration (its secrets and keys in DATA_DIR) for the study's set-up through the services.
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

/**
 * The study, its staff and participants; a lot of the kit type the journey does not use, three of its kits at S1
 * (received in range) and one dispensed to a participant allocated that type (the row the audit step deletes).
 */
async function setUp(): Promise<{ s: SupplyStudy; subject: string; kitType: string; stockKits: string[] }> {
  const s = await supplyStudy(ctx, CODE, { participants: 4 });
  const subject = s.subjects[0];
  const kitType = s.kitTypeOf[subject];
  const other = s.subjects.find((x) => s.kitTypeOf[x] !== kitType);
  if (!other) throw new Error("the list gave every participant the same kit type");
  await registerLot(ctx, s.p.depot, CODE, lotInput(STOCK_LOT, s.kitTypeOf[other]), coaFile);
  await releaseLot(ctx, s.p.admin, CODE, STOCK_LOT);
  await registerKits(ctx, s.p.depot, CODE, { lotNumber: STOCK_LOT, count: 3, units: 30 });
  const sent = await sendShipment(ctx, s.p.depot, CODE, {
    site: "S1",
    depot: "DEPOT-EU",
    fromLots: [{ lotNumber: STOCK_LOT, count: 3 }],
  });
  await receiveShipment(ctx, s.p.pharm, CODE, sent.number, { temperatureMinC: "3", temperatureMaxC: "7" });
  const { kit } = await assignKit(ctx, s.p.pharm, CODE, other);
  await dispenseKit(ctx, s.p.pharm, CODE, other, { kit });
  return { s, subject, kitType, stockKits: [kit, ...sent.kits.filter((k) => k !== kit)] };
}

describe("issue 21 journey: a lot from release to recall, a kit checked in public and proven offline", () => {
  it("releases, ships, quarantines, dispenses by allocation, returns, destroys, recalls; audit, custody", async () => {
    onTestFailed(async () => {
      for (const [i, p] of pages.entries()) await shot(p, `drug-supply-failed-page-${i}`).catch(() => {});
    });
    const [{ s, subject, kitType, stockKits }, policy] = await Promise.all([setUp(), cli(["trust-policy"])]);
    expect(policy.code, policy.stderr).toBe(0);
    const pin = createHash("sha256").update(policy.stdout).digest("hex");
    const supply = `/studies/${CODE}/supply`;

    // ---- 1. The depot registers the lot (with its CoA PDF) and 20 kits ------------------------------------------
    const depot = await signedIn("depot");
    await depot.goto(url(supply));
    await shot(depot, "drug-supply-01-hub-depot");
    await depot.goto(url(`${supply}/lots`));
    const reg = depot.locator("[data-register-lot]");
    await reg.getByLabel("Product (as labelled)").fill("ZX-101 10 mg tablets or matching placebo");
    await reg.getByLabel("Lot number").fill(LOT);
    await reg.getByLabel("Kit type").selectOption(kitType);
    await reg.getByLabel("Manufacturing date").fill("2026-01-10");
    await reg.getByLabel(/^Expiry date/).fill("2030-12-31");
    await reg.getByLabel(/^Lowest storage temperature/).fill("2");
    await reg.getByLabel(/^Highest storage temperature/).fill("8");
    await reg.getByLabel(/^Units taken a day/).fill("2");
    const coa = await onePagePdf(`Certificate of analysis: lot ${LOT}`, ["Assay 99.6 %. Dissolution conforms."]);
    await reg
      .getByLabel("Certificate of analysis (PDF)")
      .setInputFiles({ name: `coa-${LOT}.pdf`, mimeType: "application/pdf", buffer: coa });
    await reg.getByRole("button", { name: "Register and seal" }).click();
    const lotRow = depot.locator(`[data-lot="${LOT}"]`);
    await expect.poll(() => lotRow.count()).toBe(1);
    expect(await lotRow.locator("[data-kit-type]").textContent()).toBe(kitType);
    const kitsForm = depot.locator("[data-register-kits]");
    await kitsForm.getByLabel(LOT, { exact: true }).fill("20");
    await kitsForm.getByLabel(/^Units per kit/).fill("30");
    await kitsForm.getByRole("button", { name: "Register kits" }).click();
    await expect.poll(() => lotRow.locator("[data-kits]").getAttribute("data-kits")).toBe("20");
    await shot(depot, "drug-supply-02-lot-registered-depot");

    // ---- 2. The sponsor releases it -------------------------------------------------------------------------------
    const admin = await signedIn("admin");
    await admin.goto(url(`${supply}/lots`));
    const adminLot = admin.locator(`[data-lot="${LOT}"]`);
    expect(await adminLot.locator("[data-kit-type]").count()).toBe(0);
    const release = admin.locator('section[aria-labelledby="release-title"]');
    await release.getByLabel("Lot").selectOption(LOT);
    await release.getByRole("button", { name: "Release lot" }).click();
    await expect.poll(() => adminLot.locator("[data-status]").textContent()).toMatch(/^released \d{4}-\d\d-\d\d by /);
    await shot(admin, "drug-supply-03-lot-released-sponsor");

    // ---- 3. The depot ships the 20 kits to S1 ----------------------------------------------------------------------
    await depot.goto(url(`${supply}/shipments`));
    const send = depot.locator("[data-send-shipment]");
    await send.getByLabel("To site").selectOption("S1");
    await send.getByLabel(/^From depot/).fill("DEPOT-EU");
    await send.locator(`[id="count-${LOT}"]`).fill("20");
    await send.getByRole("button", { name: "Send and seal" }).click();
    // SHP-0001 is the set-up's stock shipment.
    await expect.poll(() => depot.locator('[data-shipment="SHP-0002"] [data-kit]').count()).toBe(20);
    await shot(depot, "drug-supply-04-shipment-sent-depot");

    // ---- 4. The blinded site pharmacist receives them with an excursion: quarantined ------------------------------
    const pharm = await signedIn("pharm");
    await pharm.goto(url(`${supply}/shipments`));
    const receive = pharm.locator('[data-receive="SHP-0002"]');
    await receive.getByLabel(/^Lowest temperature in transit/).fill("3.5");
    await receive.getByLabel(/^Highest temperature in transit/).fill("14");
    await receive.getByRole("button", { name: "Record receipt and seal" }).click();
    const shp = (p: Page) => p.locator('[data-shipment="SHP-0002"]');
    await expect.poll(() => shp(pharm).getAttribute("data-status")).toBe("quarantined");
    expect(await shp(pharm).textContent()).toContain("(excursion)");
    expect(await pharm.locator("body").textContent()).not.toMatch(SUPPLY_SECRET);
    await shot(pharm, "drug-supply-05-received-excursion-pharmacist");

    // ---- 5. The sponsor releases the quarantined kits with a reason -----------------------------------------------
    await admin.goto(url(`${supply}/shipments`));
    const decide = admin.locator('[data-decide="SHP-0002"]');
    await decide.getByLabel("Release the kits for use").check();
    await decide.getByLabel(/^Reason/).fill(QUARANTINE_REASON);
    await decide.getByRole("button", { name: "Decide and seal" }).click();
    await expect.poll(() => shp(admin).locator("[data-decision]").getAttribute("data-decision")).toBe("release");
    expect(await shp(admin).locator("[data-decision]").textContent()).toContain(QUARANTINE_REASON);
    await shot(admin, "drug-supply-06-quarantine-released-sponsor");

    // ---- 6. The pharmacist dispenses by allocation: a kit assigned, one of the other type refused, then it ------
    await pharm.goto(url(`${supply}/pharmacy`));
    await pharm.getByLabel(/^Participant/).selectOption(subject);
    await pharm.getByRole("button", { name: "Show the kit to dispense" }).click();
    await pharm.getByRole("button", { name: "Assign a kit" }).click();
    const proposed = pharm.locator("[data-proposed-kit]");
    await expect.poll(() => proposed.count()).toBe(1);
    const kit = (await proposed.getAttribute("data-proposed-kit"))!;
    const wrong = stockKits[1];
    await pharm.getByLabel("Kit number on the label").fill(wrong);
    await pharm.getByRole("button", { name: "Dispense", exact: true }).click();
    const kitError = pharm.locator("#dispense-kit-error");
    await expect.poll(() => kitError.count()).toBe(1);
    expect(await kitError.textContent()).toBe(
      `kit ${wrong} is not the kit assigned to ${subject} (kit ${kit}): dispense kit ${kit}`,
    );
    expect(await pharm.getByLabel("Kit number on the label").getAttribute("aria-invalid")).toBe("true");
    await shot(pharm, "drug-supply-07-wrong-kit-refused-pharmacist");
    await pharm.getByLabel("Kit number on the label").fill(kit);
    await pharm.getByRole("button", { name: "Dispense", exact: true }).click();
    await expect.poll(() => statusText(pharm)).toContain(`Kit ${kit} dispensed to ${subject}.`);
    await expect
      .poll(() => pharm.locator(`[data-inventory] [data-kit="${kit}"]`).getAttribute("data-location"))
      .toBe("dispensed");
    const blindedText = (await pharm.locator("body").textContent()) ?? "";
    expect(blindedText).not.toMatch(SUPPLY_SECRET);
    expect(blindedText).not.toContain(LOT);
    await shot(pharm, "drug-supply-08-dispensed-pharmacist");

    // ---- 7. Its return with counts (compliance shown) ------------------------------------------------------------
    const ret = pharm.locator("[data-return-form]");
    await ret.getByLabel("Kit number").fill(kit);
    await ret.getByLabel(/^Units returned/).fill("12");
    await ret.getByLabel("Date returned").fill(today());
    await ret.getByRole("button", { name: "Record the return" }).click();
    const compliance = pharm.locator("[data-returns] [data-compliance]");
    await expect.poll(() => compliance.count()).toBe(1);
    // Returned the day it was dispensed: no day has passed, so compliance is said not to be computed.
    expect(await compliance.textContent()).toMatch(new RegExp(`^Kit ${kit} returned with 12 units: compliance `));
    await shot(pharm, "drug-supply-09-returned-pharmacist");

    // ---- 8. Its destruction, recorded by the pharmacist, witnessed by another person in their own session -------
    await pharm.goto(url(`${supply}/destructions?at=S1`));
    await pharm.locator(`#destroy-kits input[value="${kit}"]`).check();
    await pharm.getByLabel(/^Method/).fill("Incineration by the hospital's licensed contractor");
    await pharm.getByRole("button", { name: "Record the destruction" }).click();
    const pending = pharm.locator("[data-pending-destructions] [data-destruction]");
    await expect.poll(() => pending.count()).toBe(1);
    // The recorder is not offered to witness their own destruction.
    expect(await pending.getByRole("button", { name: "Witness" }).count()).toBe(0);
    // Nor can they by posting the form themselves: the refusal names why.
    const selfWitness = await pharm.request.post(url(`${supply}/destructions`), {
      form: {
        intent: "witness",
        destruction: (await pending.getAttribute("data-destruction"))!,
        password: STAFF_PASSWORD,
      },
      headers: { origin: portal.url },
    });
    expect(selfWitness.status()).toBe(403);
    expect(await selfWitness.text()).toContain(
      "the witness must be someone other than the person who recorded the destruction",
    );
    await shot(pharm, "drug-supply-10-destruction-recorded-pharmacist");
    const witness = await signedIn("upharm");
    await witness.goto(url(`${supply}/destructions`));
    // The witness re-enters their password and authenticator code: they sign in their own name.
    const witnessForm = witness.locator("[data-pending-destructions] [data-witness-form]");
    await witnessForm.getByLabel(/^Your password/).fill(STAFF_PASSWORD);
    await witnessForm.getByLabel("Authenticator code").fill(await nextStepTotp(totpSecrets.upharm));
    await witnessForm.getByRole("button", { name: "Witness" }).click();
    const witnessed = witness.locator("[data-witnessed-destructions] [data-destruction]");
    await expect.poll(() => witnessed.count()).toBe(1);
    expect(await witnessed.textContent()).toContain(kit);
    await shot(witness, "drug-supply-11-destruction-witnessed-unblinded-pharmacist");

    // ---- 9. The sponsor recalls the lot: the affected participant listed, also by the CLI ----------------------
    await admin.goto(url(`${supply}/lots`));
    const recall = admin.locator("[data-recall-form]");
    await recall.getByLabel("Lot").selectOption(LOT);
    await recall.getByLabel("Reason").fill(RECALL_REASON);
    await recall.getByRole("button", { name: "Recall lot" }).click();
    const affected = admin.locator(`[data-recall="${LOT}"] [data-affected] tbody tr`);
    await expect.poll(() => affected.count()).toBe(1);
    expect(await affected.first().textContent()).toContain(subject);
    expect(await affected.first().textContent()).toContain(kit);
    await shot(admin, "drug-supply-12-recalled-sponsor");
    const listed = await cli(["lots", "affected", "--study", CODE, "--lot", LOT]);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toBe(`${subject}\n`);

    // ---- 10. Signed out: the public check by the label token (HTML, JSON, unknown 404) ---------------------------
    const recalledKit = (
      await sql`SELECT k.number, k.label_token FROM supply_kits k JOIN supply_lots l
      ON l.id = k.lot_id WHERE l.lot_number = ${LOT} AND k.number <> ${kit} ORDER BY k.number LIMIT 1`
    )[0];
    const token = String(recalledKit.label_token);
    const visitor = await (await browser.newContext(DESKTOP)).newPage();
    pages.push(visitor);
    const publicPage = await visitor.goto(url(`/kits/${token}`));
    expect(publicPage?.status()).toBe(200);
    expect(await visitor.locator("[data-verdict]").textContent()).toBe(`Genuine kit ${recalledKit.number}`);
    const publicText = (await visitor.locator("body").textContent()) ?? "";
    expect(publicText).toContain("Recalled: do not use this kit");
    for (const secret of [LOT, "S1", subject, kitType]) expect(publicText).not.toContain(secret);
    await shot(visitor, "drug-supply-13-public-kit-check");
    const asJson = await fetch(url(`/kits/${token}`), { headers: { accept: "application/json" } });
    expect(asJson.status).toBe(200);
    expect(asJson.headers.get("cache-control")).toBe("no-store");
    expect(await asJson.json()).toEqual({
      genuine: true,
      kit: recalledKit.number,
      recalled: true,
      quarantined: false,
      expired: false,
    });
    const unknownToken = "A".repeat(22);
    const unknownJson = await fetch(url(`/kits/${unknownToken}`), { headers: { accept: "application/json" } });
    expect(unknownJson.status).toBe(404);
    expect(await unknownJson.json()).toEqual({ genuine: false });
    const unknownPage = await visitor.goto(url(`/kits/${unknownToken}`));
    expect(unknownPage?.status()).toBe(404);
    expect(await visitor.locator("[data-kit-check]").getAttribute("data-kit-check")).toBe("unknown");
    await shot(visitor, "drug-supply-14-public-kit-unknown");

    // ---- 11. The kit's custody file from its page, verified offline -----------------------------------------------
    // Its entries must be sealed first (the portal's sealer does it within seconds): reload until it downloads.
    const file = await waitFor(
      async () => {
        await depot.goto(url(`${supply}/kits/${kit}`));
        const res = await depot.request.get(url(`${supply}/kits/${kit}/custody.json`));
        if (res.status() !== 200) return false;
        const [download] = await Promise.all([
          depot.waitForEvent("download"),
          depot.getByRole("link", { name: "Download the custody file" }).click(),
        ]);
        const f = path.join(dir, download.suggestedFilename() || `${CODE}-kit-${kit}-custody.json`);
        await download.saveAs(f);
        return f;
      },
      { what: `the custody file of kit ${kit} to be downloadable (its entries sealed)` },
    );
    expect(await depot.locator("[data-kit-state]").textContent()).toMatch(/destroyed/);
    await shot(depot, "drug-supply-15-kit-page-depot");
    const verified = await cli(["verify-custody", file, "--pin", pin]);
    expect(verified.code, verified.stdout + verified.stderr).toBe(0);
    expect(verified.stdout).toContain(`VALID (kit ${kit} of study ${CODE}`);

    // ---- 12. A dispensing row deleted behind the portal's back: the integrity audit names it --------------------
    const [gone] = await sql`SELECT d.id FROM supply_dispensings d JOIN supply_kits k ON k.id = d.kit_id
      WHERE k.number = ${stockKits[0]}`;
    await sql.begin(async (tx) => {
      await tx`SET LOCAL session_replication_role = replica`;
      await tx`DELETE FROM supply_dispensings WHERE id = ${gone.id}`;
    });
    await admin.goto(url(`/studies/${CODE}/review`));
    await admin.getByRole("button", { name: "Run the audit" }).click();
    await expect.poll(() => admin.locator("[data-audit-verdict]").getAttribute("data-audit-verdict")).toBe("findings");
    const finding = admin.locator('[data-finding="DATA_ROW_MISSING"]').filter({ hasText: "supply_dispensings" });
    await expect.poll(() => finding.count()).toBe(1);
    expect(await finding.textContent()).toContain(`supply_dispensings row ${gone.id}`);
    // The review page is long (every ledger entry): the audit's section alone.
    await admin
      .locator("#audit")
      .screenshot({ path: path.join(SCREENSHOTS, "drug-supply-16-audit-names-deleted-dispensing.png") });

    // ---- 13. On a phone: the pharmacy page, the kit page and the public kit page, no sideways scroll -----------
    await pharm.setViewportSize(PHONE);
    await pharm.goto(url(`${supply}/pharmacy?subject=${s.subjects[1]}`));
    await expect.poll(() => pharm.locator("[data-inventory]").count()).toBe(1);
    expect(await fitsWidth(pharm)).toBe(true);
    await shot(pharm, "drug-supply-17-pharmacy-phone");
    await pharm.goto(url(`${supply}/kits/${kit}`));
    expect(await pharm.locator("[data-kit-state]").count()).toBe(1);
    expect(await pharm.locator("body").textContent()).not.toMatch(SUPPLY_SECRET);
    expect(await fitsWidth(pharm)).toBe(true);
    await shot(pharm, "drug-supply-18-kit-page-phone");
    await visitor.setViewportSize(PHONE);
    await visitor.goto(url(`/kits/${token}`));
    expect(await fitsWidth(visitor)).toBe(true);
    await shot(visitor, "drug-supply-19-public-kit-check-phone");
  }, 300_000);
});
