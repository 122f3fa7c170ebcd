/**
 * Ingest benchmarks (PostgreSQL): CRF records through the service layer (saveRecord: validate against the form,
 * canonicalize, hash, insert the record, its version and its ledger entry in one transaction) with 16 concurrent
 * writers, against the baseline of plain INSERTs of the same three rows per transaction with the same
 * concurrency; the seal merge delay (write -> sealed) under that load, with the sealer at its defaults. The
 * HTTP figures are in bench/http.ts.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { tmpdir } from "node:os";
import path from "node:path";
import { sql } from "drizzle-orm";
import postgres from "postgres";
import { parseEnv } from "../app/platform/env.server.ts";
import { openDatabase } from "../db/client.ts";
import { contextFor } from "../app/platform/context.server.ts";
import { createStudy } from "../app/studies/studies.server.ts";
import { createUser } from "../app/accounts/users.server.ts";
import { principalForUser } from "../app/accounts/auth.server.ts";
import { importForm } from "../app/records/forms.server.ts";
import { enrollParticipant } from "../app/participants/participants.server.ts";
import { recordGroupCommitStats, saveRecord } from "../app/records/records.server.ts";
import type { GroupCommitStats } from "../app/records/group-commit.server.ts";
import { startSealer } from "../app/log/sealer.server.ts";
import { canonicalize } from "../anchoring/log/canonical.ts";
import { giveCompleteConsent } from "../test/helpers/consent.ts";

export interface Pct {
  p50: number;
  p95: number;
  p99: number;
}
export function pcts(xs: number[]): Pct {
  const s = [...xs].sort((a, b) => a - b);
  const at = (p: number) => s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
  return { p50: at(50), p95: at(95), p99: at(99) };
}

/** A new empty database on the server of `adminUrl`, dropped by `drop()`. */
export async function scratchDb(adminUrl: string) {
  const name = `ts_bench_${randomBytes(4).toString("hex")}`;
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`CREATE DATABASE ${name}`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    async drop() {
      await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.end();
    },
  };
}

export const VISITS = Array.from({ length: 50 }, (_, i) => `V${String(i + 1).padStart(2, "0")}`);
/** The vitals form the write benchmarks enter (ingest, HTTP), under a code and title of their own. */
export const vitalsForm = (code: string, title: string) => ({
  code,
  title,
  version: 1,
  visits: VISITS,
  fields: [
    {
      name: "sbp",
      label: "Systolic BP",
      type: "number",
      integer: true,
      unit: "mmHg",
      min: 50,
      max: 250,
      required: true,
    },
    {
      name: "dbp",
      label: "Diastolic BP",
      type: "number",
      integer: true,
      unit: "mmHg",
      min: 30,
      max: 150,
      required: true,
    },
    { name: "temp", label: "Temperature", type: "number", unit: "Cel", min: 30, max: 45 },
    { name: "visit_date", label: "Visit date", type: "date", required: true },
    { name: "notes", label: "Notes", type: "text" },
  ],
});
export const values = (i: number) => ({
  sbp: 100 + (i % 80),
  dbp: 60 + (i % 40),
  temp: 36.5,
  visit_date: "2026-03-01",
  notes: `visit ${i}`,
});

export interface IngestResult {
  writers: number;
  records: number;
  serviceSeconds: number;
  servicePerSec: number;
  serviceLatencyMs: Pct;
  plainSeconds: number;
  plainPerSec: number;
  /** serviceSeconds / plainSeconds (above 1: the service layer is slower than the plain INSERTs). */
  ratio: number;
  /** servicePerSec / plainPerSec: the issue-19 target is >= 2.5 (ADR 0041). */
  speedup: number;
  /** The record group committer during the service run (ADR 0041): transactions, items, largest group. */
  groupCommit: GroupCommitStats;
  mergeDelayMs: Pct & { max: number; entries: number };
  sealIntervalMs: number;
}

/** Service-layer ingest vs plain INSERT, and the merge delay under that load. */
export async function benchIngest(
  adminUrl: string,
  opts: { writers: number; subjectsPerWriter: number; log: (s: string) => void },
): Promise<IngestResult> {
  const db = await scratchDb(adminUrl);
  try {
    const env = parseEnv({
      NODE_ENV: "test",
      DATA_DIR: path.join(tmpdir(), db.name),
      SESSION_SECRET: "b".repeat(40),
      DATA_KEY: "22".repeat(32),
      DATABASE_URL: db.url,
    });
    const database = await openDatabase({ url: db.url, poolSize: opts.writers + 4 });
    const ctx = contextFor(env, database);
    await createStudy(ctx, { code: "ING", title: "Ingest", sites: [{ code: "S1", name: "Site 1" }] }, null);
    const admin = await createUser(
      ctx,
      {
        email: "bench@ingest.test",
        fullName: "Bench Investigator",
        password: "amber otter winter forty-two",
        role: "investigator",
        study: "ING",
        site: "S1",
      },
      null,
    );
    const principal = (await principalForUser(ctx, admin.id))!;
    await importForm(ctx, "ING", vitalsForm("ING", "Ingest"), { actorId: admin.id });
    const subjects: string[][] = [];
    for (let w = 0; w < opts.writers; w++) {
      subjects.push([]);
      for (let k = 0; k < opts.subjectsPerWriter; k++)
        subjects[w].push((await enrollParticipant(ctx, principal, { study: "ING", site: "S1" })).subjectCode);
    }
    // No CRF data before a complete consent (ADR 0021): every subject consents (on paper) first, so each save pays
    // the full consent check.
    for (const s of subjects.flat()) await giveCompleteConsent(ctx, "ING", s);
    const total = opts.writers * opts.subjectsPerWriter * VISITS.length;
    // The sealer runs at its defaults during the load, as in the portal.
    const stopSealer = startSealer(ctx, { onError: () => {} });
    const [{ startSeq }] = (await database.execute(
      `SELECT coalesce(max(seq), -1) + 1 AS "startSeq" FROM ledger_entries`,
    )) as { startSeq: number }[];
    const lat: number[] = [];
    const t0 = performance.now();
    await Promise.all(
      subjects.map(async (mine, w) => {
        let i = 0;
        for (const visit of VISITS) {
          for (const subject of mine) {
            const t = performance.now();
            await saveRecord(ctx, principal, "ING", { subject, form: "ING", visit, data: values(w * 100_000 + i++) });
            lat.push(performance.now() - t);
          }
        }
      }),
    );
    const serviceSeconds = (performance.now() - t0) / 1000;
    const groupCommit = recordGroupCommitStats(database.db);
    opts.log(
      `  group commit: ${groupCommit.items} records in ${groupCommit.groups} transactions ` +
        `(largest ${groupCommit.largest}, ${groupCommit.fallbacks} retried one by one)`,
    );
    opts.log(`  ${total} records through saveRecord by ${opts.writers} writers in ${serviceSeconds.toFixed(1)} s`);
    // Wait until the sealer has taken everything written, then measure write -> sealed.
    for (let i = 0; i < 600; i++) {
      const [{ n }] = (await database.execute(
        `SELECT count(*)::int AS n FROM ledger_entries WHERE status = 'pending'`,
      )) as { n: number }[];
      if (n === 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    await stopSealer();
    const delays = (
      (await database.execute(
        `SELECT extract(epoch FROM (b.sealed_at - e.at)) * 1000 AS d FROM ledger_entries e ` +
          `JOIN batches b ON b.batch_no = e.batch_no WHERE e.kind = 'record.saved' AND e.seq >= ` +
          `${Number(startSeq)}`,
      )) as { d: number }[]
    ).map((r) => Number(r.d));

    // Baseline: the same three rows per transaction as plain INSERTs (values precomputed, no validation, no
    // canonical JSON, no hashing in Node), same writers, same count.
    const [{ studyId }] = (await database.execute(`SELECT id AS "studyId" FROM studies WHERE code = 'ING'`)) as {
      studyId: string;
    }[];
    const [{ siteId }] = (await database.execute(`SELECT id AS "siteId" FROM sites WHERE code = 'S1'`)) as {
      siteId: string;
    }[];
    const [{ formId }] = (await database.execute(`SELECT id AS "formId" FROM forms WHERE code = 'ING'`)) as {
      formId: string;
    }[];
    const parts = (await database.execute(`SELECT id FROM participants ORDER BY subject_code`)) as { id: string }[];
    const payload = canonicalize({ v: 1, note: "plain insert baseline", values: values(1) });
    const hash = Buffer.alloc(32, 7);
    const t1 = performance.now();
    await Promise.all(
      Array.from({ length: opts.writers }, async (_, w) => {
        for (let k = 0; k < total / opts.writers; k++) {
          const recordId = randomUUID();
          const participant = parts[(w * opts.subjectsPerWriter + (k % opts.subjectsPerWriter)) % parts.length].id;
          await database.db.transaction(async (tx) => {
            await tx.execute(
              sql`INSERT INTO records (id, study_id, site_id, participant_id, form_code, visit)
                  VALUES (${recordId}, ${studyId}, ${siteId}, ${participant}, 'PLAIN', ${`P${w}-${k}`})`,
            );
            const [e] = (await tx.execute(
              sql`INSERT INTO ledger_entries (study_id, study_code, kind, payload_text, payload_hash, at)
                  VALUES (${studyId}, 'ING', 'record.saved', ${payload}, ${hash}, now()) RETURNING id`,
            )) as unknown as { id: string }[];
            await tx.execute(
              sql`INSERT INTO record_versions
                  (record_id, study_id, version, form_id, form_version, data_text, reason, actor_user_id, entry_id)
                  VALUES (${recordId}, ${studyId}, 1, ${formId}, 1, ${payload}, null, ${admin.id}, ${e.id})`,
            );
          });
        }
      }),
    );
    const plainSeconds = (performance.now() - t1) / 1000;
    await database.close();
    return {
      writers: opts.writers,
      records: total,
      serviceSeconds,
      servicePerSec: total / serviceSeconds,
      serviceLatencyMs: pcts(lat),
      plainSeconds,
      plainPerSec: total / plainSeconds,
      ratio: serviceSeconds / plainSeconds,
      speedup: plainSeconds / serviceSeconds,
      groupCommit,
      mergeDelayMs: { ...pcts(delays), max: Math.max(...delays), entries: delays.length },
      sealIntervalMs: env.sealIntervalMs,
    };
  } finally {
    await db.drop();
  }
}
