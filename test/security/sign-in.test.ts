/**
 * Security regression suite, sign-in (issue 16 items 2, 3 and 7; ADR 0022): each exploit that once worked is run
 * again over HTTP against real portals, and the test fails if it works. Two portal processes share one
 * PostgreSQL database, and the attacks are spread over both: every counter must live in the database.
 * The source address is what a reverse proxy on the same host reports in X-Forwarded-For (the portal trusts it
 * from loopback only).
 */
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Browser, cliAsync, demoPasswordOf, startPortal, type Portal } from "../helpers/portal.ts";
import { demoClone } from "../helpers/demo-snapshot.ts";
import { nextStepTotp } from "../helpers/totp.ts";

const N = 40;
/** ADR 0022: free password attempts per account and source; wrong second-factor codes in a row that lock. */
const FREE_PER_SOURCE = 5;
const MFA_LOCK = 5;
const RATE = 1; // API_RATE_PER_SECOND for these portals: a burst of 2

let pg: { url: string; drop: () => Promise<void> };
let db: ReturnType<typeof postgres>;
let env: Record<string, string>;
let password = "";
const portals: Portal[] = [];

beforeAll(async () => {
  const clone = await demoClone("postgres"); // the demo seeded once per run (test/helpers/demo-snapshot.ts)
  pg = { url: clone.databaseUrl!, drop: clone.drop };
  env = { ...clone.env, API_RATE_PER_SECOND: String(RATE) };
  portals.push(await startPortal(env));
  password = demoPasswordOf(portals[0]);
  expect(password, portals[0].output()).not.toBe("");
  // A second process of the same deployment (same keys in DATA_DIR, same database).
  portals.push(await startPortal(env));
  db = postgres(pg.url, { max: 2, onnotice: () => {} });
});
afterAll(async () => {
  for (const p of portals) await p.stop();
  await db?.end();
  await pg?.drop();
});

/** The i-th of several parallel requests goes to portal i mod 2. */
const portal = (i: number) => portals[i % portals.length].url;

/** One sign-in form post (as a browser sends it) from a source; its status and the error shown on the page. */
async function signIn(base: string, email: string, pw: string, source: string) {
  const res = await fetch(`${base}/login`, {
    method: "POST",
    redirect: "manual",
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      origin: base,
      "x-forwarded-for": source,
    },
    body: new URLSearchParams({ email, password: pw }).toString(),
  });
  const text = await res.text();
  const alert = /role="alert">([^<]*)</.exec(text)?.[1] ?? "";
  // The wait in a back-off answer depends on timing; the rest of the answer must not.
  return `${res.status} ${alert.replace(/wait \d+ s/, "wait N s")}`;
}

const failedLogins = async (email: string) =>
  (await db`SELECT failed_logins FROM users WHERE email = ${email}`)[0].failed_logins as number;

describe("security: sign-in (ADR 0022)", () => {
  it("item 3: 40 parallel wrong passwords for one account from one source check exactly 5", async () => {
    const r = await Promise.all(
      Array.from({ length: N }, (_, i) => signIn(portal(i), "monitor@demo.trialseal.test", "guess-1", "203.0.113.5")),
    );
    const checked = r.filter((x) => x.startsWith("401 ")).length;
    const waited = r.filter((x) => x.startsWith("429 ")).length;
    expect({ checked, waited }).toEqual({ checked: FREE_PER_SOURCE, waited: N - FREE_PER_SOURCE });
    expect(await failedLogins("monitor@demo.trialseal.test")).toBe(FREE_PER_SOURCE);
  });

  it("item 3: 40 parallel wrong passwords from 40 sources are all counted (no lost update)", async () => {
    const r = await Promise.all(
      Array.from({ length: N }, (_, i) =>
        signIn(portal(i), "datamanager@demo.trialseal.test", "guess-2", `198.51.100.${i + 1}`),
      ),
    );
    expect(new Set(r).size).toBe(1);
    expect(r[0]).toMatch(/^401 /);
    expect(await failedLogins("datamanager@demo.trialseal.test")).toBe(N);
  });

  it("item 7: unknown, wrong and locked answer alike, and a stranger cannot lock the owner out", async () => {
    const seq = async (email: string, pw: string, source: string) => {
      const out: string[] = [];
      for (let i = 0; i < FREE_PER_SOURCE + 2; i++) out.push(await signIn(portal(i), email, pw, source));
      return out;
    };
    const unknown = await seq("nobody@demo.trialseal.test", "guess-3", "203.0.113.20");
    const wrong = await seq("coordinator@demo.trialseal.test", "guess-3", "203.0.113.21");
    expect(wrong).toEqual(unknown);
    expect(unknown[0]).toMatch(/^401 email or password is incorrect/);
    await db`UPDATE users SET locked_at = now() WHERE email = 'regulator@demo.trialseal.test'`;
    const locked = await seq("regulator@demo.trialseal.test", password, "203.0.113.22");
    expect(locked).toEqual(unknown);
    // The stranger hammered the coordinator's account; the coordinator, from their own address, gets in at once.
    expect(await signIn(portal(0), "coordinator@demo.trialseal.test", password, "192.0.2.44")).toMatch(/^302 /);
    expect(await signIn(portal(1), "coordinator@demo.trialseal.test", password, "192.0.2.44")).toMatch(/^302 /);
  });

  it(
    "item 2: three sign-ins with 40 parallel wrong codes each check at most 5 codes, lock the account and " +
      "tell the user and the admins at once; only an admin's unlock lets the owner back in",
    async () => {
      const email = "investigator@demo.trialseal.test";
      const owner = new Browser(portals[0].url);
      const enrolled = await owner.signIn(email, password);
      expect(enrolled.status).toBe(302);
      const secret = enrolled.secret!;
      /** Every answer as "status location" (a 302 back to /login is a refusal, elsewhere a success). */
      const statuses: string[] = [];
      for (let round = 0; round < 3; round++) {
        const b = new Browser(portal(round));
        const first = await b.post("/login", { email, password });
        statuses.push(`${first.status} ${first.location}`);
        if (first.status !== 302) continue;
        expect(first.location).toMatch(/^\/login\/totp/);
        const wrong = (i: number) => String((i * 7919 + round * 104_729 + 1) % 1_000_000).padStart(6, "0");
        const r = await Promise.all(
          Array.from({ length: N }, async (_, i) => {
            const res = await fetch(`${portal(i)}/login/totp`, {
              method: "POST",
              redirect: "manual",
              headers: {
                "content-type": "application/x-www-form-urlencoded",
                origin: portal(i),
                cookie: b.cookie,
              },
              body: new URLSearchParams({ code: wrong(i) }).toString(),
            });
            await res.text();
            return `${res.status} ${res.headers.get("location")}`;
          }),
        );
        statuses.push(...r);
      }
      // Codes actually checked: the ones answered "not valid" (422) and the one that locked (the first 423).
      const checked = await db`SELECT count(*)::int AS n FROM audit_events a JOIN users u ON u.id = a.actor_user_id
        WHERE u.email = ${email} AND a.action = 'login.mfa' AND a.outcome = 'failure'
          AND coalesce(a.detail->>'reason', '') <> 'locked'`;
      expect(checked[0].n).toBe(MFA_LOCK);
      expect(statuses.filter((s) => s.startsWith("422 ")).length).toBe(MFA_LOCK - 1);
      // Past the password step once only (the first round); no code ever let anyone in.
      const through = statuses.filter((s) => /^(2\d\d|30[123]) /.test(s) && !/ \/login(\?|$)/.test(s));
      expect(through).toEqual([expect.stringMatching(/^302 \/login\/totp/)]);
      const [u] = await db`SELECT locked_at IS NOT NULL AS locked FROM users WHERE email = ${email}`;
      expect(u.locked).toBe(true);
      const mails = await db`SELECT to_address FROM outbox WHERE kind = 'account_locked' ORDER BY to_address`;
      expect(mails.map((m) => m.to_address)).toEqual(["admin@demo.trialseal.test", email]);
      // Locked: the right password answers like a wrong one.
      expect(await signIn(portal(1), email, password, "192.0.2.50")).toMatch(/^401 email or password is incorrect/);
      // An admin unlocks it with the CLI; the owner signs in with password and code.
      const un = await cliAsync(["users", "unlock", "--email", email], env);
      expect(un).toMatchObject({ code: 0, stdout: `unlocked ${email}\n` });
      const back = await new Browser(portals[1].url).signIn(email, password, secret, { code: nextStepTotp });
      expect(back.status, portals[1].output().slice(-4000)).toBe(302);
      expect(back.location).not.toMatch(/^\/login/);
    },
  );

  it("no attempt above ended in a server error on either portal", () => {
    for (const p of portals) expect(p.output()).not.toMatch(/portal error:/);
  });

  it("the API's per-token rate limit holds across portal processes", async () => {
    const tok = await cliAsync(["tokens", "create", "--study", "DEMO-001", "--name", "rate-test"], env);
    expect(tok.code).toBe(0);
    const token = tok.stdout.trim();
    const started = Date.now();
    const r = await Promise.all(
      Array.from({ length: N }, async (_, i) => {
        const res = await fetch(`${portal(i)}/api/v1/studies/DEMO-001/records`, {
          method: "POST",
          headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
          body: "{}",
        });
        await res.text();
        return res.status;
      }),
    );
    const seconds = (Date.now() - started) / 1000;
    const passed = r.filter((s) => s !== 429).length;
    // One bucket for both processes: the burst (2 x RATE) plus what refilled meanwhile, never one per process.
    expect(passed).toBeGreaterThanOrEqual(2 * RATE);
    expect(passed).toBeLessThanOrEqual(2 * RATE + Math.ceil(seconds * RATE));
  });
});
