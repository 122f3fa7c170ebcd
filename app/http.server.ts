/** HTTP hardening shared by every response: security headers and a same-origin check on form posts. */
import type { NextFunction, Request, Response } from "express";

export function securityHeaders(_req: Request, res: Response, next: NextFunction) {
  res.setHeader("X-Content-Type-Options", "nosniff");
  res.setHeader("Referrer-Policy", "same-origin");
  res.setHeader("X-Frame-Options", "DENY");
  // Remix hydration needs its inline context script; everything else is same-origin.
  res.setHeader(
    "Content-Security-Policy",
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'",
  );
  next();
}

/**
 * Browsers send Origin on cross-site POSTs: refuse state-changing requests whose Origin is another site.
 * (API clients authenticate with Bearer tokens and send no Origin; cookies are SameSite=Lax as well.)
 */
export function sameOriginPosts(req: Request, res: Response, next: NextFunction) {
  if (req.method === "GET" || req.method === "HEAD" || req.method === "OPTIONS") return next();
  const origin = req.get("origin");
  if (origin && origin !== "null") {
    let host: string | null = null;
    try {
      host = new URL(origin).host;
    } catch {
      host = null;
    }
    if (host !== req.get("host")) {
      res.status(403).type("text/plain").send("cross-origin request refused");
      return;
    }
  }
  next();
}
