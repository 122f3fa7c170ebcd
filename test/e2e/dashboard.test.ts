/**
 * The study home page's "How is my study going" panel (issue 18, ADR 0031) in Chromium, against a PostgreSQL-backed
 * demo portal, on a desktop (1366x900) and a phone (390x844): the operator sets enrolment targets with the CLI, the
 * admin changes them on the settings page; the numbers the page's tables show (read from the <table>s of the
 * "Numbers" disclosures) equal what independent SQL over the portal's own database says. Charts are server-rendered
 * SVG scaled by their viewBox; the phone's page does not scroll sideways. Screenshots in test-results/screenshots.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import postgres from "postgres";
import type { Browser, Page } from "playwright-core";
import { cli, demoPasswordOf, startPortal, type Portal } from "../helpers/portal.ts";
import { demoClone } from "../helpers/demo-snapshot.ts";
import { launchChromium, shot, signInAndEnrol } from "../helpers/browser.ts";

let portal: Portal;
let browser: Browser;
let pg: { url: string; drop: () => Promise<void> };
let sql: postgres.Sql;
let demoPassword: string;
let dataDir: string;

const DESKTOP = { viewport: { width: 1366, height: 900 } };
const PHONE = { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, locale: "en-US" };
const STUDY = "DEMO-001";

beforeAll(async () => {
  const clone = await demoClone("postgres"); // the demo seeded once per run (test/helpers/demo-snapshot.ts)
  pg = { url: clone.databaseUrl!, drop: clone.drop };
  dataDir = clone.dataDir;
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

async function signedIn(opts: Parameters<Browser["newContext"]>[0], email: string): Promise<Page> {
  const p = await (await browser.newContext(opts)).newPage();
  await signInAndEnrol(p, portal.url, email, demoPassword);
  return p;
}

/** A numbers table of the panel as {row header: [cells]}. */
async function table(p: Page, metric: string): Promise<Record<string, string[]>> {
  const rows = await p.$$eval(`table[data-metric="${metric}"] tbody tr`, (trs) =>
    trs.map((tr) => [...tr.children].map((c) => (c.textContent ?? "").trim())),
  );
  return Object.fromEntries(rows.map(([h, ...cells]) => [h, cells]));
}

/** What the database says, by independent SQL (not the service's queries). */
async function expected() {
  const [study] = await sql`SELECT id FROM studies WHERE code = ${STUDY}`;
  const people = await sql`SELECT s.code, p.disposition FROM participants p JOIN sites s ON s.id = p.site_id
    WHERE p.study_id = ${study.id}`;
  const enrolled = people.filter((r) =>
    ["enrolled", "randomized", "discontinued", "completed"].includes(r.disposition),
  ).length;
  const recs = await sql`SELECT r.id, r.status, r.participant_id, r.current_version, v.data_text, v.missing_text,
      f.definition_text FROM records r
    JOIN record_versions v ON v.record_id = r.id AND v.version = r.current_version JOIN forms f ON f.id = v.form_id
    WHERE r.study_id = ${study.id}`;
  let complete = 0;
  for (const r of recs) {
    const data = JSON.parse(r.data_text);
    const missing = JSON.parse(r.missing_text ?? "{}");
    const def = JSON.parse(r.definition_text);
    const empty = (v: unknown) =>
      v === undefined || v === null || (typeof v === "string" && v.trim() === "") || (Array.isArray(v) && !v.length);
    const fields = def.fields as {
      name: string;
      required?: boolean;
      showIf?: string;
      type: string;
      section?: string;
    }[];
    const hiddenSections = new Set(
      ((def.sections ?? []) as { name: string; showIf?: string }[]).filter((x) => x.showIf).map((x) => x.name),
    );
    const counted = fields.filter(
      (f) => f.required && !f.showIf && f.type !== "calc" && !hiddenSections.has(f.section!),
    );
    if (!counted.some((f) => empty(data[f.name]) && !missing[f.name])) complete++;
  }
  const sdv = await sql`SELECT count(DISTINCT m.record_id)::int AS n FROM sdv_marks m JOIN records r
    ON r.id = m.record_id AND m.version = r.current_version WHERE r.study_id = ${study.id}`;
  const signed = await sql`SELECT count(DISTINCT s.record_id)::int AS n FROM signatures s JOIN records r
    ON r.id = s.record_id AND s.version = r.current_version WHERE r.study_id = ${study.id}`;
  const locks = await sql`SELECT scope, target_id FROM locks WHERE study_id = ${study.id} AND released_at IS NULL`;
  const locked = recs.filter(
    (r) =>
      r.status === "locked" ||
      locks.some((l) => l.scope === "study" || l.target_id === r.id || l.target_id === r.participant_id),
  ).length;
  const open = await sql`SELECT count(*)::int AS n FROM queries WHERE study_id = ${study.id} AND status = 'open'`;
  const [settings] = await sql`SELECT enrolment_targets FROM study_settings WHERE study_id = ${study.id}
    ORDER BY version DESC LIMIT 1`;
  return {
    screened: people.length,
    screenFailed: people.filter((r) => r.disposition === "screen_failed").length,
    screening: people.filter((r) => r.disposition === "screening").length,
    enrolled,
    records: recs.length,
    complete,
    sdv: sdv[0].n as number,
    awaiting: recs.length - (signed[0].n as number),
    locked,
    open: open[0].n as number,
    targets: settings.enrolment_targets as { total: number | null; sites: Record<string, number> },
  };
}

async function checkPanel(p: Page, name: string) {
  await p.goto(`${portal.url}/studies/${STUDY}`);
  await expect.poll(() => p.getByRole("heading", { name: "How is my study going" }).count()).toBe(1);
  const db = await expected();
  expect(db.records).toBeGreaterThan(0); // the demo has records: the check is not of zeros alone
  const sites = await table(p, "enrolment-sites");
  expect(sites["SITE-01"]).toEqual([String(db.enrolled), String(db.targets.sites["SITE-01"])]);
  const screening = await table(p, "screening");
  expect(screening).toEqual({
    Enrolled: [String(db.enrolled), String(db.screened)],
    "In screening": [String(db.screening), String(db.screened)],
    "Screen failed": [String(db.screenFailed), String(db.screened)],
  });
  const records = await table(p, "records");
  const of = String(db.records);
  expect(records).toEqual({
    Complete: [String(db.complete), of],
    Incomplete: [String(db.records - db.complete), of],
    "SDV done": [String(db.sdv), of],
    "To sign": [String(db.awaiting), of],
    Locked: [String(db.locked), of],
  });
  const queries = await table(p, "queries");
  expect(Object.values(queries).reduce((a, [n]) => a + Number(n), 0)).toBe(db.open);
  const weeks = await table(p, "enrolment-weeks");
  expect(Object.values(weeks).at(-1)?.[0]).toBe(String(db.enrolled));
  const pct = Math.round((100 * db.enrolled) / (db.targets.total ?? 1));
  await expect
    .poll(() => p.getByTestId("progress-summary").textContent())
    .toContain(`${db.enrolled} of ${db.targets.total} enrolled (${pct}%)`);
  // Server-rendered SVG charts, scaled to the page: nothing pushes the page sideways.
  expect(await p.locator(".progress-panel svg[viewBox]").count()).toBeGreaterThanOrEqual(3);
  const width = await p.evaluate(() => document.documentElement.scrollWidth);
  const wider = await p.evaluate(() =>
    [...document.querySelectorAll("body *")]
      .filter((e) => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1)
      .slice(0, 5)
      .map((e) => `${e.tagName.toLowerCase()} in "${e.closest("section")?.querySelector("h2")?.textContent}"`),
  );
  expect(width, `elements wider than the page: ${wider.join(", ")}`).toBeLessThanOrEqual(p.viewportSize()!.width);
  await p.locator(".progress-panel details.numbers summary").first().click();
  await p.locator("#progress-heading").scrollIntoViewIfNeeded();
  await shot(p, name);
  return db;
}

describe("the study progress panel", () => {
  it("targets from the CLI and the settings page; the desktop panel's numbers equal the database's", async () => {
    const bad = cli(["studies", "targets", "--study", STUDY, "--total", "-3"], {
      DATA_DIR: dataDir,
      DATABASE_URL: pg.url,
    });
    expect(bad.code).toBe(1);
    expect(bad.stderr.trim().split("\n")).toHaveLength(1);
    const ok = cli(["studies", "targets", "--study", STUDY, "--total", "30", "--site", "SITE-01=30"], {
      DATA_DIR: dataDir,
      DATABASE_URL: pg.url,
    });
    expect(ok.stderr).toBe("");
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/^DEMO-001 settings v\d+: enrolment target 30; sites: SITE-01 30/);

    const admin = await signedIn(DESKTOP, "admin@demo.trialseal.test");
    await admin.goto(`${portal.url}/studies/${STUDY}/settings`);
    await admin.getByLabel("Study total").fill("24");
    await admin.getByLabel(/Site SITE-01/).fill("24");
    await admin.getByRole("button", { name: "Save enrolment targets" }).click();
    await expect.poll(() => admin.locator("body").textContent()).toMatch(/enrolment target 24 for the study/);
    const db = await checkPanel(admin, "dashboard-desktop");
    expect(db.targets).toEqual({ total: 24, sites: { "SITE-01": 24 } });
  });

  it("on a phone the coordinator (site SITE-01) reads the same numbers, without sideways scrolling", async () => {
    const phone = await signedIn(PHONE, "coordinator@demo.trialseal.test");
    await checkPanel(phone, "dashboard-phone");
  });
});
