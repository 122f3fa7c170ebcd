/**
 * Group commit (issue 19, ADR 0041): concurrent writers' items share one transaction. While a group's transaction
 * is in flight, new arrivals wait in a queue and form the next group (up to `maxGroup` items); each writer's promise
 * settles only after its group's transaction has committed (or rolled back). A group commit decides per item:
 * `commitGroup` returns one outcome per item, so an item refused inside the transaction (a lock, consent, a
 * duplicate) fails alone. When the group's transaction itself fails (a database error, e.g. a unique violation from
 * a concurrent writer outside the group), every item of the group is retried one by one through `commitOne`, the
 * single-item path, so only the offender fails, with the error it gets on its own.
 *
 * One committer per database handle: on PGlite (one connection) and on PostgreSQL (a pool) alike, at most one group
 * transaction per committer is in flight at a time.
 */

export type Outcome<R> = { ok: true; value: R } | { ok: false; error: unknown };

export interface GroupCommitStats {
  /** Group transactions committed (one per group, including groups of one). */
  groups: number;
  /** Items acknowledged or refused through a group transaction. */
  items: number;
  /** The largest group so far. */
  largest: number;
  /** Groups whose transaction failed and whose items were retried one by one. */
  fallbacks: number;
}

interface Waiting<I, R> {
  item: I;
  resolve: (r: R) => void;
  reject: (e: unknown) => void;
}

export class GroupCommitter<I, R> {
  private queue: Waiting<I, R>[] = [];
  private inFlight = 0;
  readonly stats: GroupCommitStats = { groups: 0, items: 0, largest: 0, fallbacks: 0 };

  constructor(
    private readonly opts: {
      /** Items per group at most (default 200). */
      maxGroup?: number;
      /** Group transactions in flight at once (default 1). */
      maxInFlight?: number;
      /** Write the group in one transaction; one outcome per item, in order, settled after the commit. */
      commitGroup: (items: I[]) => Promise<Outcome<R>[]>;
      /** The single-item path (its own transaction): used when a group's transaction fails. */
      commitOne: (item: I) => Promise<R>;
    },
  ) {}

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
      void this.commit(group).finally(() => {
        this.inFlight--;
        this.pump();
      });
    }
  }

  private async commit(group: Waiting<I, R>[]) {
    let outcomes: Outcome<R>[] | null = null;
    try {
      outcomes = await this.opts.commitGroup(group.map((w) => w.item));
      if (outcomes.length !== group.length) throw new Error("group commit: one outcome per item expected");
    } catch {
      // Rolled back: nothing of the group was written. Each item is retried on its own below, so that it gets
      // the error (or the success) of the single-item path.
      outcomes = null;
      this.stats.fallbacks++;
    }
    if (outcomes) {
      this.count(group.length);
      group.forEach((w, i) => {
        const o = outcomes[i];
        if (o.ok) w.resolve(o.value);
        else w.reject(o.error);
      });
      return;
    }
    // The group's transaction failed as a whole: each item on its own, in order.
    for (const w of group) {
      try {
        w.resolve(await this.opts.commitOne(w.item));
      } catch (err) {
        w.reject(err);
      }
    }
  }

  private count(n: number) {
    this.stats.groups++;
    this.stats.items += n;
    this.stats.largest = Math.max(this.stats.largest, n);
  }
}
