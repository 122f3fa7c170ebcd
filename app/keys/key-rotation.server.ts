/**
 * Rotating and revoking the log key and the local ledger key (the rings in app/keys/key-ring.server.ts).
 * A log key rotation holds the sealer's lock while it reads the latest checkpoint size S and switches keys, so
 * no checkpoint is signed across the boundary: sizes up to S by the old key, S + 1 on by the new one.
 */
import { sql } from "drizzle-orm";
import { SEALER_LOCK_KEY } from "../../db/log-store.ts";
import { latestCheckpoint } from "../../db/queries/log.ts";
import type { AppContext } from "../platform/context.server.ts";
import { ServiceError } from "../platform/errors.server.ts";
import { readRing, revokeInRing, rotateRing, type RingKey, type RingName } from "./key-ring.server.ts";

export type KeyTarget = "log" | "local";
const ringOf = (t: KeyTarget): RingName => (t === "log" ? "log" : "ledger-local");

export function listKeys(ctx: AppContext): Record<KeyTarget, RingKey[]> {
  return { log: readRing(ctx.env.dataDir, "log"), local: readRing(ctx.env.dataDir, "ledger-local") };
}

export async function rotateKey(
  ctx: AppContext,
  target: KeyTarget,
  reason = "rotated",
): Promise<{ old: RingKey; current: RingKey }> {
  if (target === "local")
    return rotateRing(ctx.env.dataDir, "ledger-local", { time: new Date().toISOString() }, reason);
  return ctx.db.transaction(async (tx) => {
    await tx.execute(sql`select pg_advisory_xact_lock(${SEALER_LOCK_KEY})`);
    const cp = await latestCheckpoint(tx);
    return rotateRing(ctx.env.dataDir, "log", { size: (cp?.treeSize ?? 0) + 1 }, reason);
  });
}

export async function revokeKey(
  ctx: AppContext,
  target: KeyTarget,
  input: { key: string; fromSize?: number; fromTime?: string; reason: string },
): Promise<RingKey> {
  if (!/^[0-9a-fA-F]{64}$/.test(input.key))
    throw new ServiceError(
      "invalid",
      "key: give the key's public key as 64 hex digits (see `trialseal keys list`)",
      "key",
    );
  if (input.fromTime !== undefined && !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/.test(input.fromTime)) {
    const d = new Date(input.fromTime);
    if (Number.isNaN(d.getTime()))
      throw new ServiceError(
        "invalid",
        "from-time: not a date and time (use ISO 8601, e.g. 2026-11-30T12:00:00Z)",
        "from-time",
      );
    input = { ...input, fromTime: d.toISOString() };
  }
  if (!input.reason.trim()) throw new ServiceError("invalid", "reason: say why the key is revoked", "reason");
  return revokeInRing(
    ctx.env.dataDir,
    ringOf(target),
    input.key,
    { size: input.fromSize, time: input.fromTime },
    input.reason.trim(),
  );
}
