/**
 * Import jobs (issue 18, ADR 0037): a file is stored with its SHA-256 as a queued job; the portal's runner (started
 * in bin/serve.ts like the sealer) reads it (readImport), resolves and writes it (import-writer.server.ts), one job
 * at a time. Progress: an in-process map the page's resource route reads first (the write is one transaction, and
 * on PGlite the one connection is held by it), and the job row, updated while rows are built (outside the data
 * transaction). A dry run lists every problem and writes nothing. The file's bytes are cleared when the job ends.
 */
import { asc, desc, eq, and, sql, type SQL } from "drizzle-orm";
import { rowsOf } from "../../db/queries/rows.ts";
import { importJobs } from "../../db/schema/study-operations.ts";
import { studies, users } from "../../db/schema/index.ts";
import type { AppContext } from "../platform/context.server.ts";
import { can, requirePermission, type Principal } from "../platform/permissions.server.ts";
import { ServiceError } from "../platform/errors.server.ts";
import { rowTokenColumns } from "../platform/attribution.ts";
import { getStudyOrThrow } from "../studies/studies.server.ts";
import { principalForUser } from "../accounts/auth.server.ts";
import { findUserByEmail } from "../../db/queries/users.ts";
import { toHex } from "../../anchoring/log/bytes.ts";
import { UnusableFileError, type ImportMap, type ImportProblem, type ParsedImport } from "./import-rows.ts";
import { IMPORT_MAX_BYTES, formatOfFileName, readImport } from "./read-import.ts";
import { parseMapFile } from "./map-file.ts";
import { approvedForms, ImportProblemsError, writeImport } from "./import-writer.server.ts";

/** The largest file an import takes (the page's upload limit too). */
export const IMPORT_FILE_MAX_BYTES = IMPORT_MAX_BYTES;
/** Problems kept on the job row (the count is always complete). */
const PROBLEMS_KEPT = 1000;

export type ImportJobRow = typeof importJobs.$inferSelect;

/** Live progress of running jobs, by id (this process). */
const live = new Map<string, { done: number; total: number; startedAt: number }>();
/** The principal each job was queued by (this process): an API token's; a user's is read afresh when it runs. */
const principals = new Map<string, Principal>();

/** What a job's problems_text holds: the problems (first 1,000), the mapping preview and the reader's notes. */
export interface ImportReport {
  problems: ImportProblem[];
  mapping: ParsedImport["mapping"];
  notes: string[];
}

/** problems_text read back: an object {problems, mapping, notes}, or (jobs of before the preview) a bare array. */
export function importReportOf(text: string | null | undefined): ImportReport {
  const v = text ? (JSON.parse(text) as unknown) : [];
  if (Array.isArray(v)) return { problems: v as ImportProblem[], mapping: [], notes: [] };
  const r = v as Partial<ImportReport>;
  return { problems: r.problems ?? [], mapping: r.mapping ?? [], notes: r.notes ?? [] };
}

/** The --map file's mappings (checked by map-file.ts; stored as JSON text on the job). */
function parseMapText(text: string | null | undefined): ImportMap | null {
  return text ? parseMapFile(text) : null;
}

export interface NewImportJob {
  fileName: string;
  bytes: Uint8Array;
  format?: string | null;
  formCode?: string | null;
  mapText?: string | null;
  dryRun: boolean;
}

/** Queue an import (data managers and admins: `records.import`). Refuses an unusable request in words. */
export async function createImportJob(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  input: NewImportJob,
): Promise<ImportJobRow> {
  const study = await getStudyOrThrow(ctx, studyCode);
  requirePermission(principal, "records.import", { studyId: study.id });
  if (input.bytes.length === 0) throw new ServiceError("invalid", "file: the file is empty", "file");
  if (input.bytes.length > IMPORT_FILE_MAX_BYTES)
    throw new ServiceError("invalid", `file: at most ${IMPORT_FILE_MAX_BYTES} bytes`, "file");
  const format = input.format || formatOfFileName(input.fileName);
  if (format !== "csv" && format !== "odm")
    throw new ServiceError("invalid", "format: csv or odm (cannot tell from the file name)", "format");
  const formCode = input.formCode?.trim().toUpperCase() || null;
  if (input.mapText) {
    try {
      parseMapText(input.mapText);
    } catch (err) {
      if (err instanceof UnusableFileError) throw new ServiceError("invalid", `map: ${err.message}`, "map");
      throw err;
    }
  }
  const [row] = await ctx.db
    .insert(importJobs)
    .values({
      studyId: study.id,
      format,
      formCode,
      fileName: input.fileName.slice(0, 200),
      fileSha256: ctx.crypto.sha256(input.bytes),
      fileBytes: input.bytes.length,
      fileData: input.bytes,
      mapText: input.mapText ?? null,
      dryRun: input.dryRun,
      createdBy: principal.userId,
      ...rowTokenColumns(principal),
    })
    .returning();
  principals.set(row.id, principal);
  kick?.();
  return row;
}

/**
 * The account a CLI import acts as (`trialseal import --by EMAIL`): it must exist, be active and hold
 * `records.import` in the study. Returns its principal, or why not (one sentence).
 */
export async function importerByEmail(
  ctx: AppContext,
  studyCode: string,
  email: string | undefined,
): Promise<Principal | string> {
  const study = await getStudyOrThrow(ctx, studyCode);
  if (!email?.trim()) return "give the email of the account the import is made by (a data manager of the study)";
  const user = await findUserByEmail(ctx.db, email);
  if (!user) return `no account ${email}`;
  const p = await principalForUser(ctx, user.id);
  if (!p) return `the account ${user.email} is not active`;
  if (!can(p, "records.import", { studyId: study.id })) return `${user.email} may not import data into ${study.code}`;
  return p;
}

/** A job's row as it is now. */
export async function importJobRow(ctx: AppContext, id: string): Promise<ImportJobRow> {
  const [j] = await ctx.db.select().from(importJobs).where(eq(importJobs.id, id));
  if (!j) throw new ServiceError("not_found", `no import ${id}`, "id");
  return j;
}

/** A job with its progress (live while it runs) and rows per second since it started. */
export function jobView(j: ImportJobRow, by?: string | null) {
  const l = live.get(j.id);
  const done = l?.done ?? j.done;
  const total = l?.total ?? j.total;
  const started = l?.startedAt ?? j.startedAt?.getTime() ?? null;
  const end = j.finishedAt?.getTime() ?? Date.now();
  const secs = started ? Math.max(0.001, (end - started) / 1000) : null;
  return {
    id: j.id,
    status: j.status,
    dryRun: j.dryRun,
    format: j.format,
    form: j.formCode,
    fileName: j.fileName,
    fileSha256: toHex(j.fileSha256),
    bytes: j.fileBytes,
    done,
    total,
    percent: total > 0 ? Math.min(100, Math.floor((done / total) * 100)) : j.status === "done" ? 100 : 0,
    rowsPerSecond: secs && done > 0 ? Math.round(done / secs) : 0,
    records: j.records,
    values: j.values,
    problemCount: j.problemCount,
    ...importReportOf(j.problemsText),
    error: j.error,
    by: by ?? (j.actorTokenName ? `token ${j.actorTokenName}` : null),
    createdAt: j.createdAt.toISOString(),
    finishedAt: j.finishedAt?.toISOString() ?? null,
  };
}
export type ImportJobView = ReturnType<typeof jobView>;

/**
 * Which of a study's jobs a principal sees: all with a study-wide import role, else (a site-scoped data manager)
 * only the jobs they queued. A site id that is no site: only a membership without a site passes `can`.
 */
function jobsVisibleTo(principal: Principal, studyId: string): SQL | undefined {
  if (can(principal, "records.import", { studyId, siteId: "(every site)" })) return undefined;
  return principal.userId ? eq(importJobs.createdBy, principal.userId) : sql`false`;
}

/** A study's imports, newest first, with who queued them (a site-scoped importer: their own). */
export async function importJobsOf(ctx: AppContext, principal: Principal, studyCode: string) {
  const study = await getStudyOrThrow(ctx, studyCode);
  requirePermission(principal, "records.import", { studyId: study.id });
  const rows = await ctx.db
    .select({ j: importJobs, email: users.email })
    .from(importJobs)
    .leftJoin(users, eq(users.id, importJobs.createdBy))
    .where(and(eq(importJobs.studyId, study.id), jobsVisibleTo(principal, study.id)))
    .orderBy(desc(importJobs.createdAt))
    .limit(100);
  return rows.map((r) => jobView(r.j, r.email));
}

/**
 * One job's progress. While a job is being written, its row is not needed: the in-process progress answers without
 * a database read (on PGlite the write's transaction holds the one connection).
 */
export async function importJobOf(ctx: AppContext, principal: Principal, studyCode: string, id: string) {
  if (!/^[0-9a-f-]{36}$/.test(id)) throw new ServiceError("not_found", `no import ${id}`, "id");
  const study = await getStudyOrThrow(ctx, studyCode);
  requirePermission(principal, "records.import", { studyId: study.id });
  const [j] = await ctx.db
    .select()
    .from(importJobs)
    .where(and(eq(importJobs.id, id), eq(importJobs.studyId, study.id), jobsVisibleTo(principal, study.id)));
  if (!j) throw new ServiceError("not_found", `no import ${id}`, "id");
  return jobView(j);
}

/** A job runs as its importer: their account as it is now (roles revoked since count), or the queuing token. */
async function principalOf(ctx: AppContext, j: ImportJobRow): Promise<Principal> {
  const p = j.createdBy ? await principalForUser(ctx, j.createdBy) : (principals.get(j.id) ?? null);
  if (!p) throw new ServiceError("forbidden", "the importer's account is no longer active");
  return p;
}

/**
 * Advisory lock class of a running job's claim (ADR 0043; the duties' lock is 7_424_013): on PostgreSQL the runner
 * holds `pg_advisory_lock(IMPORT_CLAIM_LOCK, hashtext(job id))` on a connection of its own while the job runs, so
 * another process (a new duties leader's failInterrupted) fails a `running` job only once that claim is gone: the
 * runner's process died or its connection did. On PGlite (one process) the process is the claim.
 */
export const IMPORT_CLAIM_LOCK = 7_424_014;

interface Claim {
  /** Still held: the claim's connection answers and the job is still `running` as this run (throws otherwise). */
  check(): Promise<void>;
  release(): Promise<void>;
}
class ClaimLostError extends Error {}

/**
 * Take a job's claim; null when another process holds it. PostgreSQL: the advisory lock on a connection of its own
 * (not the pool's: a claim connection that died must not go back to the pool), closed when the job ends.
 */
async function takeClaim(ctx: AppContext, id: string): Promise<Claim | null> {
  if (ctx.database?.engine !== "postgres") return { check: async () => {}, release: async () => {} };
  const url = ctx.env.databaseUrl;
  if (!url) throw new Error("an import on PostgreSQL needs DATABASE_URL for its job's claim");
  const { default: postgres } = await import("postgres"); // loaded only on PostgreSQL
  const conn = postgres(url, {
    max: 1,
    onnotice: () => {},
    connect_timeout: 10,
    idle_timeout: 0,
    connection: { application_name: "trialseal-import-claim" },
  });
  const close = () => conn.end({ timeout: 2 }).catch(() => {});
  let pid = 0;
  try {
    const [row] = await conn`select pg_try_advisory_lock(${IMPORT_CLAIM_LOCK}, hashtext(${id})) as got,
      pg_backend_pid() as pid`;
    pid = Number(row?.pid);
    if (!row?.got) {
      await close();
      return null;
    }
  } catch (err) {
    await close();
    throw err;
  }
  return {
    check: async () => {
      // Asked on the import's own pool (the claim's connection is never asked again): its session holds the lock.
      const rows = await ctx.db.execute(
        sql`select 1 from pg_locks where locktype = 'advisory' and granted and pid = ${pid}
              and classid = ${IMPORT_CLAIM_LOCK} and objsubid = 2
              and objid = (hashtext(${id})::bigint & 4294967295)::oid`,
      );
      if (rowsOf(rows).length === 0) throw new ClaimLostError("its claim was lost");
    },
    release: close, // ending the session releases its lock
  };
}

/** Run one job to its end (done, problems or failed). */
export async function runImportJob(
  ctx: AppContext,
  id: string,
  opts: {
    onProgress?: (p: { done: number; total: number; rowsPerSecond: number }) => void;
    /** Tests: a change made after the rows are resolved, before they are written. */
    beforeWrite?: () => Promise<void>;
  } = {},
): Promise<ImportJobRow> {
  const startedAt = new Date();
  const current = async () => {
    const [other] = await ctx.db.select().from(importJobs).where(eq(importJobs.id, id));
    if (!other) throw new ServiceError("not_found", `no import ${id}`, "id");
    return other;
  };
  // The job's claim first (ADR 0043), then the row: only a queued job starts, so two runners (the CLI's and a
  // portal's) never run one job twice, and a running job is never without its claim.
  const claim = await takeClaim(ctx, id);
  if (!claim) return current(); // being claimed or run elsewhere
  const [j] = await ctx.db
    .update(importJobs)
    .set({ status: "running", startedAt })
    .where(and(eq(importJobs.id, id), eq(importJobs.status, "queued")))
    .returning();
  if (!j) {
    await claim.release();
    return current(); // running or ended elsewhere
  }
  /** This run's job row: still running, and started by this run (a guarded update touches nothing else). */
  const mine = and(eq(importJobs.id, j.id), eq(importJobs.status, "running"), eq(importJobs.startedAt, startedAt));
  live.set(j.id, { done: 0, total: 0, startedAt: startedAt.getTime() });
  const finish = async (set: Partial<ImportJobRow>) => {
    try {
      const [row] = await ctx.db
        .update(importJobs)
        .set({ ...set, fileData: null, finishedAt: new Date() })
        .where(mine)
        .returning();
      if (row) return row;
      // Another process ended the job meanwhile (its recovery found the claim gone): its status stands.
      const other = await current();
      console.warn(
        `import ${j.id}: ended elsewhere as ${other.status} while this run went on; this run's end ` +
          `(${set.status ?? "?"}) is not recorded`,
      );
      return other;
    } finally {
      live.delete(j.id);
      principals.delete(j.id);
      await claim.release();
    }
  };
  let parsed: ParsedImport | null = null;
  const report = (problems: ImportProblem[]) =>
    JSON.stringify({
      problems: problems.slice(0, PROBLEMS_KEPT),
      mapping: parsed?.mapping ?? [],
      notes: parsed?.notes ?? [],
    } satisfies ImportReport);
  const problemsSet = (problems: ImportProblem[]) => ({
    status: "problems" as const,
    problemCount: problems.length,
    problemsText: report(problems),
  });
  try {
    const [study] = await ctx.db
      .select({ id: studies.id, code: studies.code })
      .from(studies)
      .where(eq(studies.id, j.studyId));
    const principal = await principalOf(ctx, j);
    if (!can(principal, "records.import", { studyId: j.studyId }))
      return await finish({ status: "failed", error: `${principal.label} may no longer import into ${study.code}` });
    const formsByCode = await approvedForms(ctx.db, j.studyId);
    const list = [...formsByCode.values()];
    try {
      parsed = readImport({
        bytes: j.fileData ?? new Uint8Array(),
        fileName: j.fileName,
        format: j.format,
        formCode: j.formCode,
        map: parseMapText(j.mapText),
        forms: list.map((f) => ({ code: f.def.code, version: f.row.version, definition: f.def })),
        visits: [...new Set(list.flatMap((f) => f.def.visits))],
      });
    } catch (err) {
      if (err instanceof UnusableFileError) return await finish({ status: "failed", error: err.message });
      throw err;
    }
    const total = parsed.rows.length;
    await ctx.db.update(importJobs).set({ total }).where(mine);
    let lastWrite = 0;
    const out = await writeImport(
      ctx,
      principal,
      study,
      { id: j.id, fileName: j.fileName, fileSha256: j.fileSha256, fileBytes: j.fileBytes, format: j.format },
      parsed,
      {
        dryRun: j.dryRun,
        beforeWrite: async () => {
          await opts.beforeWrite?.();
          // Nothing is written for a job this run no longer holds (another process may have failed it).
          await claim.check();
          const [still] = await ctx.db.select({ id: importJobs.id }).from(importJobs).where(mine);
          if (!still) throw new ClaimLostError("the job was ended by another process while it ran");
        },
        onProgress: (d, t) => {
          // Rows count twice (built, then written): the page shows rows.
          const done = Math.floor(d / 2);
          const l = live.get(j.id);
          if (l) Object.assign(l, { done, total: Math.floor(t / 2) });
          const secs = Math.max(0.001, (Date.now() - startedAt.getTime()) / 1000);
          opts.onProgress?.({ done, total: Math.floor(t / 2), rowsPerSecond: Math.round(done / secs) });
          if (d < t / 2 && Date.now() - lastWrite > 500) {
            lastWrite = Date.now();
            void ctx.db.update(importJobs).set({ done }).where(mine);
          }
        },
      },
    );
    if (out.problems.length) return await finish(problemsSet(out.problems));
    return await finish({
      status: "done",
      done: total,
      problemCount: 0,
      problemsText: report([]),
      ...(j.dryRun ? {} : { records: out.records, values: out.values }),
    });
  } catch (err) {
    if (err instanceof ImportProblemsError) return await finish(problemsSet(err.problems));
    if (err instanceof ClaimLostError)
      return await finish({ status: "failed", error: `interrupted: run the import again (${err.message})` });
    const message = err instanceof ServiceError ? err.message : `the import failed: ${(err as Error).message}`;
    return await finish({ status: "failed", error: message.slice(0, 2000) });
  }
}

let kick: (() => void) | null = null;
/** How often the portal looks for jobs queued by another process. */
const IMPORT_POLL_MS = 15_000;

/**
 * Jobs left `running` when a process stopped: failed, their bytes cleared (at the runner's start). On PostgreSQL only
 * those whose claim is gone (no process holds the job's advisory lock: taking it for the transaction succeeds), so a
 * new duties leader leaves alone a job the old leader's process is still running (ADR 0043).
 */
export async function failInterrupted(ctx: AppContext): Promise<number> {
  const set = {
    status: "failed" as const,
    error: "interrupted: run the import again",
    fileData: null,
    finishedAt: new Date(),
  };
  if (ctx.database?.engine !== "postgres") {
    const rows = await ctx.db
      .update(importJobs)
      .set(set)
      .where(eq(importJobs.status, "running"))
      .returning({ id: importJobs.id });
    return rows.length;
  }
  return ctx.db.transaction(async (tx) => {
    const running = await tx.select({ id: importJobs.id }).from(importJobs).where(eq(importJobs.status, "running"));
    let failed = 0;
    for (const r of running) {
      const [row] = await tx
        .update(importJobs)
        .set(set)
        .where(
          and(
            eq(importJobs.id, r.id),
            eq(importJobs.status, "running"),
            sql`pg_try_advisory_xact_lock(${IMPORT_CLAIM_LOCK}, hashtext(${r.id}))`,
          ),
        )
        .returning({ id: importJobs.id });
      if (row) failed++;
    }
    return failed;
  });
}

/** Process queued jobs in the background, one at a time (the portal process). Returns the stopper. */
export function startImportRunner(ctx: AppContext, opts: { pollMs?: number; onError?: (e: unknown) => void } = {}) {
  const onError = opts.onError ?? ((e: unknown) => console.error(`import: ${(e as Error).message}`));
  let stopped = false;
  let busy = false;
  let running: Promise<unknown> = Promise.resolve();
  let recovered = false;
  let again = false; // kicked while a pass was running: that pass's last look may have missed the new job
  const tick = () => {
    if (stopped) return;
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    again = false;
    running = (async () => {
      if (!recovered) {
        await failInterrupted(ctx);
        recovered = true;
      }
      for (;;) {
        const [next] = await ctx.db
          .select({ id: importJobs.id })
          .from(importJobs)
          .where(eq(importJobs.status, "queued"))
          .orderBy(asc(importJobs.createdAt))
          .limit(1);
        if (!next || stopped) return;
        await runImportJob(ctx, next.id);
      }
    })()
      .catch(onError)
      .finally(() => {
        busy = false;
        if (again && !stopped) setImmediate(tick);
      });
  };
  kick = () => setImmediate(tick);
  // Jobs created in this process start at once (kick); the poll only picks up jobs another process queued. It is
  // slow on purpose: a query a second took a pool connection while PostgreSQL restarted and held a request past 20 s.
  const timer = setInterval(tick, opts.pollMs ?? IMPORT_POLL_MS);
  tick();
  return async () => {
    stopped = true;
    kick = null;
    clearInterval(timer);
    await running;
  };
}
