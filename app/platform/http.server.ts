/** HTTP hardening shared by every response: security headers and a same-origin check on form posts. */
import { randomBytes } from "node:crypto";
import type { NextFunction, Request, Response } from "express";

export function securityHeaders(_req: Request, res: Response, next: NextFunction) {
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
 * this site. A cookie-carrying POST with neither is refused too. Bearer-token API calls carry no cookie
 * authority and are not subject to it.
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
  const origin = req.get("origin");
  const source = origin !== undefined ? hostOf(origin) : hostOf(req.get("referer"));
  const usesSession = /(?:^|;\s*)ts_session=/.test(req.get("cookie") ?? "") && !req.get("authorization");
  const declared = origin !== undefined || req.get("referer") !== undefined;
  if ((declared || usesSession) && source !== req.get("host")) {
    res.status(403).type("text/plain").send("cross-site request refused: the form must be posted from this site");
    return;
  }
  next();
}
