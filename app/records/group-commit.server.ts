/**
 * Group commit (issue 19, ADR 0041): concurrent writers' items share one transaction. While a group's transaction
 * is in flight, new arrivals wait in a queue and form the next group (up to `maxGroup` items); each writer's promise
 * settles only after its group's transaction has committed (or rolled back). A group commit decides per item:
 * `commitGroup` returns one outcome per item, so an item refused inside the transaction (a lock, consent, a
 * duplicate) fails alone.
 *
 * When the group fails, what happens depends on whether its COMMIT was sent:
 * - before COMMIT (`commitGroup` throws a `GroupRolledBack`: a database error such as a unique violation from a
 *   concurrent writer, a lock or statement timeout, a deadlock): nothing of the group was written, and every item is
 *   retried on its own through `commitOne`, the single-item path, so only the offender fails, with the error it gets
 *   on its own. The retries run outside the group's slot (concurrently, each waiting as a lone write does), so the
 *   queue moves on meanwhile.
 * - COMMIT itself or anything after it failed (any other error: the COMMIT's reply lost on a dropped connection, a
 *   failure at commit): the group may well be written. Every item is rejected with that error, as a lone write whose
 *   COMMIT fails is, and nothing is retried (a retry could write a record twice).
 *
 * One committer per database handle, any studies. At most `maxInFlight` groups are in flight at a time; a group still
 * in flight after `stallMs` (a hung connection) stops counting against that limit, so the queue never waits forever
 * on it; its items still wait for its own outcome.
 */

export type Outcome<R> = { ok: true; value: R } | { ok: false; error: unknown };

/** A group's transaction failed before its COMMIT was sent: nothing of it was written; its items may be retried. */
export class GroupRolledBack extends Error {
  constructor(readonly cause: unknown) {
    super(`group commit rolled back: ${cause instanceof Error ? cause.message : String(cause)}`);
    this.name = "GroupRolledBack";
  }
}

export interface GroupCommitStats {
  /** Group transactions committed (one per group, including groups of one). */
  groups: number;
  /** Items acknowledged or refused through a group transaction. */
  items: number;
  /** The largest group so far. */
  largest: number;
  /** Groups rolled back before their COMMIT whose items were retried one by one. */
  fallbacks: number;
  /** Groups whose COMMIT (or what follows it) failed: every item rejected with that error, none retried. */
  uncertain: number;
  /** Groups still in flight after `stallMs`, whose slot was given to the next group. */
  stalled: number;
}

interface Waiting<I, R> {
  item: I;
  resolve: (r: R) => void;
  reject: (e: unknown) => void;
}

export class GroupCommitter<I, R> {
  private queue: Waiting<I, R>[] = [];
  private inFlight = 0;
  readonly stats: GroupCommitStats = { groups: 0, items: 0, largest: 0, fallbacks: 0, uncertain: 0, stalled: 0 };

  constructor(
    private readonly opts: {
      /** Items per group at most (default 200). */
      maxGroup?: number;
      /** Group transactions in flight at once (default 1). */
      maxInFlight?: number;
      /** After this long in flight, a group's slot is given to the next group (default 15 s). */
      stallMs?: number;
      /**
       * Write the group in one transaction; one outcome per item, in order, settled after the commit. Throws a
       * `GroupRolledBack` for a failure before COMMIT was sent, anything else for a failure of COMMIT or after it.
       */
      commitGroup: (items: I[]) => Promise<Outcome<R>[]>;
      /** The single-item path (its own transaction): used when a group's transaction rolled back before COMMIT. */
      commitOne: (item: I) => Promise<R>;
    },
  ) {}

  /** Items waiting for a group. */
  get queued(): number {
    return this.queue.length;
  }

  submit(item: I): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      this.pump();
    });
  }

  /** Start a group from the waiting items when a transaction slot is free. */
  private pump() {
    while (this.queue.length > 0 && this.inFlight < (this.opts.maxInFlight ?? 1)) {
      const group = this.queue.splice(0, this.opts.maxGroup ?? 200);
      this.inFlight++;
      let released = false;
      const release = () => {
        if (released) return;
        released = true;
        clearTimeout(timer);
        this.inFlight--;
        this.pump();
      };
      const timer = setTimeout(() => {
        this.stats.stalled++;
        release();
      }, this.opts.stallMs ?? 15_000);
      timer.unref?.();
      void this.commit(group, release).finally(release);
    }
  }

  private async commit(group: Waiting<I, R>[], release: () => void) {
    let outcomes: Outcome<R>[];
    try {
      outcomes = await this.opts.commitGroup(group.map((w) => w.item));
      if (outcomes.length !== group.length) throw new Error("group commit: one outcome per item expected");
    } catch (err) {
      if (!(err instanceof GroupRolledBack)) {
        // COMMIT was sent: the group may be written. Every item gets the error; none is written again.
        this.stats.uncertain++;
        for (const w of group) w.reject(err);
        return;
      }
      // Rolled back before COMMIT: nothing of the group was written. Each item on its own, outside the group's
      // slot, so that it gets the error (or the success) of the single-item path and the queue moves on.
      this.stats.fallbacks++;
      release();
      await Promise.all(
        group.map((w) =>
          this.opts.commitOne(w.item).then(
            (v) => w.resolve(v),
            (e: unknown) => w.reject(e),
          ),
        ),
      );
      return;
    }
    this.count(group.length);
    group.forEach((w, i) => {
      const o = outcomes[i];
      if (o.ok) w.resolve(o.value);
      else w.reject(o.error);
    });
  }

  private count(n: number) {
    this.stats.groups++;
    this.stats.items += n;
    this.stats.largest = Math.max(this.stats.largest, n);
  }
}
