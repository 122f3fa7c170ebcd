/**
 * The set-up most browser tests share: a scratch PostgreSQL database, the demo portal on it, its demo password,
 * a connection for checking what the pages show against the database, and Chromium; stopped after the file.
 */
import { afterAll, beforeAll } from "vitest";
import postgres from "postgres";
import type { Browser, Page } from "playwright-core";
import { demoPasswordOf, startPortal, tempDataDir, type Portal } from "./portal.ts";
import { createScratchPostgres } from "./db.ts";
import { launchChromium, signInAndEnrol } from "./browser.ts";

export interface DemoInBrowser {
  portal: Portal;
  browser: Browser;
  sql: postgres.Sql;
  demoPassword: string;
  /** A new browser context (desktop or phone options), signed in as a demo account with its second factor. */
  page(opts: Parameters<Browser["newContext"]>[0], email: string): Promise<Page>;
}

/** Register the file's beforeAll/afterAll; the returned object is filled in before the first test runs. */
export function demoPortalInBrowser(): DemoInBrowser {
  let pg: { url: string; drop: () => Promise<void> } | undefined;
  const demo = {
    async page(opts: Parameters<Browser["newContext"]>[0], email: string) {
      const p = await (await demo.browser.newContext(opts)).newPage();
      await signInAndEnrol(p, demo.portal.url, email, demo.demoPassword);
      return p;
    },
  } as DemoInBrowser;
  beforeAll(async () => {
    pg = await createScratchPostgres();
    demo.portal = await startPortal({ DATA_DIR: tempDataDir(), DATABASE_URL: pg.url });
    demo.demoPassword = demoPasswordOf(demo.portal);
    demo.sql = postgres(pg.url, { max: 2, onnotice: () => {} });
    demo.browser = await launchChromium();
  });
  afterAll(async () => {
    if (process.env.E2E_DEBUG) console.log(demo.portal?.output());
    await demo.browser?.close();
    await demo.sql?.end();
    await demo.portal?.stop();
    await pg?.drop();
  });
  return demo;
}
