/**
 * A real streaming replica of the shared test server (TEST_DATABASE_URL's server, 127.0.0.1:5432 by default): a
 * second PostgreSQL cluster made with `pg_basebackup -R` into a temporary directory, started on a free port as a hot
 * standby. It replicates the whole primary cluster (every database). The primary must allow replication connections
 * from 127.0.0.1 (pg_hba `host replication all 127.0.0.1/32 trust`, as .ci/run sets up) and run with
 * wal_level replica or logical. As root, the binaries run as the `postgres` user (PostgreSQL refuses root).
 * A physical replication slot keeps the WAL the replica still needs; `destroy` drops it, and `startReplica` drops
 * slots of earlier runs that are no longer in use (a run killed before its cleanup).
 */
import { execFileSync, spawnSync } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import postgres from "postgres";
import { waitFor } from "./wait.ts";

const SLOT_PREFIX = "trialseal_replica_test_";

/** The server binaries of the primary's major version (a standby must run the same major version). */
function binDir(major: number): string {
  const dir = path.join("/usr/lib/postgresql", String(major), "bin");
  if (!existsSync(path.join(dir, "pg_basebackup")) || !existsSync(path.join(dir, "postgres")))
    throw new Error(`no PostgreSQL ${major} server binaries in ${dir} (the primary runs ${major})`);
  return dir;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

export interface PgReplica {
  /** The replica's server URL with the database path of `primaryUrl` replaced by `database`. */
  urlFor(database: string): string;
  port: number;
  /** Run SQL on the replica (database `postgres` unless named). */
  query<T = Record<string, unknown>>(text: string, database?: string): Promise<T[]>;
  /** Stop the server, drop its slot on the primary and remove its directory; safe to call twice. */
  destroy(): Promise<void>;
  log(): string;
}

export async function startReplica(primaryUrl: string): Promise<PgReplica> {
  const primary = new URL(primaryUrl);
  const admin = postgres(primaryUrl, { max: 1, onnotice: () => {} });
  const slot = `${SLOT_PREFIX}${process.pid}_${Date.now().toString(36)}`;
  const dir = mkdtempSync(path.join(tmpdir(), "trialseal-replica-"));
  const data = path.join(dir, "data");
  const asRoot = process.getuid?.() === 0;
  let bin = "";
  if (asRoot) {
    const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim());
    const gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }).trim());
    chownSync(dir, uid, gid);
  }
  const run = (tool: string, args: string[], timeout = 120_000) => {
    const [cmd, argv] = asRoot
      ? ["runuser", ["-u", "postgres", "--", path.join(bin, tool), ...args]]
      : [path.join(bin, tool), args];
    const r = spawnSync(cmd, argv, { encoding: "utf8", timeout, cwd: dir });
    if (r.status !== 0)
      throw new Error(`${tool} ${args.join(" ")} failed (${r.status ?? r.signal}): ${r.stderr}${r.stdout}`);
  };
  let started = false;
  let destroyed = false;
  const logFile = path.join(dir, "server.log");
  const destroy = async () => {
    if (destroyed) return;
    destroyed = true;
    try {
      if (started) run("pg_ctl", ["-D", data, "-m", "immediate", "-w", "-t", "60", "stop"], 90_000);
    } catch {
      /* already stopped */
    }
    try {
      // The walsender of the stopped replica ends within moments: drop the slot once it is inactive.
      await waitFor(
        async () => {
          const [s] = await admin`select active from pg_replication_slots where slot_name = ${slot}`;
          if (s?.active) return false;
          if (s) await admin`select pg_drop_replication_slot(${slot})`;
          return true;
        },
        { what: `replication slot ${slot} dropped`, timeoutMs: 60_000 },
      );
    } finally {
      await admin.end({ timeout: 5 }).catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    }
  };
  try {
    const settings = await admin<{ name: string; setting: string }[]>`
      select name, setting from pg_settings where name in ('wal_level', 'max_wal_senders', 'max_connections',
        'max_worker_processes', 'max_prepared_transactions', 'max_locks_per_transaction', 'server_version_num')`;
    const get = (n: string) => settings.find((s) => s.name === n)?.setting ?? "";
    bin = binDir(Math.floor(Number(get("server_version_num")) / 10000));
    if (get("wal_level") === "minimal" || Number(get("max_wal_senders")) < 1)
      throw new Error(
        `the primary cannot stream WAL (wal_level=${get("wal_level")}, max_wal_senders=${get("max_wal_senders")})`,
      );
    // Slots of earlier runs whose process is gone (a run killed before its cleanup) would keep WAL on the primary
    // for ever: drop them (by the process id in their name; a concurrent run's slot is left alone).
    const stale = await admin<{ slot_name: string }[]>`select slot_name from pg_replication_slots
      where slot_name like ${`${SLOT_PREFIX}%`} and not active`;
    for (const { slot_name } of stale)
      if (!processAlive(Number(slot_name.slice(SLOT_PREFIX.length).split("_")[0])))
        await admin`select pg_drop_replication_slot(${slot_name})`;
    // biome-ignore format: option and value pairs on one line
    run("pg_basebackup", [
      "-h", primary.hostname, "-p", primary.port || "5432", "-U", decodeURIComponent(primary.username || "postgres"),
      "-D", data, "-R", "-X", "stream", "-C", "-S", slot, "--checkpoint=fast", "--no-sync", "-w",
    ]);
    // Debian keeps the server's configuration outside the data directory: give the copy its own.
    const own = (file: string, text: string) => {
      writeFileSync(path.join(data, file), text);
      if (asRoot) execFileSync("chown", ["postgres:postgres", path.join(data, file)]);
    };
    own("postgresql.conf", "");
    own("pg_hba.conf", "local all all trust\nhost all all 127.0.0.1/32 trust\n");
    own("pg_ident.conf", "");
    const port = await freePort();
    // A hot standby needs these at least as high as on its primary.
    const same = ["max_connections", "max_worker_processes", "max_prepared_transactions", "max_locks_per_transaction"]
      .map((n) => `-c ${n}=${get(n)}`)
      .join(" ");
    const opts =
      `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c hot_standby=on -c fsync=off ` +
      `-c shared_buffers=16MB -c max_wal_senders=${get("max_wal_senders")} ${same}`;
    started = true;
    run("pg_ctl", ["-D", data, "-l", logFile, "-o", opts, "-w", "-t", "120", "start"], 150_000);
    const urlFor = (database: string) => `postgres://postgres@127.0.0.1:${port}/${database}`;
    const query = async <T>(text: string, database = "postgres"): Promise<T[]> => {
      const c = postgres(urlFor(database), { max: 1, onnotice: () => {}, connect_timeout: 10 });
      try {
        return (await c.unsafe(text)) as unknown as T[];
      } finally {
        await c.end({ timeout: 5 });
      }
    };
    // Accepting connections as a standby that streams from the primary.
    await waitFor(
      async () => {
        const [r] = await query<{ rec: boolean }>("select pg_is_in_recovery() as rec").catch(() => []);
        if (!r?.rec) return false;
        const [s] = await admin`select active from pg_replication_slots where slot_name = ${slot}`;
        return s?.active === true;
      },
      { what: "the replica accepting connections and streaming from the primary", timeoutMs: 120_000 },
    );
    return {
      urlFor,
      port,
      query,
      destroy,
      log: () => (existsSync(logFile) ? readFileSync(logFile, "utf8") : ""),
    };
  } catch (err) {
    const log = existsSync(logFile) ? readFileSync(logFile, "utf8").slice(-2000) : "";
    await destroy().catch(() => {});
    throw new Error(`could not start a streaming replica: ${(err as Error).message}${log ? `\n${log}` : ""}`);
  }
}
