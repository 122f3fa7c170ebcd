/** The session cookie and the request -> principal helpers every loader and action starts with. */
import { createCookie, redirect, type AppLoadContext } from "@remix-run/node";
import type { AppContext } from "./context.server.ts";
import { liveSession, sessionPrincipal } from "../accounts/auth.server.ts";
import { requirePermission, type Action } from "./permissions.server.ts";
import { ServiceError } from "./errors.server.ts";

declare module "@remix-run/node" {
  interface AppLoadContext {
    ctx: AppContext;
    /** This response's CSP nonce (app/platform/http.server.ts). */
    cspNonce?: string;
    /** Set while handling this request; bin/serve.ts turns a 5xx caused by an unreachable database into a 503. */
    requestState?: { databaseUnavailable: boolean };
  }
}

const cookies = new WeakMap<AppContext, ReturnType<typeof createCookie>>();

export function sessionCookie(ctx: AppContext) {
  let c = cookies.get(ctx);
  if (!c) {
    // __Host- in production (ASVS V3.4.4): Secure, Path=/, no Domain, so only this host ever receives it.
    c = createCookie(ctx.env.production ? "__Host-ts_session" : "ts_session", {
      httpOnly: true,
      sameSite: "lax",
      secure: ctx.env.production,
      path: "/",
      secrets: [ctx.env.sessionSecret],
      maxAge: Math.floor(ctx.env.sessionTtlMs / 1000),
    });
    cookies.set(ctx, c);
  }
  return c;
}

export async function sessionToken(request: Request, ctx: AppContext): Promise<string | null> {
  const v = await sessionCookie(ctx).parse(request.headers.get("cookie"));
  return typeof v === "string" && v.length > 0 ? v : null;
}

export async function getUser(request: Request, context: AppLoadContext) {
  const token = await sessionToken(request, context.ctx);
  return token ? sessionPrincipal(context.ctx, token) : null;
}

/**
 * The signed-in user, or a redirect: to the TOTP step or the enrolment page when sign-in is half done, to the
 * login page otherwise (back to where they were going).
 */
export async function requireUser(request: Request, context: AppLoadContext) {
  const user = await getUser(request, context);
  if (!user) {
    const url = new URL(request.url);
    const next = encodeURIComponent(url.pathname + url.search);
    const token = await sessionToken(request, context.ctx);
    const s = token ? await liveSession(context.ctx, token) : null;
    if (s?.stage === "mfa") throw redirect(`/login/totp?next=${next}`);
    if (s?.stage === "enroll") throw redirect(`/account/totp?next=${next}`);
    throw redirect(`/login?next=${next}`);
  }
  return user;
}

/** Any origin will do for resolving: only whether the result leaves it matters. */
const PORTAL = new URL("https://portal.invalid");

/**
 * Where a sign-in step may send the browser (no open redirect). `next` is resolved exactly as a browser resolves
 * a Location header (WHATWG URL: tabs and newlines stripped, backslashes read as slashes, dot segments removed)
 * and followed only when it stays on the portal's own origin; the answer is the normalised path, never the raw
 * input, so what the browser follows is what was checked.
 */
export function safeNext(next: string | null | undefined, fallback = "/studies"): string {
  if (!next?.startsWith("/")) return fallback;
  let target: URL;
  try {
    target = new URL(next, PORTAL);
  } catch {
    return fallback;
  }
  const path = `${target.pathname}${target.search}${target.hash}`;
  // A path that starts with // (e.g. from "/.//host") would be read as another host by the browser.
  if (target.origin !== PORTAL.origin || !path.startsWith("/") || /^\/[/\\]/.test(path)) return fallback;
  return path;
}

/** Signed in and permitted `action` in the study; otherwise 403. */
export async function requireStudyPermission(
  request: Request,
  context: AppLoadContext,
  action: Action,
  scope: { studyId: string; siteId?: string | null },
) {
  const user = await requireUser(request, context);
  try {
    requirePermission(user, action, scope);
  } catch (err) {
    if (err instanceof ServiceError) throw new Response("Forbidden", { status: 403 });
    throw err;
  }
  return user;
}

export function requestMeta(request: Request) {
  return {
    ip: request.headers.get("x-forwarded-for")?.split(",")[0].trim() ?? null,
    userAgent: request.headers.get("user-agent"),
  };
}
