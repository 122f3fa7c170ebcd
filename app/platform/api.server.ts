/** Helpers for the JSON API: errors as {"error":{code,message,field?,problems?}}, and session-or-token principals. */
import type { AppContext } from "./context.server.ts";
import { tokenPrincipal } from "../accounts/tokens.server.ts";
import { sessionPrincipal } from "../accounts/auth.server.ts";
import { sessionToken } from "./session.server.ts";
import type { Principal } from "./permissions.server.ts";
import { eq, sql } from "drizzle-orm";
import { apiRateBuckets } from "../../db/schema/index.ts";

export function apiError(
  status: number,
  code: string,
  message: string,
  field?: string,
  problems?: { field: string; message: string; kind?: string }[],
) {
  return Response.json(
    { error: { code, message, ...(field ? { field } : {}), ...(problems?.length ? { problems } : {}) } },
    { status },
  );
}

/**
 * A body that failed its zod schema, as a 422 naming the first problem's field; an unknown field is named with what
 * to send instead (`expected`, e.g. "send status, date and reason").
 */
export function invalidBody(
  issue: { path: PropertyKey[]; code: string; message: string; keys?: string[] },
  expected: string,
): Response {
  const what =
    issue.code === "unrecognized_keys" ? `unknown field ${issue.keys?.join(", ")} (${expected})` : issue.message;
  return apiError(
    422,
    "invalid",
    `${issue.path.join(".") || "body"}: ${what}`,
    String(issue.path[0] ?? issue.keys?.[0] ?? "body"),
  );
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

/** Tokens a process took from a principal's bucket and has not spent yet (per database, so per deployment). */
const rateLeases = new WeakMap<object, Map<string, { tokens: number; until: number }>>();
const RATE_LEASE_MS = 1000;
function rateLeasesOf(ctx: AppContext) {
  let m = rateLeases.get(ctx.db);
  if (!m) {
    m = new Map();
    rateLeases.set(ctx.db, m);
  }
  return m;
}

/**
 * Per-principal rate limit (a token bucket in the database, ADR 0022, so every portal process shares it):
 * API_RATE_PER_SECOND sustained, twice that as a burst. One SQL statement takes a token or refuses, so parallel
 * requests cannot overdraw the bucket. Returns a 429 Response with Retry-After when exceeded.
 */
export async function rateLimited(ctx: AppContext, principal: Principal, perSecond: number): Promise<Response | null> {
  const key = principal.token
    ? `token:${principal.token.id}`
    : `${principal.kind}:${principal.userId ?? principal.label}`;
  const b = apiRateBuckets;
  const burst = perSecond * 2;
  // The database's clock cut to the millisecond, as `at` stores it: an `at` rounded on storing (to the nearest
  // millisecond) credited up to half a millisecond's tokens more than elapsed per take, which over a few hundred
  // takes let a busy machine exceed the limit by a token or two (seen in test/db/api-rate-lease.test.ts).
  const nowMs = sql`date_trunc('milliseconds', clock_timestamp())`;
  const refilled = sql`least(${burst}::float8, ${b.tokens} + extract(epoch from (${nowMs} - ${b.at}))::float8
    * ${perSecond}::float8)`;
  const take = (n: number) =>
    ctx.db
      .insert(b)
      .values({ key, tokens: burst - n, at: nowMs })
      .onConflictDoUpdate({
        target: b.key,
        set: { tokens: sql`${refilled} - ${n}::float8`, at: nowMs },
        setWhere: sql`${refilled} >= ${n}::float8`,
      })
      .returning({ tokens: b.tokens });
  // ADR 0042: a process takes a tenth of a second's tokens at once and spends them itself for up to a second, so
  // most requests cost no database write. Tokens still come only out of the shared bucket, and unspent ones lapse:
  // the limit is never exceeded, only reached a little early when several processes serve one principal.
  const chunk = Math.min(100, Math.floor(perSecond / 10));
  const leases = rateLeasesOf(ctx);
  const lease = leases.get(key);
  const now = Date.now();
  if (lease && lease.tokens >= 1 && now < lease.until) {
    lease.tokens -= 1;
    return null;
  }
  if (chunk > 1 && (await take(chunk)).length === 1) {
    const held = lease && now < lease.until ? lease.tokens : 0;
    leases.set(key, { tokens: held + chunk - 1, until: now + RATE_LEASE_MS });
    if (leases.size > 10_000) for (const [k, l] of leases) if (l.until <= now) leases.delete(k);
    return null;
  }
  if ((await take(1)).length === 1) return null;
  const [row] = await ctx.db
    .select({ tokens: sql<number>`${refilled}` })
    .from(b)
    .where(eq(b.key, key));
  const retry = Math.max(1, Math.ceil((1 - Number(row?.tokens ?? 0)) / perSecond));
  return Response.json(
    { error: { code: "rate_limited", message: `too many requests; retry after ${retry} s` } },
    { status: 429, headers: { "retry-after": String(retry) } },
  );
}
