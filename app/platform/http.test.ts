import type { NextFunction, Request, Response } from "express";
import { describe, expect, it } from "vitest";
import { forwardedHostCheck, sameOriginPosts, securityHeaders } from "./http.server.ts";

/** Run an Express middleware on a request with these headers; returns the status it answered, or "next". */
function run(mw: (req: Request, res: Response, next: NextFunction) => void, method: string, h: Record<string, string>) {
  const headers = Object.fromEntries(Object.entries(h).map(([k, v]) => [k.toLowerCase(), v]));
  let status: number | "next" = "next";
  const res = {
    status(s: number) {
      status = s;
      return res;
    },
    type: () => res,
    send: () => res,
    json: () => res,
    setHeader: () => res,
  } as unknown as Response;
  const req = { method, get: (name: string) => headers[name.toLowerCase()], headers } as unknown as Request;
  let called = false;
  mw(req, res, () => {
    called = true;
  });
  return called ? "next" : status;
}

const host = "portal.example:3000";
const cookie = "ts_session=abc.def";

// Issue 16 item 8: the cross-site check was skipped whenever an Authorization header was present, also on
// requests that ride on the session cookie.
describe("sameOriginPosts: the cross-site check on state-changing requests", () => {
  it("refuses a cookie-carrying cross-site post even when it adds an Authorization header", () => {
    expect(
      run(sameOriginPosts, "POST", { host, cookie, authorization: "Bearer x", origin: "http://evil.example" }),
    ).toBe(403);
    expect(run(sameOriginPosts, "POST", { host, cookie, authorization: "Basic eDp5" })).toBe(403);
    expect(run(sameOriginPosts, "POST", { host, cookie: `other=1; ${cookie}`, authorization: "Bearer x" })).toBe(403);
  });

  it("skips it only for bearer-token requests that carry no session cookie", () => {
    expect(run(sameOriginPosts, "POST", { host, authorization: "Bearer ts_abc" })).toBe("next");
    expect(run(sameOriginPosts, "POST", { host, authorization: "Bearer ts_abc", cookie: "other=1" })).toBe("next");
    // A script on another site cannot attach the token by itself: nothing rides on ambient authority.
    expect(run(sameOriginPosts, "POST", { host, authorization: "Bearer ts_abc", origin: "http://evil.example" })).toBe(
      "next",
    );
  });

  it("keeps the rest: same-origin posts pass, cross-site and origin-less cookie posts are refused", () => {
    expect(run(sameOriginPosts, "POST", { host, cookie, origin: `http://${host}` })).toBe("next");
    expect(run(sameOriginPosts, "POST", { host, cookie, origin: "http://evil.example" })).toBe(403);
    expect(run(sameOriginPosts, "POST", { host, cookie })).toBe(403);
    expect(run(sameOriginPosts, "POST", { host, origin: "http://evil.example" })).toBe(403);
    expect(run(sameOriginPosts, "GET", { host, cookie, origin: "http://evil.example" })).toBe("next");
  });
});

// Issue 16 item 9: an X-Forwarded-Host that does not match gave a 500 (Remix aborts the action, or the URL
// cannot be built); it is a bad request.
describe("forwardedHostCheck: X-Forwarded-Host must name the portal's public address", () => {
  const env = { publicUrl: "https://trials.example.org" };
  it("answers 400 for another host, passes the portal's own host and requests without the header", () => {
    const mw = forwardedHostCheck(env);
    expect(run(mw, "POST", { host, "x-forwarded-host": "evil.example" })).toBe(400);
    expect(run(mw, "GET", { host, "x-forwarded-host": "a b" })).toBe(400);
    expect(run(mw, "GET", { host, "x-forwarded-host": "trials.example.org:444" })).toBe(400);
    expect(run(mw, "GET", { host, "x-forwarded-host": "trials.example.org" })).toBe("next");
    expect(run(mw, "GET", { host, "x-forwarded-host": "TRIALS.example.org" })).toBe("next");
    expect(run(mw, "POST", { host })).toBe("next");
  });
});

// Issue 16, production mode: HSTS in production only (a development portal on http://localhost must not pin
// the browser to HTTPS for localhost).
describe("securityHeaders: HSTS in production only", () => {
  const headersOf = (production: boolean) => {
    const set: Record<string, string> = {};
    const res = { locals: {}, setHeader: (k: string, v: string) => (set[k.toLowerCase()] = v) } as unknown as Response;
    let called = false;
    securityHeaders({ production })({} as Request, res, () => {
      called = true;
    });
    expect(called).toBe(true);
    return set;
  };
  it("sends Strict-Transport-Security in production, not in development; the CSP in both", () => {
    expect(headersOf(true)["strict-transport-security"]).toBe("max-age=63072000; includeSubDomains");
    expect(headersOf(false)["strict-transport-security"]).toBeUndefined();
    for (const production of [true, false]) {
      expect(headersOf(production)["content-security-policy"]).toMatch(/frame-ancestors 'none'/);
      expect(headersOf(production)["x-content-type-options"]).toBe("nosniff");
    }
  });
});
