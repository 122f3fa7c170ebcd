/** Helpers for the JSON API: errors as {"error":{code,message,field?}}, and session-or-token principals. */
import type { AppContext } from "./context.server.ts";
import { tokenPrincipal } from "../accounts/tokens.server.ts";
import { sessionPrincipal } from "../accounts/auth.server.ts";
import { sessionToken } from "./session.server.ts";
import type { Principal } from "./permissions.server.ts";

export function apiError(status: number, code: string, message: string, field?: string) {
  return Response.json({ error: { code, message, ...(field ? { field } : {}) } }, { status });
}

export async function apiPrincipal(request: Request, ctx: AppContext): Promise<Principal | null> {
  const auth = request.headers.get("authorization");
  if (auth) {
    const m = /^Bearer (\S+)$/.exec(auth);
    return m ? tokenPrincipal(ctx, m[1]) : null;
  }
  const token = await sessionToken(request, ctx);
  return token ? sessionPrincipal(ctx, token) : null;
}

/** Read a JSON body within `max` bytes: the parsed value, or the error Response to return. */
export async function readJsonBody(
  request: Request,
  max: number,
): Promise<{ ok: true; value: unknown; text: string } | { ok: false; response: Response }> {
  const type = request.headers.get("content-type") ?? "";
  if (!/^application\/json\b/i.test(type))
    return {
      ok: false,
      response: apiError(415, "unsupported_media_type", "send the body as application/json", "body"),
    };
  if (Number(request.headers.get("content-length") ?? "0") > max)
    return { ok: false, response: apiError(413, "too_large", `the body is larger than ${max} bytes`, "body") };
  const text = await request.text();
  if (Buffer.byteLength(text) > max)
    return { ok: false, response: apiError(413, "too_large", `the body is larger than ${max} bytes`, "body") };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return {
      ok: false,
      response: apiError(400, "invalid_json", `the body is not JSON: ${(err as Error).message}`, "body"),
    };
  }
  // I-JSON (RFC 7493): strings and keys must be valid Unicode. A lone surrogate ("\ud800") is legal JSON escape
  // syntax but no text, and it has no UTF-8 (so no canonical form to hash): refuse it here, at the edge.
  const bad = illFormedAt(value, "body", 0);
  if (bad)
    return {
      ok: false,
      response: apiError(400, "invalid_json", `${bad}: not valid Unicode text (a lone surrogate)`, bad),
    };
  return { ok: true, value, text };
}

function illFormedAt(v: unknown, at: string, depth: number): string | null {
  if (typeof v === "string") return v.isWellFormed() ? null : at;
  if (v === null || typeof v !== "object" || depth > 200) return null;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const r = illFormedAt(v[i], `${at}[${i}]`, depth + 1);
      if (r) return r;
    }
    return null;
  }
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
    if (!k.isWellFormed()) return `${at} (a key)`;
    const r = illFormedAt(x, at === "body" ? k : `${at}.${k}`, depth + 1);
    if (r) return r;
  }
  return null;
}

/**
 * Per-principal rate limit (token bucket in this process): API_RATE_PER_SECOND sustained, twice that as a
 * burst. Returns a 429 Response with Retry-After when exceeded.
 */
const buckets = new Map<string, { tokens: number; at: number }>();
export function rateLimited(principal: Principal, perSecond: number): Response | null {
  const key = principal.label;
  const now = Date.now();
  const burst = perSecond * 2;
  const b = buckets.get(key) ?? { tokens: burst, at: now };
  b.tokens = Math.min(burst, b.tokens + ((now - b.at) / 1000) * perSecond);
  b.at = now;
  if (b.tokens < 1) {
    buckets.set(key, b);
    const retry = Math.max(1, Math.ceil((1 - b.tokens) / perSecond));
    return Response.json(
      { error: { code: "rate_limited", message: `too many requests; retry after ${retry} s` } },
      { status: 429, headers: { "retry-after": String(retry) } },
    );
  }
  b.tokens -= 1;
  buckets.set(key, b);
  if (buckets.size > 10_000) buckets.clear();
  return null;
}
