/** playwright-core with Debian's Chromium (never a downloaded browser), started and stopped by the tests. */
import { mkdirSync } from "node:fs";
import path from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { generateTOTP } from "@epic-web/totp";
import { ROOT } from "./portal.ts";

export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
export const SCREENSHOTS = path.join(ROOT, "test-results", "screenshots");

export async function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

/** Keep a screenshot as a test artifact (test-results/screenshots/NAME.png). */
export async function shot(page: Page, name: string) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

/** The current authenticator code for a TOTP secret (as an authenticator app computes it). */
export async function totp(secret: string): Promise<string> {
  return (await generateTOTP({ secret, period: 30, digits: 6, algorithm: "SHA-1" })).otp;
}

/**
 * Sign in through the login page; when the role requires a second factor that is not set up yet, enrol it.
 * Returns the new TOTP secret (to answer later re-authentication), or null when none was enrolled.
 */
export async function signInAndEnrol(
  page: Page,
  portalUrl: string,
  email: string,
  password: string,
): Promise<string | null> {
  let secret: string | null = null;
  await page.goto(`${portalUrl}/login`);
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(/\/account\/totp|\/studies/);
  if (page.url().includes("/account/totp")) {
    secret = (await page.getByTestId("totp-secret").textContent())!.trim();
    await page.getByLabel("Code").fill(await totp(secret));
    await page.getByRole("button", { name: "Turn on" }).click();
    await page.waitForURL(/\/studies/);
  }
  return secret;
}
