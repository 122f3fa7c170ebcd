/**
 * The anchor worker. For each configured ledger, on its own cadence, it commits to anchoring the latest
 * checkpoint (a row in `anchors`, in the database, so work survives restarts), then works through that
 * ledger's queue in tree-size order: anchor pending rows, re-check included ones (finality, reorgs).
 * A ledger that is down is retried with exponential back-off; nothing is dropped, nothing sent twice
 * (adapters save in-flight state before irreversible steps). Runs inside `npm start` and as `trialseal anchor`.
 */
import { checkpointHash as hashOfNote } from "../../anchoring/log/checkpoint.ts";
import { LedgerError, type Ledger, type WorkState } from "../../anchoring/ledgers/ledger.ts";
import { AnchorReceiptSchema } from "../../anchoring/ledgers/receipt.ts";
import * as q from "../../db/queries/anchors.ts";
import { readRing } from "../keys/key-ring.server.ts";
import { latestCheckpoint } from "../../db/queries/log.ts";
import type { AppContext } from "../platform/context.server.ts";
import type { ConfiguredLedger } from "./ledger-factory.server.ts";
import { ledgerPolicies } from "./ledger-factory.server.ts";
import { trustPolicy } from "../keys/log-keys.server.ts";

const BASE_BACKOFF_MS = 1000;
const LEASE_MS = 5 * 60_000;

export type AnchorEvent =
  | { type: "committed"; ledger: string; treeSize: number }
  | { type: "anchored"; ledger: string; treeSize: number; status: "included" | "final" }
  | { type: "reorged"; ledger: string; treeSize: number }
  | { type: "retry"; ledger: string; treeSize: number; error: string; attempts: number; nextAttemptAt: Date }
  | { type: "failed"; ledger: string; treeSize: number; error: string };

/**
 * The deployment's trust policy: log key plus every enabled ledger's verification data. It needs no database
 * (configuration, key rings, ledgers): `trialseal trust-policy` prints it without opening one.
 */
export function deploymentTrustPolicy(ctx: Pick<AppContext, "env" | "crypto" | "signer" | "ledgers">) {
  return trustPolicy(
    ctx.crypto,
    ctx.env.logOrigin,
    ctx.signer,
    ledgerPolicies(ctx.ledgers),
    readRing(ctx.env.dataDir, "log"),
    ctx.env.anchoring.ledgerTime,
  );
}

function backoff(attempts: number, maxMs: number): number {
  const exp = Math.min(maxMs, BASE_BACKOFF_MS * 2 ** Math.min(attempts, 30));
  return Math.round(exp / 2 + Math.random() * (exp / 2));
}

/** Commit to anchoring the latest checkpoint on `ledger` (no-op when not due). */
export async function commitLatest(ctx: AppContext, ledger: Ledger): Promise<number | null> {
  const cp = await latestCheckpoint(ctx.db);
  if (!cp) return null;
  const row = await q.commitToAnchor(ctx.db, ledger.name, { treeSize: cp.treeSize, checkpointHash: cp.checkpointHash });
  return row ? row.treeSize : null;
}

/**
 * Work through a ledger's queue until it is empty, a row must wait (back-off, or not yet final), or
 * `budgetMs` is spent. Returns what happened.
 */
export async function processQueue(
  ctx: AppContext,
  ledger: Ledger,
  opts: { budgetMs?: number; onEvent?: (e: AnchorEvent) => void } = {},
): Promise<AnchorEvent[]> {
  const events: AnchorEvent[] = [];
  const emit = (e: AnchorEvent) => {
    events.push(e);
    opts.onEvent?.(e);
  };
  const until = Date.now() + (opts.budgetMs ?? 60_000);
  const fail = async (row: q.AnchorRow, err: unknown): Promise<"stop" | "next"> => {
    const retryable = !(err instanceof LedgerError) || err.retryable;
    const error = q.storableError(
      err instanceof LedgerError ? err.message : `${ledger.name}: ${(err as Error).message}`,
    );
    if (!retryable) {
      await q.markFailed(ctx.db, row.id, error);
      emit({ type: "failed", ledger: ledger.name, treeSize: row.treeSize, error });
      return "next";
    }
    const next = new Date(Date.now() + backoff(row.attempts, ctx.env.anchoring.retryMaxMs));
    await q.markAttemptFailed(ctx.db, row.id, error, next);
    emit({
      type: "retry",
      ledger: ledger.name,
      treeSize: row.treeSize,
      error,
      attempts: row.attempts + 1,
      nextAttemptAt: next,
    });
    return "stop";
  };

  // 1. Anchors already on the ledger but not final yet: final now, still waiting, or dropped by a reorg.
  let after = -1;
  while (Date.now() < until) {
    const row = await q.leaseNext(ctx.db, ledger.name, LEASE_MS, "included", after);
    if (!row) break;
    after = row.treeSize;
    try {
      const receipt = AnchorReceiptSchema.parse(JSON.parse(row.receiptText ?? "null"));
      const out = await ledger.refresh(receipt);
      if (out.status === "final") {
        await q.markAnchored(ctx.db, row.id, {
          status: "final",
          receiptText: JSON.stringify(out.receipt),
          anchoredAt: out.anchoredAt ?? row.anchoredAt,
        });
        emit({ type: "anchored", ledger: ledger.name, treeSize: row.treeSize, status: "final" });
      } else if (out.status === "pending") {
        await q.backToPending(
          ctx.db,
          row.id,
          "the anchor transaction left the canonical chain (reorg); anchoring again",
        );
        emit({ type: "reorged", ledger: ledger.name, treeSize: row.treeSize });
      } else {
        await q.releaseLease(ctx.db, row.id); // not final yet: look again on the next tick
      }
    } catch (err) {
      // Could not re-check (ledger unreachable): keep it included, look again later.
      await q.releaseLease(ctx.db, row.id);
      emit({
        type: "retry",
        ledger: ledger.name,
        treeSize: row.treeSize,
        error: q.storableError(err instanceof LedgerError ? err.message : (err as Error).message),
        attempts: row.attempts,
        nextAttemptAt: new Date(Date.now() + 1000),
      });
      break;
    }
  }

  // 2. Pending anchors, strictly in tree-size order.
  while (Date.now() < until) {
    const row = await q.leaseNext(ctx.db, ledger.name, LEASE_MS, "pending");
    if (!row) break;
    const req = {
      origin: ctx.env.logOrigin,
      treeSize: row.treeSize,
      checkpointHash: row.checkpointHash,
      note: row.noteText,
    };
    // The stored hash must be the hash of the stored note: never anchor something else.
    const recomputed = hashOfNote(ctx.crypto, row.noteText);
    if (Buffer.compare(Buffer.from(recomputed), Buffer.from(row.checkpointHash)) !== 0) {
      const error = `checkpoint ${row.treeSize}: stored hash does not match its note; refusing to anchor`;
      await q.markFailed(ctx.db, row.id, error);
      emit({ type: "failed", ledger: ledger.name, treeSize: row.treeSize, error });
      continue;
    }
    try {
      const work = row.workText ? (JSON.parse(row.workText) as WorkState) : null;
      const out = await ledger.anchor(req, { work, saveWork: (w) => q.saveWork(ctx.db, row.id, w) });
      if (out.status === "pending") throw new LedgerError(ledger.name, "sent, not yet included");
      await q.markAnchored(ctx.db, row.id, {
        status: out.status,
        receiptText: JSON.stringify(out.receipt),
        anchoredAt: out.anchoredAt ?? null,
      });
      emit({ type: "anchored", ledger: ledger.name, treeSize: row.treeSize, status: out.status });
    } catch (err) {
      if ((await fail(row, err)) === "stop") break; // keep the order: nothing larger goes out before this one
    }
  }
  return events;
}

/** One round for every ledger (or the named ones): commit the latest checkpoint, then process the queue. */
export async function anchorOnce(
  ctx: AppContext,
  opts: { ledgers?: string[]; onEvent?: (e: AnchorEvent) => void } = {},
): Promise<AnchorEvent[]> {
  const events: AnchorEvent[] = [];
  for (const { ledger } of selected(ctx.ledgers, opts.ledgers)) {
    const committed = await commitLatest(ctx, ledger);
    if (committed !== null) {
      const e: AnchorEvent = { type: "committed", ledger: ledger.name, treeSize: committed };
      events.push(e);
      opts.onEvent?.(e);
    }
    events.push(...(await processQueue(ctx, ledger, { onEvent: opts.onEvent })));
  }
  return events;
}

function selected(ledgers: ConfiguredLedger[], names?: string[]) {
  return names && names.length > 0 ? ledgers.filter((l) => names.includes(l.ledger.name)) : ledgers;
}

/**
 * The background worker: per ledger, every intervalMs commit the latest checkpoint; every pollMs (at most
 * 1 s) work the queue (retries whose back-off expired, included anchors awaiting finality).
 * Returns a stop function that waits for work in progress.
 */
export function startAnchorWorker(
  ctx: AppContext,
  opts: { onEvent?: (e: AnchorEvent) => void; onError?: (err: unknown) => void; pollMs?: number } = {},
) {
  const onError = opts.onError ?? ((e: unknown) => console.error(`anchor worker: ${(e as Error).message}`));
  let stopped = false;
  const timers = new Set<NodeJS.Timeout>();
  const running = new Set<Promise<unknown>>();
  for (const c of ctx.ledgers) {
    const poll = opts.pollMs ?? Math.min(1000, c.intervalMs);
    let due = Date.now() + c.intervalMs;
    let first = true;
    const tick = () => {
      if (stopped) return;
      const p = (async () => {
        if (first || Date.now() >= due) {
          first = false;
          due = Date.now() + c.intervalMs;
          const committed = await commitLatest(ctx, c.ledger);
          if (committed !== null) opts.onEvent?.({ type: "committed", ledger: c.ledger.name, treeSize: committed });
        }
        await processQueue(ctx, c.ledger, { budgetMs: 30_000, onEvent: opts.onEvent });
      })()
        .catch(onError)
        .finally(() => {
          running.delete(p);
          if (!stopped) {
            const t = setTimeout(() => {
              timers.delete(t);
              tick();
            }, poll);
            timers.add(t);
          }
        });
      running.add(p);
    };
    const t = setTimeout(() => {
      timers.delete(t);
      tick();
    }, poll);
    timers.add(t);
  }
  return async () => {
    stopped = true;
    for (const t of timers) clearTimeout(t);
    await Promise.all([...running]);
  };
}

export async function ledgersStatus(ctx: AppContext) {
  const rows = await q.ledgerStatus(ctx.db);
  return ctx.ledgers.map((c) => {
    const r = rows.find((x) => x.ledger === c.ledger.name);
    return {
      ledger: c.ledger.name,
      type: c.ledger.type,
      intervalMs: c.intervalMs,
      lastFinalSize: r?.lastFinalSize ?? null,
      lastFinalAt: r?.lastFinalAt ?? null,
      pending: r?.pending ?? 0,
      included: r?.included ?? 0,
      failed: r?.failed ?? 0,
      lastError: r?.lastError ?? null,
      attempts: r?.attempts ?? 0,
      nextAttemptAt: r?.nextAttemptAt ?? null,
    };
  });
}

/** What the status page and GET /api/v1/status show: the log and each ledger's anchoring. */
export async function systemStatus(ctx: AppContext) {
  const cp = await latestCheckpoint(ctx.db);
  const logSize = cp?.treeSize ?? 0;
  const ledgers = (await ledgersStatus(ctx)).map((l) => ({
    ...l,
    behind: logSize - (l.lastFinalSize ?? 0),
    state:
      l.lastError && (l.pending > 0 || l.included > 0)
        ? ("retrying" as const)
        : l.included > 0
          ? ("awaiting finality" as const)
          : l.pending > 0
            ? ("anchoring" as const)
            : ("up to date" as const),
  }));
  return { origin: ctx.env.logOrigin, logSize, checkpointAt: cp?.createdAt ?? null, ledgers };
}
