/**
 * The database lock page over HTTP against the built portal (ADR 0054), on PostgreSQL so the test can alter a row
 * behind the portal: a data manager locks with a reason (a missing one is named), the page shows the analysis data
 * set's name, size and sealed SHA-256, the download serves exactly those bytes; once the stored bytes are altered the
 * download shows the mismatch (409) instead of serving them; the allocations download is refused before unblinding;
 * a coordinator sees the state but no lock form; under the lock the participant and record pages offer no write and
 * the participants list no "Unlock study" (the lock page link instead).
 */
import { createHash } from "node:crypto";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { demoClone } from "../helpers/demo-snapshot.ts";
import { Browser, demoPasswordOf, startPortal, type Portal } from "../helpers/portal.ts";

let portal: Portal;
let scratch: { url: string; drop: () => Promise<void> };
let password: string;
const PAGE = "/studies/DEMO-001/lock";

beforeAll(async () => {
  const clone = await demoClone("postgres"); // the demo seeded once per run (test/helpers/demo-snapshot.ts)
  scratch = { url: clone.databaseUrl!, drop: clone.drop };
  portal = await startPortal(clone.env);
  password = demoPasswordOf(portal);
}, 240_000);
afterAll(async () => {
  await portal?.stop();
  await scratch?.drop();
});

async function download(who: Browser, p: string) {
  const res = await fetch(portal.url + p, { redirect: "manual", headers: { cookie: who.cookie } });
  return { status: res.status, bytes: new Uint8Array(await res.arrayBuffer()), headers: res.headers };
}

describe("the database lock page", () => {
  it("locks with a reason, serves the sealed analysis data set, refuses altered bytes", async () => {
    const dm = new Browser(portal.url);
    expect((await dm.signIn("datamanager@demo.trialseal.test", password)).status).toBe(302);
    const before = await dm.get(PAGE);
    expect(before.status).toBe(200);
    expect(before.text).toContain("The database is not locked");

    // Before the lock a record page offers the monitor its writes (SDV, raise a query): the checks below can fail.
    const mon = new Browser(portal.url);
    expect((await mon.signIn("monitor@demo.trialseal.test", password)).status).toBe(302);
    const list = await mon.get("/studies/DEMO-001/participants");
    let recordHref: string | undefined;
    for (const [, subjectHref] of list.text.matchAll(/href="(\/studies\/DEMO-001\/participants\/[^"?/]+)"/g)) {
      recordHref = /href="(\/studies\/DEMO-001\/records\/[0-9a-f-]{36})"/.exec((await mon.get(subjectHref)).text)?.[1];
      if (recordHref) break;
    }
    expect(recordHref).toBeDefined();
    const open = await mon.get(recordHref!);
    expect(open.status).toBe(200);
    expect(open.text).toContain('value="sdv"');
    expect(open.text).toContain('value="query"');

    const noReason = await dm.post(PAGE, { intent: "lock", reason: " " });
    expect(noReason.status).toBe(422);
    expect(noReason.text).toMatch(/reason: give a reason/);
    const locked = await dm.post(PAGE, { intent: "lock", reason: "final database lock" });
    expect(locked.status, locked.text).toBe(200);

    const page = await dm.get(PAGE);
    expect(page.text).toContain("The database is locked");
    expect(page.text).toContain("final database lock");
    const sha = /data-analysis-sha256="([0-9a-f]{64})"/.exec(page.text)?.[1];
    expect(sha).toMatch(/^[0-9a-f]{64}$/);
    const href = /href="([^"]*\/analysis-data-set\/[0-9a-f-]{36})"/.exec(page.text)![1];
    const got = await download(dm, href);
    expect(got.status).toBe(200);
    expect(got.headers.get("content-disposition")).toMatch(/filename="DEMO-001-analysis-data-set-\d{8}-\d{6}\.zip"/);
    expect(createHash("sha256").update(got.bytes).digest("hex")).toBe(sha);

    // The stored bytes altered behind the portal: the download shows the mismatch, never the bytes.
    const sql = postgres(scratch.url, { max: 1, onnotice: () => {} });
    try {
      await sql.begin(async (tx) => {
        await tx`SET LOCAL session_replication_role = replica`;
        await tx`UPDATE database_locks SET analysis_data = '\\x00'::bytea || analysis_data`;
      });
    } finally {
      await sql.end();
    }
    const altered = await download(dm, href);
    expect(altered.status).toBe(409);
    expect(new TextDecoder().decode(altered.bytes)).toMatch(/does not match its sealed SHA-256/);

    // Not unblinded yet: the allocations file is refused, in words.
    const alloc = await download(mon, `${PAGE}/allocations`);
    expect(alloc.status).toBe(409);
    expect(new TextDecoder().decode(alloc.bytes)).toMatch(/not unblinded yet/);

    // A coordinator sees the state, not the forms.
    const coord = new Browser(portal.url);
    expect((await coord.signIn("coordinator@demo.trialseal.test", password)).status).toBe(302);
    const seen = await coord.get(PAGE);
    expect(seen.status).toBe(200);
    expect(seen.text).toContain("The database is locked");
    expect(seen.text).not.toContain("Unlock the database");
    expect(seen.text).not.toContain('data-download="analysis"');

    // A participant's page under the lock offers no write (no signing, no disposition): it says since when.
    const inv = new Browser(portal.url);
    expect((await inv.signIn("investigator@demo.trialseal.test", password)).status).toBe(302);
    const subject = await inv.get("/studies/DEMO-001/participants");
    expect(subject.text).toContain("data-database-locked");
    expect(subject.text).not.toContain("Enroll a participant");
    const first = /href="(\/studies\/DEMO-001\/participants\/[^"?/]+)"/.exec(subject.text)?.[1] ?? "";
    const casebook = await inv.get(first);
    expect(casebook.status).toBe(200);
    expect(casebook.text).toContain("data-database-locked");
    expect(casebook.text).toMatch(/The database is locked since \d{4}-\d\d-\d\d \d\d:\d\d UTC/);
    expect(casebook.text).not.toContain("Sign all records");

    // A record page under the lock offers nobody a write (no query step, SDV, signature, correction or lock): it says
    // since when and why, and links the lock page.
    for (const who of [inv, mon, dm]) {
      const rec = await who.get(recordHref!);
      expect(rec.status).toBe(200);
      const notice = /data-database-locked[^>]*>([^<]*)<a [^>]*href="\/studies\/DEMO-001\/lock"/.exec(rec.text)?.[1];
      expect(notice).toMatch(
        /^The database is locked since \d{4}-\d\d-\d\d \d\d:\d\d UTC \(final database lock\)\. Ask the data manager/,
      );
      expect(notice).toContain("to unlock it with a reason.");
      expect(rec.text).not.toContain('name="intent"');
    }

    // The participants list offers the data manager no "Unlock study" there (the database lock is released on its
    // page): it links the lock page instead.
    const parts = await dm.get("/studies/DEMO-001/participants");
    expect(parts.status).toBe(200);
    expect(parts.text).not.toContain("Unlock study");
    expect(parts.text).not.toContain('value="unlock"');
    const listNotice = /data-database-locked[^>]*>([^<]*)<a [^>]*href="\/studies\/DEMO-001\/lock"/.exec(
      parts.text,
    )?.[1];
    expect(listNotice).toMatch(/^The database is locked since [^<]*unlock it on $/);
  }, 120_000);
});
