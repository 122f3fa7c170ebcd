/**
 * DATABASE_URL parsing and the database error class, apart from db/client.ts so that the configuration
 * (app/platform/env.server.ts) and the CLI can use them without loading a database driver.
 */

export class DatabaseError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "DatabaseError";
  }
}

/** Parse and check a PostgreSQL URL, with a clear message when it is malformed. */
export function parseDatabaseUrl(url: string): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new DatabaseError("DATABASE_URL: not a URL (expected postgres://user@host:port/database)");
  }
  if (u.protocol !== "postgres:" && u.protocol !== "postgresql:") {
    throw new DatabaseError(`DATABASE_URL: must start with postgres:// (got ${u.protocol}//)`);
  }
  if (!u.hostname) throw new DatabaseError("DATABASE_URL: no host name");
  if (u.pathname.length <= 1) throw new DatabaseError("DATABASE_URL: names no database (add /DBNAME)");
  return u;
}

export function redactUrl(u: URL): string {
  return `${u.protocol}//${u.username ? `${u.username}@` : ""}${u.host}${u.pathname}`;
}
