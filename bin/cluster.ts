/**
 * The primary of a portal cluster (ADR 0043): `WEB_CONCURRENCY` worker processes (node:cluster), each a whole
 * portal (bin/serve.ts) sharing one listening port. The primary serves nothing and holds no database connection;
 * it restarts a worker that dies (at most RESTART_LIMIT times within RESTART_WINDOW_MS, then it stops everything
 * and exits 1), and on SIGTERM/SIGINT it asks each worker to stop (each finishes its requests and its background
 * duties) and exits once they have, killing any that has not within STOP_GRACE_MS.
 */
import cluster, { type Worker } from "node:cluster";

export const RESTART_LIMIT = 5;
export const RESTART_WINDOW_MS = 60_000;
export const STOP_GRACE_MS = 30_000;
/** The environment variable that tells a worker its number (1..WEB_CONCURRENCY). */
export const WORKER_NUMBER_VAR = "TRIALSEAL_WORKER";

export function runPrimary(workers: number, log: (line: string) => void = console.log): Promise<number> {
  const slots = new Map<Worker, number>();
  const restarts: number[] = [];
  const listening = new Set<number>();
  let stopping = false;
  let announced = false;
  let resolveDone: (code: number) => void = () => {};
  const done = new Promise<number>((r) => {
    resolveDone = r;
  });
  let exitCode = 0;

  const fork = (n: number) => {
    const w = cluster.fork({ [WORKER_NUMBER_VAR]: String(n) });
    slots.set(w, n);
    w.on("listening", (address) => {
      listening.add(n);
      if (!announced && listening.size === workers) {
        announced = true;
        log(`TrialSeal cluster: ${workers} workers on port ${address.port} (primary pid ${process.pid})`);
      }
    });
  };

  const stopAll = (why: string, code: number) => {
    if (stopping) return;
    stopping = true;
    exitCode = code;
    log(`Stopping the ${slots.size} worker(s) (${why})...`);
    if (slots.size === 0) return resolveDone(exitCode);
    for (const w of slots.keys()) {
      // SIGTERM runs the worker's own orderly stop (bin/serve.ts).
      if (!w.isDead()) w.process.kill("SIGTERM");
    }
    setTimeout(() => {
      for (const w of slots.keys()) if (!w.isDead()) w.process.kill("SIGKILL");
    }, STOP_GRACE_MS).unref();
  };

  cluster.on("exit", (w, code, signal) => {
    const n = slots.get(w);
    slots.delete(w);
    if (n === undefined) return;
    listening.delete(n);
    if (stopping) {
      if (slots.size === 0) resolveDone(exitCode);
      return;
    }
    const now = Date.now();
    while (restarts.length && now - restarts[0] > RESTART_WINDOW_MS) restarts.shift();
    if (restarts.length >= RESTART_LIMIT) {
      log(
        `worker ${n} (pid ${w.process.pid}) exited (${signal ?? `code ${code}`}); ` +
          `${RESTART_LIMIT} restarts within ${RESTART_WINDOW_MS / 1000} s already: giving up`,
      );
      stopAll("too many worker restarts", 1);
      return;
    }
    restarts.push(now);
    log(`worker ${n} (pid ${w.process.pid}) exited (${signal ?? `code ${code}`}): restarting it`);
    fork(n);
  });

  process.on("SIGINT", () => stopAll("SIGINT", 0));
  process.on("SIGTERM", () => stopAll("SIGTERM", 0));
  for (let n = 1; n <= workers; n++) fork(n);
  return done;
}
