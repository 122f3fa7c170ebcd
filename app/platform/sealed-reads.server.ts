/**
 * Reads of sealed rows (issue 19, ADR 0044): proofs, evidence-package logs and integrity audits read rows that never
 * change once sealed, so they may be served by a read replica (`DATABASE_REPLICA_URL`). `sealedRead` runs `read` on
 * the replica when one is configured and has replayed enough of the log, else on the primary:
 * - "enough" is the replica's latest checkpoint: its tree size (in batches: a checkpoint signs the log of batches)
 *   at least `minTreeSize`, or its last batch ending past `minSealedSeq`, or (neither given) at least the primary's
 *   latest checkpoint (`fresh`: read from the primary now; else cached for PRIMARY_TTL_MS);
 * - the replica's position is cached for REPLICA_TTL_MS; a stale cache can only be lower than the truth (a replica
 *   never goes back), so it only ever sends a read to the primary, never a too-new read to the replica;
 * - a replica that errors or cannot be reached: the read runs again on the primary, the outage is logged once and
 *   the replica is left alone for DOWN_RETRY_MS.
 * A read must not write, and may run twice (replica, then primary). Never pass a read of pending entries or of
 * mutable tables (sessions, users, current rows) unless, like the whole audit, it is one consistent read of the state
 * as of a replayed checkpoint (ADR 0044 lists which reads move).
 */
import type { Db, ReadReplica } from "../../db/client.ts";
import type { AppContext } from "./context.server.ts";
import { ServiceError } from "./errors.server.ts";

export interface SealedReadOptions {
  /** The signed log size the read needs, in batches (a checkpoint's tree size); fewer on the replica: primary. */
  minTreeSize?: number;
  /** An entry seq the read needs sealed under a checkpoint (a proof of seq N): the replica's must cover it. */
  minSealedSeq?: number;
  /**
   * Without minTreeSize/minSealedSeq the replica must have replayed the primary's latest checkpoint; `fresh` reads
   * that from the primary now instead of a value up to PRIMARY_TTL_MS old (a whole audit).
   */
  fresh?: boolean;
  /**
   * Wait up to this long for the replica to replay enough before choosing the primary (default 0): worth it before
   * a large read right after a seal, which a healthy replica replays within milliseconds.
   */
  waitMs?: number;
}

export const REPLICA_TTL_MS = 500;
export const PRIMARY_TTL_MS = 1000;
export const DOWN_RETRY_MS = 5000;

interface Position {
  /** The replica's latest checkpoint's tree size (batches). */
  treeSize: number;
  /** Entries sealed in the batches that checkpoint covers (seqs below this are provable there). */
  sealedEntries: number;
  at: number;
}

export interface SealedReadStats {
  /** Reads served by the replica. */
  replica: number;
  /** Reads served by the primary because the replica had not replayed enough (or was marked down). */
  primary: number;
  /** Reads that failed on the replica and ran again on the primary. */
  fallbacks: number;
}

interface ReplicaState {
  stats: SealedReadStats;
  position?: Position;
  positionLoading?: Promise<Position>;
  primary?: { treeSize: number; at: number };
  downUntil: number;
  /** The current outage was logged (once, until the replica serves a read again). */
  warned: boolean;
}

const states = new WeakMap<ReadReplica, ReplicaState>();

function stateOf(replica: ReadReplica): ReplicaState {
  let s = states.get(replica);
  if (!s) {
    s = { stats: { replica: 0, primary: 0, fallbacks: 0 }, downUntil: 0, warned: false };
    states.set(replica, s);
  }
  return s;
}

/** Counters of where sealed reads were served (tests, /status); zeros without a replica. */
export function sealedReadStats(ctx: AppContext): SealedReadStats {
  return ctx.replica ? { ...stateOf(ctx.replica).stats } : { replica: 0, primary: 0, fallbacks: 0 };
}

const POSITION_SQL = `SELECT c.tree_size::text AS tree_size, COALESCE(b.first_seq + b.size, 0)::text AS sealed_entries
  FROM checkpoints c LEFT JOIN batches b ON b.batch_no = c.tree_size - 1
  ORDER BY c.tree_size DESC LIMIT 1`;

async function replicaPosition(replica: ReadReplica, s: ReplicaState, maxAgeMs: number): Promise<Position> {
  const now = Date.now();
  if (s.position && now - s.position.at < maxAgeMs) return s.position;
  s.positionLoading ??= replica
    .execute(POSITION_SQL)
    .then((rows) => {
      const r = rows[0] as { tree_size: string; sealed_entries: string } | undefined;
      const p = { treeSize: Number(r?.tree_size ?? 0), sealedEntries: Number(r?.sealed_entries ?? 0), at: now };
      s.position = p;
      return p;
    })
    .finally(() => {
      s.positionLoading = undefined;
    });
  return s.positionLoading;
}

async function primaryTreeSize(ctx: AppContext, s: ReplicaState, fresh: boolean): Promise<number> {
  const now = Date.now();
  if (!fresh && s.primary && now - s.primary.at < PRIMARY_TTL_MS) return s.primary.treeSize;
  const rows = await ctx.database.execute("SELECT COALESCE(max(tree_size), 0)::text AS n FROM checkpoints");
  const treeSize = Number((rows[0] as { n: string } | undefined)?.n ?? 0);
  s.primary = { treeSize, at: now };
  return treeSize;
}

function enough(p: Position, opts: SealedReadOptions, primarySize: number | null): boolean {
  if (opts.minTreeSize !== undefined && p.treeSize < opts.minTreeSize) return false;
  if (opts.minSealedSeq !== undefined && p.sealedEntries <= opts.minSealedSeq) return false;
  return primarySize === null || p.treeSize >= primarySize;
}

function replicaDown(replica: ReadReplica, s: ReplicaState, err: unknown): void {
  if (!s.warned)
    console.warn(
      `read replica ${replica.where} failed (${(err as Error).message}): sealed reads go to the primary ` +
        "until it answers again",
    );
  s.warned = true;
  s.downUntil = Date.now() + DOWN_RETRY_MS;
  s.position = undefined;
}

/**
 * Run `read` with a context whose `db` is the replica (when it has replayed enough) or the primary. The whole read
 * runs on the one chosen database (`replica` is absent from the context it gets, so nested sealed reads stay there).
 */
export async function sealedReadContext<T>(
  ctx: AppContext,
  read: (readCtx: AppContext) => Promise<T>,
  opts: SealedReadOptions = {},
): Promise<T> {
  const replica = ctx.replica;
  if (!replica) return read(ctx);
  const primaryCtx: AppContext = { ...ctx, replica: undefined };
  const s = stateOf(replica);
  if (Date.now() < s.downUntil) {
    s.stats.primary++;
    return read(primaryCtx);
  }
  const needsPrimary = opts.minTreeSize === undefined && opts.minSealedSeq === undefined;
  const primarySize = needsPrimary ? await primaryTreeSize(ctx, s, opts.fresh === true) : null;
  let position: Position;
  try {
    position = await replicaPosition(replica, s, REPLICA_TTL_MS);
    // A cached position that is not enough may be stale: ask again (every 50 ms), until `waitMs` has passed.
    const deadline = Date.now() + (opts.waitMs ?? 0);
    for (;;) {
      if (enough(position, opts, primarySize)) break;
      position = await replicaPosition(replica, s, 50);
      if (enough(position, opts, primarySize) || Date.now() >= deadline) break;
      await new Promise((r) => setTimeout(r, 50));
    }
  } catch (err) {
    replicaDown(replica, s, err);
    s.stats.fallbacks++;
    return read(primaryCtx);
  }
  if (!enough(position, opts, primarySize)) {
    s.stats.primary++;
    return read(primaryCtx);
  }
  let result: T;
  try {
    result = await read({ ...ctx, db: replica.db, replica: undefined });
  } catch (err) {
    // What the data say (not found, forbidden, invalid) the primary would say too.
    if (err instanceof ServiceError) throw err;
    replicaDown(replica, s, err);
    s.stats.fallbacks++;
    return read(primaryCtx);
  }
  s.stats.replica++;
  if (s.warned) console.warn(`read replica ${replica.where} answers again: sealed reads go to it`);
  s.warned = false;
  return result;
}

/** Run `read` on the replica when it has replayed enough (see SealedReadOptions), else on the primary. */
export async function sealedRead<T>(
  ctx: AppContext,
  read: (db: Db) => Promise<T>,
  opts: SealedReadOptions = {},
): Promise<T> {
  return sealedReadContext(ctx, (c) => read(c.db), opts);
}
