/**
 * Waiting in tests: for a condition, until a wall-clock deadline, never for a fixed time sized to a fast machine.
 * The default deadline is generous (a loaded CI machine is several times slower than a laptop): a wait that is
 * met returns as soon as it is met, so a long deadline costs nothing when things work.
 */
import { inspect } from "node:util";

/** The default deadline of {@link waitFor}: long enough for a machine with every core busy. */
export const DEFAULT_WAIT_MS = 60_000;

export interface WaitOptions {
  /** Wall-clock deadline in ms (default {@link DEFAULT_WAIT_MS}). */
  timeoutMs?: number;
  /** Pause between two checks in ms (default 100). */
  intervalMs?: number;
  /** What is awaited, for the error on timeout ("the first checkpoint anchored"). */
  what?: string;
  /** An error thrown by the condition ends the wait at once (default: it is retried like a falsy value). */
  rethrow?: boolean;
}

type Truthy<T> = Exclude<T, null | undefined | false | "" | 0>;

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

function describeValue(v: unknown): string {
  return inspect(v, { depth: 3, breakLength: Number.POSITIVE_INFINITY, maxStringLength: 2000 });
}

/**
 * Check `cond` until it returns a truthy value (returned) or the deadline passes (an Error naming `what` and the
 * last value it returned or the last error it threw). A check that throws is retried like a falsy one, so a
 * condition may be written with `expect(...)` inside (with `rethrow`, an error fails the wait at once instead).
 * A single check that is still running at the deadline counts as a timeout too (the wait never outlives it).
 */
export async function waitFor<T>(cond: () => T | Promise<T>, opts: WaitOptions = {}): Promise<Truthy<T>> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_WAIT_MS;
  const intervalMs = opts.intervalMs ?? 100;
  const what = opts.what ?? "a condition";
  const started = Date.now();
  const deadline = started + timeoutMs;
  let last: { value: unknown } | { error: unknown } | undefined;
  let checks = 0;
  for (;;) {
    checks++;
    let timer: NodeJS.Timeout | undefined;
    const expired = Symbol("expired");
    try {
      const r = await Promise.race([
        Promise.resolve().then(cond),
        new Promise<typeof expired>((resolve) => {
          timer = setTimeout(() => resolve(expired), Math.max(0, deadline - Date.now()));
        }),
      ]);
      if (r === expired) {
        last ??= { value: "(the first check was still running)" };
        break;
      }
      if (r) return r as Truthy<T>;
      last = { value: r };
    } catch (error) {
      if (opts.rethrow) throw error;
      last = { error };
    } finally {
      clearTimeout(timer);
    }
    const left = deadline - Date.now();
    if (left <= 0) break;
    await pause(Math.min(intervalMs, left));
  }
  const seen =
    last && "error" in last
      ? `last error: ${last.error instanceof Error ? last.error.message : describeValue(last.error)}`
      : `last value: ${describeValue(last?.value)}`;
  throw new Error(`timed out after ${Date.now() - started} ms (${checks} checks) waiting for ${what}; ${seen}`, {
    cause: last && "error" in last ? last.error : undefined,
  });
}

/**
 * Sleep for a fixed time. Only for what a condition cannot express, e.g. "nothing happens for a while" (a
 * negative check, which a slow machine can only make weaker, never fail); say why where it is used.
 */
export const sleep = pause;
