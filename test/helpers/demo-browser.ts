/**
 * The set-up most browser tests share: a scratch PostgreSQL database, the demo portal on it, its demo password,
 * a connection for checking what the pages show against the database, and Chromium; stopped after the file.
 * The database and data directory are a clone of the demo snapshot (test/helpers/demo-snapshot.ts): the demo
 * study seeded once per run, not once per file.
 */
import { afterAll, beforeAll } from "vitest";
import postgres from "postgres";
import type { Browser, Page } from "playwright-core";
import { demoPasswordOf, startPortal, type Portal } from "./portal.ts";
import { demoClone } from "./demo-snapshot.ts";
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
    const [clone, browser] = await Promise.all([demoClone("postgres"), launchChromium()]);
    demo.browser = browser;
    pg = { url: clone.databaseUrl!, drop: clone.drop };
    demo.portal = await startPortal(clone.env);
    demo.demoPassword = demoPasswordOf(demo.portal);
    demo.sql = postgres(pg.url, { max: 2, onnotice: () => {} });
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
