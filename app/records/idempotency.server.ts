/**
 * Idempotency-Key for API writes: the response of a write is stored in the write's own transaction under
 * (scope, key) with a hash of the request body, so a client that retries after a lost response or a 503 (the
 * database restarting) gets the same answer and nothing is written twice. The same key with another body is a
 * 409.
 */
import { and, eq, inArray } from "drizzle-orm";
import { toHex } from "../../anchoring/log/bytes.ts";
import { idempotencyKeys } from "../../db/schema/index.ts";
import type { DbOrTx } from "../../db/client.ts";
import type { AppContext } from "../platform/context.server.ts";
import { ServiceError } from "../platform/errors.server.ts";

export interface Idempotency {
  scope: string;
  key: string;
  requestHash: Uint8Array;
}

/** The Idempotency-Key header checked: null when absent, an error message when malformed. */
export function idempotencyKeyOf(request: Request): { key: string | null; error?: string } {
  const key = request.headers.get("idempotency-key");
  if (key !== null && !/^[\x21-\x7e]{1,200}$/.test(key))
    return { key: null, error: "Idempotency-Key must be 1-200 visible ASCII characters" };
  return { key };
}

/** Store the response of a write in the write's transaction (no-op without a key). */
export async function storeIdempotent(tx: DbOrTx, idem: Idempotency | undefined, status: number, body: unknown) {
  if (!idem) return;
  await tx.insert(idempotencyKeys).values({
    scope: idem.scope,
    key: idem.key,
    requestHash: idem.requestHash,
    status,
    responseText: JSON.stringify(body),
  });
}

/** A stored response for (scope, key), or null. A different request under the same key is refused. */
export async function replayIdempotent(
  ctx: AppContext,
  idem: Idempotency,
): Promise<{ status: number; body: unknown } | null> {
  const [row] = await ctx.db
    .select()
    .from(idempotencyKeys)
    .where(and(eq(idempotencyKeys.scope, idem.scope), eq(idempotencyKeys.key, idem.key)));
  if (!row) return null;
  if (toHex(row.requestHash) !== toHex(idem.requestHash))
    throw new ServiceError(
      "conflict",
      "this Idempotency-Key was already used for a different request",
      "Idempotency-Key",
    );
  return { status: row.status, body: JSON.parse(row.responseText) };
}

/**
 * The stored responses of many keys of one scope in one round trip (the batch API's items, ADR 0040), by key, with
 * their request hashes (the caller tells a replay from a different request under the same key).
 */
export async function storedIdempotent(
  db: DbOrTx,
  scope: string,
  keys: string[],
): Promise<Map<string, { requestHash: Uint8Array; status: number; body: unknown }>> {
  const out = new Map<string, { requestHash: Uint8Array; status: number; body: unknown }>();
  for (let i = 0; i < keys.length; i += 1000)
    for (const row of await db
      .select()
      .from(idempotencyKeys)
      .where(and(eq(idempotencyKeys.scope, scope), inArray(idempotencyKeys.key, keys.slice(i, i + 1000)))))
      out.set(row.key, { requestHash: row.requestHash, status: row.status, body: JSON.parse(row.responseText) });
  return out;
}

/** Store many responses in the write's transaction, in multi-row INSERTs (the batch API's items). */
export async function storeIdempotentMany(tx: DbOrTx, rows: { idem: Idempotency; status: number; body: unknown }[]) {
  for (let i = 0; i < rows.length; i += 500)
    await tx.insert(idempotencyKeys).values(
      rows.slice(i, i + 500).map(({ idem, status, body }) => ({
        scope: idem.scope,
        key: idem.key,
        requestHash: idem.requestHash,
        status,
        responseText: JSON.stringify(body),
      })),
    );
}
