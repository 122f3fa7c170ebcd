/**
 * Issue 16, production mode: a portal started with NODE_ENV=production, its own secrets and PUBLIC_URL, on the
 * embedded database. Cookies are Secure, HttpOnly and SameSite=Lax; every answer carries HSTS and a CSP; errors
 * show no stack trace; there is no demo study, no demo account and no demo-credentials file; and a start without
 * one of the required settings stops with one line naming it.
 */
import { randomBytes } from "node:crypto";
import { existsSync, readdirSync } from "node:fs";
import { request as httpRequest } from "node:http";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rememberVerified } from "../../app/consent/consent-session.server.ts";
import type { AppContext } from "../../app/platform/context.server.ts";
import { sessionCookie } from "../../app/platform/session.server.ts";
import { Browser, cli, portalStartFailure, ROOT, startPortal, tempDataDir, type Portal } from "../helpers/portal.ts";

const PUBLIC_URL = "https://trials.example.org";
const PW = "production-test-passphrase-7";
/** A stack frame ("    at f (file:///app/x.js:1:2)") or a path into the code. */
const STACK = /^\s*at .+:\d+:\d+\)?$|node_modules\/|\/app\/.+\.tsx?\b/m;

/** A raw HTTP request: the path is sent exactly as given (fetch would normalise a malformed one). */
function raw(
  base: string,
  method: string,
  p: string,
  headers: Record<string, string> = {},
  body?: string,
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; text: string }> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: u.hostname, port: u.port, method, path: p, headers: { ...headers, connection: "close" } },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (d) => (text += d));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

const secrets = () => ({
  NODE_ENV: "production",
  SESSION_SECRET: randomBytes(32).toString("base64"),
  DATA_KEY: randomBytes(32).toString("hex"),
  PUBLIC_URL,
});

let portal: Portal;
let env: Record<string, string>;
let dataDir: string;

beforeAll(async () => {
  dataDir = tempDataDir();
  env = { ...secrets(), DATA_DIR: dataDir };
  portal = await startPortal(env);
  // Production has no demo seed: the accounts are created as an operator would, with the CLI.
  const study = cli(["studies", "create", "--code", "PROD-1", "--title", "Production", "--site", "A"], env);
  expect(study.code, study.stderr).toBe(0);
  const user = cli(
    [
      "users",
      "create",
      "--email",
      "coord@prod.test",
      "--role",
      "coordinator",
      "--study",
      "PROD-1",
      "--site",
      "A",
    ].concat(["--password-stdin"]),
    env,
    PW,
  );
  expect(user.code, user.stderr).toBe(0);
});

afterAll(async () => {
  await portal?.stop();
});

describe("production: no demo seed", () => {
  it("seeds no demo study, no demo account and writes no demo-credentials file", async () => {
    expect(portal.output()).not.toMatch(/demo/i);
    const files = readdirSync(dataDir, { recursive: true }).map(String);
    expect(files.filter((f) => /demo|credential/i.test(path.basename(f)))).toEqual([]);
    expect(existsSync(path.join(dataDir, "demo-credentials.txt"))).toBe(false);
    // The demo study does not exist: a token for it is refused.
    const token = cli(["tokens", "create", "--study", "DEMO-001", "--name", "probe"], env);
    expect(token.code).not.toBe(0);
    expect(token.stderr).toMatch(/DEMO-001/);
    // Nor does a demo account: its sign-in answers like any unknown e-mail.
    const r = await new Browser(portal.url).post("/login", {
      email: "coordinator@demo.trialseal.test",
      password: "anything-at-all-1",
    });
    expect(r.status).toBe(401);
  });
});

describe("production: cookies and headers", () => {
  it("the session cookie set at sign-in is Secure, HttpOnly and SameSite=Lax", async () => {
    const b = new Browser(portal.url);
    const r = await b.post("/login", { email: "coord@prod.test", password: PW });
    expect(r.status).toBe(302);
    const cookies = r.headers.getSetCookie();
    expect(cookies.length).toBeGreaterThan(0);
    for (const c of cookies) {
      const attrs = c.split(";").map((a) => a.trim().toLowerCase());
      expect(attrs, c).toContain("secure");
      expect(attrs, c).toContain("httponly");
      expect(attrs, c).toContain("samesite=lax");
    }
    // ASVS V3.4.4: the session cookie carries the __Host- prefix (Secure, Path=/, no Domain: this host only).
    const session = cookies.find((c) => c.startsWith("__Host-ts_session="));
    expect(session, cookies.join("\n")).toBeTruthy();
    const attrs = (session ?? "").split(";").map((a) => a.trim().toLowerCase());
    expect(attrs).toContain("path=/");
    expect(attrs.some((a) => a.startsWith("domain="))).toBe(false);
    // The session works: the account page answers instead of sending back to the sign-in.
    const home = await b.get("/");
    expect(home.location ?? "").not.toMatch(/^\/login/);
    // ASVS V8.2.1: a signed-in page is not kept in caches.
    const page = await b.get("/account");
    expect(page.status).toBe(200);
    expect(page.headers.get("cache-control")).toMatch(/no-store/);
    // ASVS V8.2.3: signing out tells the browser to drop what it kept of the session.
    const out = await b.post("/logout", {});
    expect(out.status).toBe(302);
    expect(out.headers.get("clear-site-data")).toMatch(/"cache".*"cookies".*"storage"/);
  });

  it("consent and session cookies are Secure, HttpOnly, SameSite=Lax in production, not Secure in dev", async () => {
    const ctxOf = (production: boolean) =>
      ({ env: { production, sessionSecret: "s".repeat(40), sessionTtlMs: 3_600_000 } }) as unknown as AppContext;
    const attrs = (c: string) => c.split(";").map((a) => a.trim().toLowerCase());
    const inProduction = [
      await rememberVerified(ctxOf(true), "inv-1"),
      await sessionCookie(ctxOf(true)).serialize("t"),
    ];
    for (const c of inProduction) {
      expect(attrs(c), c).toEqual(expect.arrayContaining(["secure", "httponly", "samesite=lax"]));
    }
    // Prefixed in production: __Secure- for the consent cookie (its path is /consent, which __Host- forbids).
    expect(inProduction[0]).toMatch(/^__Secure-ts_consent=/);
    expect(inProduction[1]).toMatch(/^__Host-ts_session=/);
    for (const c of [await rememberVerified(ctxOf(false), "inv-1"), await sessionCookie(ctxOf(false)).serialize("t")]) {
      expect(attrs(c), c).toEqual(expect.arrayContaining(["httponly", "samesite=lax"]));
      expect(attrs(c), c).not.toContain("secure");
    }
  });

  it("every answer carries HSTS and the CSP: pages, static files and errors", async () => {
    const asset = readdirSync(path.join(ROOT, "public", "build")).find((f) => f.endsWith(".js"));
    expect(asset).toBeTruthy();
    for (const p of ["/login", `/build/${asset}`, "/no-such-page", "/api/v1/openapi.json"]) {
      const r = await raw(portal.url, "GET", p);
      expect(r.headers["strict-transport-security"], p).toBe("max-age=63072000; includeSubDomains");
      expect(r.headers["content-security-policy"], p).toMatch(/default-src 'self'/);
      expect(r.headers["content-security-policy"], p).toMatch(/frame-ancestors 'none'/);
      expect(r.headers["x-content-type-options"], p).toBe("nosniff");
    }
  });

  it("errors show no stack trace", async () => {
    const cases: [string, string, Record<string, string>, string?][] = [
      ["GET", "/no-such-page", {}],
      ["GET", "/%E0%A4%A", {}],
      ["GET", "/records/%00%ff", {}],
      [
        "POST",
        "/api/v1/studies/PROD-1/records",
        { authorization: "Bearer nope", "content-type": "application/json" },
        "{bad",
      ],
      ["GET", "/api/v1/studies/../../etc/passwd", { authorization: "Bearer nope" }],
    ];
    for (const [method, p, headers, body] of cases) {
      const r = await raw(portal.url, method, p, headers, body);
      expect(r.status, `${method} ${p}`).toBeGreaterThanOrEqual(400);
      expect(r.status, `${method} ${p}`).toBeLessThan(500);
      expect(r.text, `${method} ${p}`).not.toMatch(STACK);
    }
  });
});

describe("production: a start without a required setting stops with one clear line", () => {
  const cases: [string, RegExp][] = [
    ["SESSION_SECRET", /^trialseal: missing SESSION_SECRET: production needs/],
    ["DATA_KEY", /^trialseal: missing DATA_KEY: production needs/],
    ["PUBLIC_URL", /^trialseal: missing PUBLIC_URL: production needs/],
  ];
  it.each(cases)("without %s", (name, message) => {
    const vars: Record<string, string> = { ...secrets(), DATA_DIR: tempDataDir() };
    delete vars[name];
    const r = portalStartFailure(vars);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(message);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).not.toMatch(STACK);
    expect(r.stdout).not.toMatch(/portal on/);
  });
});
