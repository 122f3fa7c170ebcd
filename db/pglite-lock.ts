/**
 * Only one process may open a PGlite data directory. The opener creates `<dir>.lock` atomically (O_EXCL)
 * holding its pid and anything it wants others to know (the running portal writes its control socket
 * there, so the CLI can go through it). A lock whose process is gone is stale and is taken over.
 */
import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from "node:fs";
import path from "node:path";

export interface PgliteLockInfo {
  pid: number;
  startedAt: string;
  [key: string]: unknown;
}

export interface PgliteLock {
  file: string;
  release(): void;
}

export class PgliteBusyError extends Error {
  constructor(
    readonly dir: string,
    readonly holder: PgliteLockInfo,
  ) {
    super(
      `the embedded database ${dir} is in use by process ${holder.pid}` +
        `${holder.controlSocket ? " (the running portal)" : ""}; ` +
        `stop that process, or set DATABASE_URL to use PostgreSQL`,
    );
    this.name = "PgliteBusyError";
  }
}

export function lockFileFor(dir: string): string {
  return `${path.resolve(dir)}.lock`;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** The live holder of the lock on `dir`, or null when the directory is free (stale locks count as free). */
export function readPgliteLock(dir: string): PgliteLockInfo | null {
  let text: string;
  try {
    text = readFileSync(lockFileFor(dir), "utf8");
  } catch {
    return null;
  }
  try {
    const info = JSON.parse(text) as PgliteLockInfo;
    if (typeof info.pid === "number" && info.pid !== process.pid && alive(info.pid)) return info;
    if (info.pid === process.pid) return info;
  } catch {
    // A half-written lock: its writer died between create and write. Treat as stale.
  }
  return null;
}

export function acquirePgliteLock(dir: string, extra: Record<string, unknown>): PgliteLock {
  const file = lockFileFor(dir);
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(file, "wx", 0o600);
      const info: PgliteLockInfo = { ...extra, pid: process.pid, startedAt: new Date().toISOString() };
      writeSync(fd, JSON.stringify(info));
      closeSync(fd);
      let released = false;
      return {
        file,
        release() {
          if (released) return;
          released = true;
          try {
            const current = JSON.parse(readFileSync(file, "utf8")) as PgliteLockInfo;
            if (current.pid === process.pid) unlinkSync(file);
          } catch {
            // already gone
          }
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      const holder = readPgliteLock(dir);
      if (holder && holder.pid !== process.pid) throw new PgliteBusyError(dir, holder);
      if (holder && holder.pid === process.pid) throw new PgliteBusyError(dir, holder);
      try {
        unlinkSync(file); // stale
      } catch {
        // someone else removed it first; retry
      }
    }
  }
  throw new Error(`could not lock ${dir}`);
}
