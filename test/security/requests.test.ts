/**
 * Issue 16 items 1, 5, 8 and 9, run as an attacker would against a real portal on PostgreSQL (so the test can
 * read the outbox the portal writes to): password-reset poisoning through Host/Origin headers, the open redirect
 * after sign-in, the cross-site check skipped for cookie requests that add an Authorization header, and a
 * mismatching X-Forwarded-Host answered with a 500 (and a stack trace).
 */
import { request as httpRequest } from "node:http";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { demoClone } from "../helpers/demo-snapshot.ts";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { Browser, cli, demoPasswordOf, startPortal, type Portal } from "../helpers/portal.ts";
import { nextStepTotp } from "../helpers/totp.ts";

const PUBLIC_URL = "https://trials.example.org";
const COORDINATOR = "coordinator@demo.trialseal.test";

/** A raw HTTP request, so Host and the forwarding headers are exactly what an attacker sends. */
function raw(
  base: string,
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: string,
): Promise<{ status: number; location?: string; text: string }> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: u.hostname, port: u.port, method, path, headers: { ...headers, connection: "close" } },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (d) => (text += d));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, location: res.headers.location, text }));
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

let portal: Portal;
let scratch: { url: string; drop: () => Promise<void> };
let password: string;
let dataDir: string;

beforeAll(async () => {
  const clone = await demoClone("postgres"); // the demo seeded once per run (test/helpers/demo-snapshot.ts)
  scratch = { url: clone.databaseUrl!, drop: clone.drop };
  dataDir = clone.dataDir;
  portal = await startPortal({ DATABASE_URL: scratch.url, DATA_DIR: dataDir, PUBLIC_URL });
  password = demoPasswordOf(portal);
});

afterAll(async () => {
  await portal?.stop();
  await scratch?.drop();
});

describe("links in messages come from PUBLIC_URL, never from request headers (item 1)", () => {
  it("a forgot-password post with a forged Host and Origin mails a link to the configured portal", async () => {
    const port = new URL(portal.url).port;
    const body = new URLSearchParams({ email: COORDINATOR }).toString();
    for (const forged of ["evil.example", `evil.example:${port}`]) {
      const r = await raw(
        portal.url,
        "POST",
        "/forgot-password",
        {
          host: forged,
          origin: `http://${forged}`,
          "content-type": "application/x-www-form-urlencoded",
          "content-length": String(Buffer.byteLength(body)),
        },
        body,
      );
      expect([200, 403]).toContain(r.status);
    }
    // And one genuine request, so there is at least one message to inspect.
    const b = new Browser(portal.url);
    expect((await b.post("/forgot-password", { email: COORDINATOR })).status).toBe(200);
    const sql = postgres(scratch.url, { max: 1, onnotice: () => {} });
    try {
      const rows = await sql<{ body: string }[]>`select body from outbox where kind = 'password_reset'`;
      expect(rows.length).toBeGreaterThan(0);
      for (const { body } of rows) {
        expect(body).not.toContain("evil.example");
        expect(body).toMatch(/https:\/\/trials\.example\.org\/reset-password\/[A-Za-z0-9_-]+/);
      }
    } finally {
      await sql.end();
    }
  });
});

describe("sign-in goes back only to the portal's own pages (item 5)", () => {
  const sameOrigin = (location: string | null) => {
    expect(location).not.toBeNull();
    expect(location).not.toMatch(/[\t\n\r]/);
    expect(new URL(location ?? "", portal.url).origin).toBe(new URL(portal.url).origin);
  };

  // Each case signs in a different demo account (a TOTP code is accepted once per 30-second step).
  it.each([
    ["admin@demo.trialseal.test", "/\t/evil.example/phish"],
    ["investigator@demo.trialseal.test", "/.//evil.example/phish"],
  ])("%s: next=%j after enrolling an authenticator stays on the portal", async (email, next) => {
    const b = new Browser(portal.url);
    const first = await b.post("/login", { email, password, next });
    expect(first.status).toBe(302);
    sameOrigin(first.location);
    expect(first.location).toMatch(/^\/account\/totp/);
    const page = await b.get(first.location ?? "");
    const key = /data-testid="totp-secret">([A-Z2-7]+)</.exec(page.text)?.[1];
    expect(key).toBeTruthy();
    // A forged form posts the raw hostile value, not the one the page carries.
    const done = await b.post("/account/totp", { code: await nextStepTotp(key ?? ""), next });
    expect(done.status).toBe(302);
    sameOrigin(done.location);
  });

  it("next with a newline at the second-factor step stays on the portal (no 500)", async () => {
    const email = "regulator@demo.trialseal.test";
    const b = new Browser(portal.url);
    const enrolled = await b.signIn(email, password);
    expect(enrolled.status).toBe(302);
    await b.post("/logout", {});
    const next = "/\n/evil.example/phish";
    const first = await b.post("/login", { email, password, next });
    expect(first.location).toMatch(/^\/login\/totp\?next=/);
    const done = await b.post("/login/totp", { code: await nextStepTotp(enrolled.secret ?? ""), next });
    expect(done.status).toBe(302);
    sameOrigin(done.location);
  });
});

describe("the cross-site check applies to every cookie-carrying post (item 8)", () => {
  it("a cross-site post with the session cookie and an Authorization header is refused", async () => {
    const b = new Browser(portal.url);
    const s = await b.signIn(COORDINATOR, password);
    expect(s.status).toBe(302);
    const crossSite = await b.post("/logout", {}, { origin: "http://evil.example", authorization: "Bearer x" });
    expect(crossSite.status).toBe(403);
    // Without Origin or Referer (what the check falls back on), the Authorization header used to skip it.
    const port = new URL(portal.url).port;
    const bare = await raw(portal.url, "POST", "/logout", {
      host: `127.0.0.1:${port}`,
      cookie: b.cookie,
      authorization: "Bearer not-a-token",
      "content-type": "application/x-www-form-urlencoded",
      "content-length": "0",
    });
    expect(bare.status).toBe(403);
    // Still signed in: the forged post changed nothing.
    const page = await b.get("/studies");
    expect(page.status).toBe(200);
  });
});

describe("a forwarded host that is not the portal's is a bad request (item 9)", () => {
  it("answers 400 without a stack trace, for forms and pages", async () => {
    const body = new URLSearchParams({ email: COORDINATOR, password: "wrong" }).toString();
    const port = new URL(portal.url).port;
    const cases = [
      raw(
        portal.url,
        "POST",
        "/login",
        {
          host: `127.0.0.1:${port}`,
          origin: portal.url,
          "x-forwarded-host": "evil.example",
          "content-type": "application/x-www-form-urlencoded",
          "content-length": String(Buffer.byteLength(body)),
        },
        body,
      ),
      raw(portal.url, "GET", "/login", { host: `127.0.0.1:${port}`, "x-forwarded-host": "a b" }),
      raw(portal.url, "GET", "/login", { host: `127.0.0.1:${port}`, "x-forwarded-host": "evil.example" }),
    ];
    for (const r of await Promise.all(cases)) {
      expect(r.status).toBe(400);
      expect(r.text).toMatch(/X-Forwarded-Host/);
      expect(r.text).not.toMatch(/\bat .*\.(js|ts):\d+/);
    }
    const own = await raw(portal.url, "GET", "/login", {
      host: `127.0.0.1:${port}`,
      "x-forwarded-host": "trials.example.org",
    });
    expect(own.status).toBe(200);
  });
});

describe("what a browser keeps, and requests a page does not expect (ASVS V8.2.1, V8.2.3, V5.1.1, V13.2.1)", () => {
  it("signed-in pages are no-store and sign-out sends Clear-Site-Data", async () => {
    const b = new Browser(portal.url);
    const s = await b.signIn("monitor@demo.trialseal.test", password);
    expect(s.status).toBe(302);
    const page = await b.get("/studies");
    expect(page.status).toBe(200);
    expect(page.headers.get("cache-control")).toMatch(/no-store/);
    const out = await b.post("/logout", {});
    expect(out.status).toBe(302);
    expect(out.headers.get("clear-site-data")).toMatch(/"cache".*"cookies".*"storage"/);
  });

  it("repeated form fields are read one way, never a 500 (parameter pollution)", async () => {
    const body = new URLSearchParams([
      ["email", "monitor@demo.trialseal.test"],
      ["email", "nobody@example.org"],
      ["password", "wrong-password"],
      ["password", password],
    ]).toString();
    const r = await fetch(`${portal.url}/login`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", origin: portal.url },
      body,
      redirect: "manual",
    });
    expect(r.status).toBeGreaterThanOrEqual(300);
    expect(r.status).toBeLessThan(500);
  });

  it("methods a route does not serve are refused, never a 500", async () => {
    for (const [method, p] of [
      ["PUT", "/login"],
      ["DELETE", "/studies"],
      ["PATCH", "/api/v1/studies/DEMO-001/records"],
      ["DELETE", "/api/v1/checkpoint"],
    ] as const) {
      const r = await fetch(`${portal.url}${p}`, { method, headers: { origin: portal.url }, redirect: "manual" });
      expect(r.status, `${method} ${p}`).toBeGreaterThanOrEqual(400);
      expect(r.status, `${method} ${p}`).toBeLessThan(500);
    }
  });
});

describe("stored text comes back escaped (ASVS V5.3.3)", () => {
  it("a form whose title and labels hold markup is shown as text on the study's pages", async () => {
    const payload = '<script>alert("xss")</script><img src=x onerror=alert(1)>';
    const file = path.join(dataDir, "xss.form.json");
    writeFileSync(
      file,
      JSON.stringify({
        code: "XSS",
        title: `Vitals ${payload}`,
        version: 1,
        visits: ["SCREENING"],
        fields: [{ name: "note", label: `Note ${payload}`, type: "text", maxLength: 100 }],
      }),
    );
    const env = { DATABASE_URL: scratch.url, DATA_DIR: dataDir, PUBLIC_URL };
    const imported = cli(["forms", "import", "--study", "DEMO-001", file], env);
    expect(imported.code, imported.stderr).toBe(0);
    const b = new Browser(portal.url);
    expect((await b.signIn("datamanager@demo.trialseal.test", password)).status).toBe(302);
    let shown = 0;
    for (const p of ["/studies/DEMO-001/forms", "/studies/DEMO-001", "/studies/DEMO-001/audit"]) {
      const page = await b.get(p);
      expect(page.status, p).toBe(200);
      expect(page.text, p).not.toContain("<script>alert");
      expect(page.text, p).not.toContain("<img src=x");
      if (page.text.includes("&lt;script&gt;alert")) shown++;
    }
    expect(shown).toBeGreaterThan(0);
  });
});
