/** HTTP hardening shared by every response: security headers and a same-origin check on form posts. */
import { randomBytes } from "node:crypto";
import type { NextFunction, Request, Response } from "express";

/** The HSTS value in production: two years, subdomains included (never sent in development, on http://localhost). */
export const HSTS = "max-age=63072000; includeSubDomains";

/** Headers on every response; in production also Strict-Transport-Security (the portal is served over HTTPS). */
export function securityHeaders(env: { production: boolean }) {
  return (req: Request, res: Response, next: NextFunction) => {
    if (env.production) res.setHeader("Strict-Transport-Security", HSTS);
    commonHeaders(req, res, next);
  };
}

function commonHeaders(_req: Request, res: Response, next: NextFunction) {
  res.setHeader("X-Content-Type-Options", "nosniff");
  res.setHeader("Referrer-Policy", "same-origin");
  res.setHeader("X-Frame-Options", "DENY");
  res.setHeader("Cross-Origin-Opener-Policy", "same-origin");
  res.setHeader("Permissions-Policy", "camera=(), microphone=(), geolocation=()");
  // No inline script runs but Remix's own (hydration data, scroll restoration), which carry this nonce.
  const nonce = randomBytes(16).toString("base64");
  res.locals.cspNonce = nonce;
  res.setHeader(
    "Content-Security-Policy",
    [
      "default-src 'self'",
      `script-src 'self' 'nonce-${nonce}'`,
      "style-src 'self'",
      "img-src 'self' data:",
      "connect-src 'self'",
      "object-src 'none'",
      "frame-ancestors 'none'",
      "base-uri 'self'",
      "form-action 'self'",
    ].join("; "),
  );
  next();
}

/**
 * CSRF protection for every state-changing request that rides on the session cookie (OWASP: verify the
 * origin with standard headers, plus SameSite=Lax cookies): its Origin (or, failing that, its Referer) must be
 * this site. A cookie-carrying POST with neither is refused too. Only bearer-token calls that carry no session
 * cookie are exempt: an Authorization header on a cookie-carrying request changes nothing.
 */
export function sameOriginPosts(req: Request, res: Response, next: NextFunction) {
  if (req.method === "GET" || req.method === "HEAD" || req.method === "OPTIONS") return next();
  const hostOf = (u: string | undefined) => {
    if (!u || u === "null") return null;
    try {
      return new URL(u).host;
    } catch {
      return null;
    }
  };
  const usesSession = carriesSessionCookie(req.get("cookie"));
  // Only a bearer-token call without the session cookie carries no ambient authority a page could borrow.
  if (!usesSession && /^Bearer\s/i.test(req.get("authorization") ?? "")) return next();
  const origin = req.get("origin");
  const source = origin !== undefined ? hostOf(origin) : hostOf(req.get("referer"));
  const declared = origin !== undefined || req.get("referer") !== undefined;
  if ((declared || usesSession) && source !== req.get("host")) {
    res.status(403).type("text/plain").send("cross-site request refused: the form must be posted from this site");
    return;
  }
  next();
}

/**
 * A proxy's X-Forwarded-Host must name the portal's public address (PUBLIC_URL): anything else is a bad request
 * (400), answered before Remix builds the request URL from it.
 */
export function forwardedHostCheck(env: { publicUrl: string }) {
  return (req: Request, res: Response, next: NextFunction) => {
    const forwarded = req.get("x-forwarded-host");
    if (forwarded === undefined || forwarded.trim().toLowerCase() === new URL(env.publicUrl).host) return next();
    res
      .status(400)
      .type("text/plain")
      .send("bad request: the X-Forwarded-Host header does not name this portal's public address (PUBLIC_URL)");
  };
}

/** Whether a Cookie header carries the portal's session cookie (ts_session, or __Host-ts_session in production). */
export function carriesSessionCookie(cookie: string | undefined): boolean {
  return /(?:^|;\s*)(?:__Host-)?ts_session=/.test(cookie ?? "");
}

/**
 * Pages answer GET, HEAD and POST only (ASVS V13.2.1): Remix hands any other method to a route's action, which
 * reads it as a form post. 405 with Allow; the JSON API checks its own methods.
 */
export function pageMethods(req: Request, res: Response, next: NextFunction) {
  if (req.path.startsWith("/api/") || ["GET", "HEAD", "POST", "OPTIONS"].includes(req.method)) return next();
  res.status(405).set("Allow", "GET, HEAD, POST").type("text/plain").send(`method ${req.method} is not allowed here`);
}
