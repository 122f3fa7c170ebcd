/**
 * Is this error the database being unreachable (restarting, shutting down, network gone), as opposed to a
 * query that is wrong or refused? Walks the `cause` chain (drizzle wraps driver errors). Unavailable means the
 * same request can succeed later unchanged: the portal answers 503 with Retry-After, never 500.
 */
const NETWORK_CODES = new Set([
  // postgres.js
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  "CONNECT_TIMEOUT",
  // node sockets
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
]);

/**
 * SQLSTATE classes and codes that mean "not now": 08 connection exception, 57P01-57P03 shutdown/startup, 53300 too
 * many connections.
 */
function unavailableSqlState(code: string): boolean {
  return code.startsWith("08") || code === "57P01" || code === "57P02" || code === "57P03" || code === "53300";
}

/** The code (driver, socket or SQLSTATE) that shows the database is unavailable, or null. */
export function databaseUnavailableCode(err: unknown): string | null {
  const seen = new Set<unknown>();
  for (let e = err; e && typeof e === "object" && !seen.has(e); e = (e as { cause?: unknown }).cause) {
    seen.add(e);
    const code = (e as { code?: unknown }).code;
    if (
      typeof code === "string" &&
      (NETWORK_CODES.has(code) || (/^[0-9A-Z]{5}$/.test(code) && unavailableSqlState(code)))
    )
      return code;
    if (e instanceof AggregateError) {
      for (const x of e.errors) {
        const c = databaseUnavailableCode(x);
        if (c) return c;
      }
    }
  }
  return null;
}

export function isDatabaseUnavailable(err: unknown): boolean {
  return databaseUnavailableCode(err) !== null;
}

/** Seconds a client should wait before retrying while the database is unavailable. */
export const DATABASE_RETRY_AFTER_S = 2;
