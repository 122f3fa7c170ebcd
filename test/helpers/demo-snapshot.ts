/**
 * The demo snapshot: a portal's data directory and database just after it seeded the demo study, made once and
 * cloned for every test that wants "a demo portal on a fresh database" but does not test seeding itself.
 *
 * Seeding the demo study is well over half of a portal start (tens of seconds on a loaded machine), and nearly every
 * browser, integration and security test file starts one. The first clone in a run starts a real portal into a fresh
 * DATA_DIR (and a scratch PostgreSQL database, or the embedded PGlite one in the data directory), lets it seed and
 * stops it cleanly; the data directory (without sockets and lock files) and the database (renamed, as a template) are
 * kept. A clone is a copy of the directory plus `CREATE DATABASE clone TEMPLATE snapshot` (PostgreSQL copies the
 * files; the template has no connections), and its portal starts without seeding work: seedDemo finds DEMO-001 and
 * the portal prints "Demo study DEMO-001: the demo logins of this database are in FILE" (demoPasswordOf reads both).
 *
 * - Keyed by the engine and a hash of the code that migrates and seeds (app/, db/, anchoring/, bin/, build/index.js;
 *   test files excluded), and reused for at most MAX_AGE_MS and within one UTC day (the seed writes dates relative
 *   to its day, e.g. "yesterday's" visit), so a change of code or day makes a new one.
 * - Made under an exclusive lock file (two vitest workers or runs never make or clone it at once) in
 *   $TMPDIR/trialseal-demo-snapshots, with the template databases `ts_demo_*` on the test server.
 * - Clones share the snapshot's keys (DATA_KEY in secrets.json, the log and local-ledger signing keys) and local
 *   ledger: each clone is its own copy, so nothing written by one test reaches another. The demo credentials file is
 *   named after the database (demoCredentialsFile): a PostgreSQL clone gets it under its own database's name.
 * - Tests of a first start, of migrations or of the seed itself start a portal on an empty data directory instead.
 */
import { createHash, randomBytes } from "node:crypto";
import {
  closeSync,
  cpSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import postgres from "postgres";
import { createScratchPostgres, TEST_DATABASE_URL } from "./db.ts";
import { dataDirWithDatabase } from "./pglite-template.ts";
import { demoPasswordOf, ROOT, startPortal, tempDataDir } from "./portal.ts";
import { waitFor } from "./wait.ts";

const CACHE = path.join(tmpdir(), "trialseal-demo-snapshots");
/** A snapshot older than this is made again (a CI run takes well under it; a developer's rerun an hour later too). */
const MAX_AGE_MS = 3 * 3600_000;
/** Snapshots of other keys older than this are removed when a new one is made. */
const STALE_MS = 24 * 3600_000;

export type SnapshotEngine = "postgres" | "pglite";

export interface DemoClone {
  /** A new data directory (the snapshot's keys and local ledger; PGlite: its embedded database). */
  dataDir: string;
  /** PostgreSQL: the new database's URL (pass it as DATABASE_URL with dataDir). */
  databaseUrl?: string;
  /** The demo password (every demo account). */
  demoPassword: string;
  /** Start-up environment: DATA_DIR (+ DATABASE_URL). */
  env: Record<string, string>;
  /** Drop the database (PostgreSQL); the directory stays in $TMPDIR like every test data directory. */
  drop(): Promise<void>;
}

interface Snapshot {
  key: string;
  engine: SnapshotEngine;
  dir: string;
  database?: string;
  createdAt: number;
  demoPassword: string;
  /** The credentials file's content, written into each clone under the name its database gives it. */
  credentials: string;
}

function hashTree(h: ReturnType<typeof createHash>, dir: string) {
  for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) hashTree(h, p);
    else if (e.isFile() && !/\.test\.tsx?$/.test(e.name)) h.update(p).update(readFileSync(p));
  }
}

/** The snapshot's key: the engine, the day, and the code that migrates and seeds. */
export function snapshotKey(engine: SnapshotEngine): string {
  const h = createHash("sha256").update(engine).update(new Date().toISOString().slice(0, 10));
  for (const d of ["app", "db", "anchoring", "bin"]) hashTree(h, path.join(ROOT, d));
  const build = path.join(ROOT, "build", "index.js");
  if (existsSync(build)) h.update(readFileSync(build));
  return h.digest("hex").slice(0, 16);
}

/** The file of the demo logins the portal looks for (as demoCredentialsFile in app/studies/demo-seed.server.ts). */
function credentialsFileOf(dataDir: string, databaseUrl?: string): string {
  if (!databaseUrl) return path.join(dataDir, "demo-credentials.txt");
  const u = new URL(databaseUrl);
  const where = `${u.hostname}-${u.port || "5432"}-${u.pathname.slice(1) || "postgres"}`;
  return path.join(dataDir, `demo-credentials-postgres-${where.replace(/[^A-Za-z0-9._-]/g, "_")}.txt`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Run `fn` holding the exclusive lock file (O_EXCL; a lock left by a dead process is taken over). */
async function withLock<T>(fn: () => Promise<T>): Promise<T> {
  mkdirSync(CACHE, { recursive: true });
  const lock = path.join(CACHE, "lock");
  const take = () => {
    try {
      const fd = openSync(lock, "wx");
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      let pid = 0;
      try {
        pid = Number(readFileSync(lock, "utf8") || "0");
      } catch {
        return false; // released meanwhile: take it at the next check
      }
      // A lock file being written has no pid yet; one of a process that died is stale.
      if (pid > 0 && !alive(pid)) rmSync(lock, { force: true });
      return false;
    }
  };
  // Making a snapshot takes one seeded portal start: up to a few minutes on a loaded machine.
  await waitFor(take, { what: `the demo snapshot lock ${lock}`, timeoutMs: 600_000, intervalMs: 200 });
  try {
    return await fn();
  } finally {
    rmSync(lock, { force: true });
  }
}

const indexFile = (engine: SnapshotEngine) => path.join(CACHE, `current-${engine}.json`);

function readIndex(engine: SnapshotEngine): Snapshot | null {
  try {
    return JSON.parse(readFileSync(indexFile(engine), "utf8")) as Snapshot;
  } catch {
    return null;
  }
}

async function adminSql<T>(fn: (sql: postgres.Sql) => Promise<T>): Promise<T> {
  const sql = postgres(TEST_DATABASE_URL, { max: 1, onnotice: () => {} });
  try {
    return await fn(sql);
  } finally {
    await sql.end();
  }
}

/** Start a portal on a fresh data directory (and database), let it seed, stop it, keep both. Under the lock. */
async function makeSnapshot(engine: SnapshotEngine, key: string): Promise<Snapshot> {
  const stamp = Date.now().toString(36);
  const dir = path.join(CACHE, `${key}-${engine}-${stamp}`);
  const building = engine === "postgres" ? tempDataDir() : await dataDirWithDatabase();
  const pg = engine === "postgres" ? await createScratchPostgres({ migrated: true }) : null;
  const env: Record<string, string> = { DATA_DIR: building };
  if (pg) env.DATABASE_URL = pg.url;
  // A seeded start: minutes on a machine with every core busy (the budget only bounds a hang).
  const portal = await startPortal(env, 600_000);
  const demoPassword = (() => {
    try {
      return demoPasswordOf(portal);
    } catch (err) {
      void portal.stop();
      throw err;
    }
  })();
  // A clean stop: the sealer and anchor worker finish, the embedded database is closed.
  const code = await portal.stop();
  if (code !== 0) throw new Error(`the demo snapshot's portal stopped with ${code}:\n${portal.output()}`);
  const credentialsFile = credentialsFileOf(building, pg?.url);
  const credentials = readFileSync(credentialsFile, "utf8");
  rmSync(credentialsFile);
  // Nothing of the running process: its control socket and the embedded database's lock file.
  for (const f of ["control.sock", "pglite.lock"]) rmSync(path.join(building, f), { force: true });
  let database: string | undefined;
  if (pg) {
    database = `ts_demo_${key}_${stamp}`;
    const from = new URL(pg.url).pathname.slice(1);
    await adminSql((sql) => sql.unsafe(`ALTER DATABASE ${from} RENAME TO ${database}`));
  }
  renameSync(building, dir);
  const snap: Snapshot = { key, engine, dir, database, createdAt: Date.now(), demoPassword, credentials };
  const tmp = `${indexFile(engine)}.${randomBytes(4).toString("hex")}`;
  writeFileSync(tmp, JSON.stringify(snap));
  renameSync(tmp, indexFile(engine));
  return snap;
}

/** Remove snapshots no index names any more and older than STALE_MS (directories and template databases). */
async function removeStale(keep: Snapshot[]) {
  const now = Date.now();
  const stampOf = (name: string) => Number.parseInt(name.split(/[-_]/).pop() ?? "", 36);
  for (const name of readdirSync(CACHE)) {
    const p = path.join(CACHE, name);
    if (!/-(postgres|pglite)-[0-9a-z]+$/.test(name) || keep.some((s) => s.dir === p)) continue;
    if (now - (stampOf(name) || statSync(p).mtimeMs) > STALE_MS) rmSync(p, { recursive: true, force: true });
  }
  if (!keep.some((s) => s.database)) return; // the test server is only asked when it holds a snapshot
  // Best effort: a failure to clean up never fails the test that asked for a clone.
  await adminSql(async (sql) => {
    const rows = await sql<{ datname: string }[]>`select datname from pg_database where datname like 'ts_demo_%'`;
    for (const { datname } of rows) {
      if (keep.some((s) => s.database === datname) || now - stampOf(datname) <= STALE_MS) continue;
      await sql.unsafe(`DROP DATABASE IF EXISTS ${datname} WITH (FORCE)`);
    }
  }).catch(() => {});
}

/**
 * A fresh copy of the demo snapshot (made first if there is none for this code and day): a data directory and,
 * on PostgreSQL, a database of its own, holding the seeded demo study. Start a portal on `clone.env`.
 */
export async function demoClone(engine: SnapshotEngine = "postgres"): Promise<DemoClone> {
  const key = snapshotKey(engine);
  return withLock(async () => {
    let snap = readIndex(engine);
    const fresh = (s: Snapshot | null): s is Snapshot =>
      !!s && s.key === key && Date.now() - s.createdAt < MAX_AGE_MS && existsSync(s.dir);
    if (fresh(snap) && snap.database) {
      const name = snap.database;
      const [row] = await adminSql((sql) => sql`select 1 as ok from pg_database where datname = ${name}`);
      if (!row) snap = null;
    }
    if (!fresh(snap)) {
      snap = await makeSnapshot(engine, key);
      await removeStale([snap, readIndex(engine === "postgres" ? "pglite" : "postgres")].filter((s) => !!s));
    }
    const dataDir = path.join(tmpdir(), `trialseal-it-${randomBytes(6).toString("hex")}`);
    cpSync(snap.dir, dataDir, { recursive: true });
    let databaseUrl: string | undefined;
    let drop = async () => {};
    if (snap.database) {
      const name = `ts_test_${Date.now().toString(36)}_${randomBytes(4).toString("hex")}`;
      const template = snap.database;
      await adminSql((sql) => sql.unsafe(`CREATE DATABASE ${name} TEMPLATE ${template}`));
      const u = new URL(TEST_DATABASE_URL);
      u.pathname = `/${name}`;
      databaseUrl = u.toString();
      drop = () => adminSql(async (sql) => void (await sql.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)));
    }
    writeFileSync(credentialsFileOf(dataDir, databaseUrl), snap.credentials, { mode: 0o600 });
    const env: Record<string, string> = { DATA_DIR: dataDir };
    if (databaseUrl) env.DATABASE_URL = databaseUrl;
    return { dataDir, databaseUrl, demoPassword: snap.demoPassword, env, drop };
  });
}
