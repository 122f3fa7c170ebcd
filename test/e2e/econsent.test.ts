/**
 * eConsent and the regulator's verification in a real browser (Chromium via playwright-core) on a
 * PostgreSQL-backed portal: the coordinator enrols a participant and invites them; the participant, on a
 * phone-sized viewport, passes the identity check with the code from the outbox (after a wrong one), is refused
 * with a name that does not match, signs; the coordinator countersigns; the participant downloads the receipt
 * PDF (text checked), watches the proof become sealed and anchored, opens the public verification page (no
 * personal data) and withdraws partially. The regulator downloads a bundle from the study review, verifies it
 * in /verify (all green), a copy with one byte changed (red, naming the step), and the same with the saved
 * verify.html opened from disk.
 */
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import postgres from "postgres";
import type { Browser, Page } from "playwright-core";
import { cliAsync, startPortal, type Portal, demoPasswordOf } from "../helpers/portal.ts";
import { demoClone } from "../helpers/demo-snapshot.ts";
import { launchChromium, shot, signInAndEnrol } from "../helpers/browser.ts";

let portal: Portal;
let browser: Browser;
let pg: { url: string; drop: () => Promise<void> };
let sql: postgres.Sql;
let demoPassword: string;
let env: Record<string, string>;
const dir = mkdtempSync(path.join(tmpdir(), "ts-econsent-"));
const NAME = "Philippa Zoltán-Okonkwo";
const EMAIL = "philippa.zo@example.org";

beforeAll(async () => {
  const clone = await demoClone("postgres"); // the demo seeded once per run (test/helpers/demo-snapshot.ts)
  pg = { url: clone.databaseUrl!, drop: clone.drop };
  const dataDir = clone.dataDir;
  env = { DATA_DIR: dataDir, DATABASE_URL: pg.url, LOCAL_ANCHOR_INTERVAL_MS: "500" };
  portal = await startPortal(env);
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

async function latestCode(address: string) {
  const rows = await sql`SELECT body FROM outbox WHERE to_address = ${address} AND kind = 'consent_code'
      ORDER BY created_at DESC LIMIT 1`;
  return /is (\d{6})\./.exec(String(rows[0]?.body ?? ""))![1];
}

const signIn = (page: Page, email: string) => signInAndEnrol(page, portal.url, email, demoPassword);

async function pdfText(file: string) {
  const { extractText, getDocumentProxy } = await import("unpdf");
  const { text } = await extractText(await getDocumentProxy(new Uint8Array(readFileSync(file))), { mergePages: true });
  return String(text).replace(/\s+/g, " ");
}

/** Every field of a proof bundle as a path (`checkpoints[].log.index`); arrays of hashes count as one field. */
function bundlePaths(v: unknown, at = ""): string[] {
  // The optional answers and the ledgers' receipts are named as a whole.
  if (v === null || typeof v !== "object" || at === "payload.options" || at.endsWith(".anchors")) return [at];
  if (Array.isArray(v))
    return v.some((x) => x !== null && typeof x === "object") ? v.flatMap((x) => bundlePaths(x, `${at}[]`)) : [at];
  return [...new Set(Object.entries(v).flatMap(([k, x]) => bundlePaths(x, at ? `${at}.${k}` : k)))];
}

describe("eConsent and verification in the browser (Chromium, PostgreSQL portal)", () => {
  it(
    "a participant signs on a phone, the coordinator countersigns, the receipt and proof follow, " +
      "the participant withdraws partially; a regulator verifies bundles in /verify",
    async () => {
      // The coordinator (delegated consent and enrollment in the demo) enrols a participant and invites them.
      const coord = await (await browser.newContext()).newPage();
      await signIn(coord, "coordinator@demo.trialseal.test");
      await coord.goto(`${portal.url}/studies/DEMO-001/participants`);
      await coord.getByLabel("Full name").fill(NAME);
      await coord.getByLabel("Email").fill(EMAIL);
      await coord.getByRole("button", { name: "Enroll a participant" }).click();
      // The demo's own participants (SITE-01-001, -002) consented on paper (ADR 0021): the new one is listed last.
      await expect.poll(() => coord.locator("[data-consent-state]").last().textContent()).toBe("not consented");
      await coord.locator("[data-consent-state]").last().click();
      await coord.waitForURL(/\/consent$/);
      const subject = /participants\/([^/]+)\/consent/.exec(coord.url())![1];
      // The invite button waits for a second member of staff (ADR 0018): the investigator confirms the contact.
      await expect.poll(() => coord.locator("[data-invite-blocked]").textContent()).toMatch(/second member of staff/);
      expect(await coord.getByRole("button", { name: "Create invitation" }).isDisabled()).toBe(true);
      const investigator = await (await browser.newContext()).newPage();
      await signIn(investigator, "investigator@demo.trialseal.test");
      await investigator.goto(`${portal.url}/studies/DEMO-001/participants/${subject}/consent`);
      await investigator.getByRole("button", { name: "Confirm contact" }).click();
      await expect
        .poll(() => investigator.locator("[data-signer-contact=participant] [data-confirmed-by]").textContent())
        .toMatch(/^confirmed by Ian Investigator on /);
      await coord.reload();
      await coord.getByRole("button", { name: "Create invitation" }).click();
      const link = (await coord.locator("[data-invitation-url]").textContent())!.trim();
      expect(link).toMatch(new RegExp(`^${portal.url}/consent/ci_[A-Za-z0-9_-]{43}$`));
      await expect
        .poll(() => coord.getByRole("status").textContent())
        .toMatch(/Invitation sent by email to p\*\*\*@e\*\*\*\.org/);
      await shot(coord, "10-consent-invitation");

      // The participant, on a phone: identity check first (a wrong code is refused with the attempts left).
      const phone = await (
        await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true })
      ).newPage();
      await phone.goto(link);
      await expect.poll(() => phone.locator('[data-step="identity"]').count()).toBe(1);
      await phone.getByRole("button", { name: "Send me a code" }).click();
      await expect
        .poll(() => phone.getByRole("status").textContent())
        .toMatch(/We sent a 6-digit code by email to p\*\*\*@e\*\*\*\.org/);
      const code = await latestCode(EMAIL);
      await phone.getByLabel("Code").fill(code === "000000" ? "111111" : "000000");
      await phone.getByRole("button", { name: "Continue" }).click();
      await expect
        .poll(() => phone.getByRole("alert").textContent())
        .toBe("That code is not correct. 4 attempts left.");
      await phone.getByLabel("Code").fill(code);
      await phone.getByRole("button", { name: "Continue" }).click();
      await expect.poll(() => phone.locator('[data-step="sign"]').count()).toBe(1);
      // The page fits the phone: no horizontal scrolling.
      expect(await phone.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);

      // Everything acknowledged and answered, but a name that does not match: refused, nothing signed.
      for (const box of await phone.locator('input[name="ack"]').all()) await box.check();
      await phone.locator('input[name="answer-q1"][value="yes"]').check();
      await phone.locator('input[name="option-future_research"][value="yes"]').check();
      await phone.getByLabel("Type your full name").fill("Philippa Someone");
      await phone.locator('input[name="confirm"]').check();
      // The demo has consented participants of its own (issue 22): count against what was there before.
      const signaturesBefore = (await sql`SELECT count(*)::int AS n FROM consent_signatures`)[0].n;
      await phone.getByRole("button", { name: "Sign" }).click();
      await expect
        .poll(() => phone.getByRole("alert").textContent())
        .toMatch(/The name you typed does not match the name the study team recorded/);
      expect((await sql`SELECT count(*)::int AS n FROM consent_signatures`)[0].n).toBe(signaturesBefore);
      await shot(phone, "11-consent-name-mismatch");
      // The form is shown again; sign properly.
      for (const box of await phone.locator('input[name="ack"]').all()) await box.check();
      await phone.locator('input[name="answer-q1"][value="yes"]').check();
      await phone.locator('input[name="option-future_research"][value="yes"]').check();
      await phone.getByLabel("Type your full name").fill(NAME);
      await phone.locator('input[name="confirm"]').check();
      await phone.getByRole("button", { name: "Sign" }).click();
      await expect
        .poll(() => phone.locator("[data-consent-state]").getAttribute("data-consent-state"))
        .toBe("awaiting_countersign");

      // The coordinator countersigns (re-authenticated) and the status turns to consented.
      await coord.reload();
      await coord.locator("#cs-password").fill(demoPassword);
      await coord.getByRole("button", { name: "Countersign" }).click();
      await expect
        .poll(() => coord.locator("h1 [data-consent-state]").getAttribute("data-consent-state"))
        .toBe("consented");
      expect(await coord.locator('tr[data-signature="participant"]').textContent()).toContain(NAME);

      // The participant's receipt: both signatures, and their proof turns sealed then anchored (the page
      // refreshes itself).
      await phone.reload();
      await expect
        .poll(() => phone.locator("[data-consent-state]").getAttribute("data-consent-state"))
        .toBe("consented");
      await expect
        .poll(() => phone.locator('tr[data-signature="participant"] [data-seal]').getAttribute("data-seal"), {
          timeout: 120_000,
        })
        .toBe("anchored");
      await expect
        .poll(() => phone.locator('tr[data-signature="staff"] [data-seal]').getAttribute("data-seal"), {
          timeout: 120_000,
        })
        .toBe("anchored");
      expect(await phone.locator('tr[data-signature="participant"] [data-seal]').textContent()).toMatch(
        /^sealed in batch \d+ \(seq \d+\), anchored on local$/,
      );
      await shot(phone, "12-consent-receipt-phone");

      // The receipt PDF: the document, both manifestations, the document hash and the verification link.
      const [download] = await Promise.all([
        phone.waitForEvent("download"),
        phone.locator("[data-receipt-pdf]").click(),
      ]);
      const pdfFile = path.join(dir, "receipt.pdf");
      await download.saveAs(pdfFile);
      const text = await pdfText(pdfFile);
      const verifyUrl = (await phone.locator("figure.qr a").getAttribute("href"))!;
      expect(verifyUrl).toMatch(new RegExp(`^${portal.url}/c/cv_[A-Za-z0-9_-]{43}$`));
      const docSha = (await sql`SELECT encode(body_sha256, 'hex') AS h FROM consent_documents WHERE code = 'ICF'`)[0]
        .h as string;
      for (const s of [
        "Consent receipt",
        NAME,
        "Cora Coordinator",
        "I agree to take part in this study",
        "Your data and your choices",
        "future research on blood pressure. — Yes",
        "anchored on local",
      ])
        expect(text).toContain(s);
      // Long tokens wrap across lines in the PDF: compare them without white space.
      for (const s of [docSha, verifyUrl]) expect(text.replace(/\s+/g, "")).toContain(s);

      // The public verification page behind the QR code: facts of the consent, no personal data, and exactly what
      // its proof bundle carries (every field of the bundle it serves is named in the list).
      const pub = await (await browser.newContext({ viewport: { width: 1366, height: 900 } })).newPage();
      await pub.goto(verifyUrl);
      expect(await pub.locator("main").textContent()).toContain(docSha);
      expect(await pub.locator("tr[data-signature]").count()).toBe(2);
      expect(await pub.content()).not.toMatch(/Philippa|Okonkwo|philippa\.zo|Cora/);
      expect(await pub.locator("[data-consent-status]").getAttribute("data-consent-status")).toBe("given");
      expect(await pub.locator("[data-consent-status]").textContent()).toMatch(
        /^Given on \d{4}-\d{2}-\d{2} \(UTC\)\. No withdrawal is recorded\.$/,
      );
      const carries = (await pub.locator("[data-bundle-carries]").textContent())!;
      for (const s of ["subject code", "SHA-256", "optional items, in clear", "HMAC-SHA-256", "receipts"])
        expect(carries).toContain(s);
      const publicBundle = await (await fetch(`${verifyUrl}/proof.json`)).json();
      const named = (await pub
        .locator("[data-bundle-carries] [data-fields]")
        .evaluateAll((els) => els.flatMap((e) => (e.getAttribute("data-fields") ?? "").split(" ")))) as string[];
      expect(bundlePaths(publicBundle).filter((f) => !named.includes(f))).toEqual([]);

      // Partial withdrawal: the treatment stops, follow-up continues, the optional item is withdrawn.
      // The receipt fits the phone too.
      expect(await phone.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
      await phone.locator("details.card summary").click();
      await phone.locator('input[name="scope"][value="partial"]').check();
      await phone.locator('input[name="followUp"]').check();
      await phone.locator('input[name="optionalWithdrawn"][value="future_research"]').check();
      await phone.getByLabel("Reason (optional)").fill("moving abroad");
      await phone.getByRole("button", { name: "Withdraw" }).click();
      await expect
        .poll(() => phone.locator('[data-withdrawal="partial"]').textContent())
        .toMatch(/partial: follow-up continues; withdrawn: future_research/);
      await expect
        .poll(() => phone.locator("[data-consent-state]").getAttribute("data-consent-state"))
        .toBe("partially_withdrawn");
      // The public page now says so plainly (date and what was withdrawn; no reason); the signatures stay signed,
      // sealed and anchored.
      await pub.reload();
      expect(await pub.locator("[data-consent-status]").getAttribute("data-consent-status")).toBe(
        "partially_withdrawn",
      );
      expect(await pub.locator("[data-consent-status]").textContent()).toMatch(
        new RegExp(
          String.raw`^Partly withdrawn on \d{4}-\d{2}-\d{2} \(UTC\): ` +
            String.raw`the study treatment \(follow-up visits continue\), future research\.$`,
        ),
      );
      const seals = await pub
        .locator("tr[data-signature] [data-seal]")
        .evaluateAll((els) => els.map((e) => e.textContent));
      expect(seals).toEqual([expect.stringMatching(/^sealed in batch/), expect.stringMatching(/^sealed in batch/)]);
      expect(await pub.content()).not.toMatch(/Philippa|Okonkwo|philippa\.zo|Cora|moving abroad|\bvalid\b|consented/i);
      await shot(pub, "15-public-consent-partly-withdrawn-desktop");
      const pubPhone = await (
        await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true })
      ).newPage();
      await pubPhone.goto(verifyUrl);
      expect(await pubPhone.locator("[data-consent-status]").textContent()).toMatch(/^Partly withdrawn on /);
      expect(await pubPhone.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
      await shot(pubPhone, "16-public-consent-partly-withdrawn-phone");

      // The used link cannot sign again: coming back shows the receipt, never the signing form.
      await phone.goto(link);
      expect(await phone.locator('[data-step="sign"]').count()).toBe(0);
      expect(await phone.locator('[data-step="receipt"]').count()).toBe(1);

      // The regulator downloads the consent's bundle from the study review and verifies it in /verify.
      const reg = await (await browser.newContext({ acceptDownloads: true })).newPage();
      await signIn(reg, "regulator@demo.trialseal.test");
      await reg.goto(`${portal.url}/studies/DEMO-001/review`);
      await expect
        .poll(() => reg.locator(`tr[data-subject="${subject}"] [data-consent-state]`).textContent())
        .toMatch(/consented ICF 1\.0/);
      // The whole-study audit, run in the background from the page: clean.
      await reg.getByRole("button", { name: "Run the audit" }).click();
      await expect
        .poll(() => reg.locator("[data-audit-verdict]").getAttribute("data-audit-verdict"), { timeout: 120_000 })
        .toBe("clean");
      expect(await reg.locator("#audit").textContent()).toMatch(/Clean .* checked \d+ entries in \d+ batches/);
      await shot(reg, "13-study-review");
      // This participant's own signature (the demo has consented participants of its own since issue 22).
      const [own] = await sql`SELECT e.seq FROM consent_signatures s JOIN participants p ON p.id = s.participant_id
        JOIN ledger_entries e ON e.id = s.entry_id WHERE p.subject_code = ${subject} AND s.signer_role = 'participant'`;
      const row = reg.locator(`tr[data-entry-kind="consent.signed"][data-entry-seq="${own.seq}"]`);
      const [bundleDownload] = await Promise.all([
        reg.waitForEvent("download"),
        row.locator("[data-proof-download]").click(),
      ]);
      const good = path.join(dir, "consent-bundle.json");
      await bundleDownload.saveAs(good);
      const bundle = JSON.parse(readFileSync(good, "utf8"));
      expect(bundle.envelope).toMatchObject({ kind: "consent.signed", study: "DEMO-001" });
      expect(bundle.payload).toMatchObject({ subject, document: "ICF", version: "1.0", documentSha256: docSha });
      expect(JSON.stringify(bundle)).not.toMatch(/Philippa|Okonkwo|philippa\.zo/);
      const tampered = path.join(dir, "consent-bundle-tampered.json");
      const t = structuredClone(bundle);
      t.payload.salt = (t.payload.salt[0] === "A" ? "B" : "A") + t.payload.salt.slice(1);
      writeFileSync(tampered, JSON.stringify(t));
      const policy = path.join(dir, "policy.json");
      writeFileSync(policy, await (await fetch(`${portal.url}/.well-known/trialseal.json`)).text());

      const check = async (page: Page) => {
        await page.locator("#policy-file").setInputFiles(policy);
        await page.locator("#bundle-files").setInputFiles([good, tampered]);
        await page.getByRole("button", { name: "Verify" }).click();
        await expect.poll(() => page.locator("section.report").count()).toBe(2);
        expect(await page.locator('section[data-file="consent-bundle.json"]').getAttribute("data-verdict")).toBe(
          "valid",
        );
        expect(await page.locator('section[data-file="consent-bundle.json"] li.failed').count()).toBe(0);
        expect(
          await page
            .locator('section[data-file="consent-bundle.json"] li[data-step*="anchor[local]"]')
            .getAttribute("class"),
        ).toBe("ok");
        expect(await page.locator('section[data-file="consent-bundle.json"] .time').textContent()).toMatch(
          /Proven to exist by \d{4}-/,
        );
        expect(
          await page.locator('section[data-file="consent-bundle-tampered.json"]').getAttribute("data-verdict"),
        ).toBe("invalid");
        expect(
          await page.locator('section[data-file="consent-bundle-tampered.json"] .failed-step').textContent(),
        ).toMatch(/payload\.hash \[PAYLOAD_HASH_MISMATCH\]/);
      };
      await reg.goto(`${portal.url}/verify`);
      await check(reg);
      await shot(reg, "14-regulator-verify");

      // The saved page, opened from disk, gives the same results.
      const saved = await cliAsync(["verifier-html"], env);
      expect(saved.code).toBe(0);
      const file = path.join(dir, "verify.html");
      writeFileSync(file, saved.stdout);
      const offline = await (await browser.newContext()).newPage();
      await offline.goto(`file://${file}`);
      await check(offline);

      // Finally the participant withdraws in full: the public page's headline says so, with the date.
      await phone.goto(link);
      await phone.locator("details.card summary").click();
      await phone.locator('input[name="scope"][value="full"]').check();
      await phone.locator('input[name="confirmFull"]').check(); // a full withdrawal is confirmed (issue 18)
      await phone.getByRole("button", { name: "Withdraw" }).click();
      await expect
        .poll(() => phone.locator("[data-consent-state]").getAttribute("data-consent-state"))
        .toBe("withdrawn");
      for (const [page, name] of [
        [pub, "17-public-consent-withdrawn-desktop"],
        [pubPhone, "18-public-consent-withdrawn-phone"],
      ] as const) {
        await page.reload();
        expect(await page.locator("[data-consent-status]").getAttribute("data-consent-status")).toBe("withdrawn");
        expect(await page.locator("[data-consent-status]").textContent()).toMatch(
          /^Withdrawn in full on \d{4}-\d{2}-\d{2} \(UTC\)\.$/,
        );
        expect(await page.locator("[data-withdrawal]").count()).toBe(2);
        expect(await page.locator("tr[data-signature]").count()).toBe(2);
        expect(await page.content()).not.toMatch(/Philippa|Okonkwo|philippa\.zo|Cora|moving abroad/);
        await shot(page, name);
      }
    },
  );
});
