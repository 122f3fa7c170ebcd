/**
 * The participant's side of eConsent has no account: passing the one-time-code check sets a signed, HttpOnly
 * cookie bound to that one invitation for 30 minutes (coming back later asks for a fresh code). Signing from
 * a browser that carries a staff session is flagged in the signature (FDA eIC guidance).
 */
import { createCookie } from "@remix-run/node";
import type { AppContext } from "../platform/context.server.ts";
import { sessionToken } from "../platform/session.server.ts";

export const CONSENT_SESSION_MS = 30 * 60_000;
const cookies = new WeakMap<AppContext, ReturnType<typeof createCookie>>();

function cookie(ctx: AppContext) {
  let c = cookies.get(ctx);
  if (!c) {
    // __Secure- in production (its path is /consent, which the __Host- prefix does not allow).
    c = createCookie(ctx.env.production ? "__Secure-ts_consent" : "ts_consent", {
      httpOnly: true,
      sameSite: "lax",
      secure: ctx.env.production,
      path: "/consent",
      secrets: [ctx.env.sessionSecret],
      maxAge: CONSENT_SESSION_MS / 1000,
    });
    cookies.set(ctx, c);
  }
  return c;
}

/** The invitation this browser has verified (within the last 30 minutes), or null. */
export async function verifiedInvitation(request: Request, ctx: AppContext): Promise<string | null> {
  const v = (await cookie(ctx).parse(request.headers.get("cookie"))) as { i?: unknown; exp?: unknown } | null;
  if (!v || typeof v.i !== "string" || typeof v.exp !== "number" || v.exp < Date.now()) return null;
  return v.i;
}

export function rememberVerified(ctx: AppContext, invitationId: string): Promise<string> {
  return cookie(ctx).serialize({ i: invitationId, exp: Date.now() + CONSENT_SESSION_MS });
}

/** True when the request carries a staff session cookie: the signing is then flagged as done from a staff device. */
export async function fromStaffDevice(request: Request, ctx: AppContext): Promise<boolean> {
  return (await sessionToken(request, ctx)) !== null;
}
