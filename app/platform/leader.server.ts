/**
 * The background duties (sealer, anchor worker, import runner, outbox sender) run in exactly one process per
 * PostgreSQL database (ADR 0043): the process holding a session-level advisory lock on a connection of its own.
 * Every portal process (each cluster worker, and any other portal on the same database) tries to take the lock
 * every few seconds; the holder starts the duties. The holder checks its connection every `checkMs`: when the
 * connection fails (or the check hangs), PostgreSQL has released or will release the lock, so the duties are stopped
 * at once and the process competes again. A process that dies loses its connection, and with it the lock.
 * On the embedded database (PGlite, one process) the duties simply run.
 */
import postgres from "postgres";

/** Advisory lock id of the background duties (the sealer's is 7_424_012, the migrator's 7_424_011). */
export const DUTIES_LOCK_KEY = 7_424_013;

export type Stopper = () => Promise<void>;

export interface LeaderOptions {
  /** How often a process without the lock tries again, and the holder checks its connection (ms). */
  checkMs?: number;
  /** Told when this process takes or loses the duties. */
  onChange?: (leading: boolean, why: string) => void;
}

/**
 * `p`, or a rejection when it has not settled within `ms`. The rejection waits one more turn of the event loop
 * (setImmediate after the timer): after a synchronous stall longer than `ms` (a large import parsed), the timer and an
 * answer that arrived during the stall are both due, and the answer, read in the loop's I/O phase, wins; before, the
 * timer fired first and the duties holder resigned over a healthy connection.
 */
export function answerWithin<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | null = null;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => setImmediate(() => reject(new Error(`no answer within ${ms} ms`))), ms);
    timer.unref();
  });
  late.catch(() => {});
  return Promise.race([p, late]).finally(() => {
    if (timer) clearTimeout(timer);
  });
}

/**
 * Run `start` (which starts the duties and returns their stopper) while this process holds the duties lock on
 * `databaseUrl`; returns a stopper that stops the duties (if running) and releases the lock.
 */
export function runWhileLeader(databaseUrl: string, start: () => Stopper, opts: LeaderOptions = {}): Stopper {
  const checkMs = opts.checkMs ?? 2000;
  const pool = () =>
    postgres(databaseUrl, {
      max: 1,
      onnotice: () => {},
      connect_timeout: 10,
      idle_timeout: 0,
      connection: { application_name: "trialseal-duties" },
    });
  let sql = pool();
  let stopped = false;
  let reserved: postgres.ReservedSql | null = null;
  let stopDuties: Stopper | null = null;
  let timer: NodeJS.Timeout | null = null;
  let pass: Promise<void> = Promise.resolve();

  const withTimeout = answerWithin;

  const resign = async (why: string) => {
    const s = stopDuties;
    stopDuties = null;
    const r = reserved;
    reserved = null;
    if (s) {
      opts.onChange?.(false, why);
      await s().catch(() => {});
    }
    // Closing the connection (not just unlocking) also covers a connection in an unknown state.
    r?.release();
  };

  const once = async () => {
    if (stopped) return;
    if (stopDuties && reserved) {
      try {
        await withTimeout(reserved`select 1`, Math.max(checkMs, 5000));
      } catch (err) {
        await resign(`the connection holding the lock failed (${(err as Error).message})`);
        // A fresh pool: the old connection may be half-open.
        const old = sql;
        sql = pool();
        await old.end({ timeout: 1 }).catch(() => {});
      }
      return;
    }
    try {
      const r = await withTimeout(sql.reserve(), 15_000);
      const [row] = await withTimeout(r`select pg_try_advisory_lock(${DUTIES_LOCK_KEY}) as got`, 10_000);
      if (!row?.got || stopped) {
        if (row?.got) await r`select pg_advisory_unlock(${DUTIES_LOCK_KEY})`.catch(() => {});
        r.release();
        return;
      }
      reserved = r;
      stopDuties = start();
      opts.onChange?.(true, "took the duties lock");
    } catch {
      // PostgreSQL unreachable: try again at the next check.
    }
  };

  const loop = () => {
    if (stopped) return;
    pass = once().finally(() => {
      if (!stopped) timer = setTimeout(loop, checkMs);
    });
  };
  loop();

  return async () => {
    stopped = true;
    if (timer) clearTimeout(timer);
    await pass.catch(() => {});
    const s = stopDuties;
    stopDuties = null;
    if (s) await s().catch(() => {});
    if (reserved) {
      await reserved`select pg_advisory_unlock(${DUTIES_LOCK_KEY})`.catch(() => {});
      reserved.release();
      reserved = null;
    }
    await sql.end({ timeout: 2 }).catch(() => {});
  };
}
