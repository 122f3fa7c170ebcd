/**
 * The batch API (issue 19, ADR 0040) on PostgreSQL: records/s of `saveRecordBatch` (the service behind POST
 * /api/v1/studies/:code/records/batch; batches of 1,000 items, each with its idempotency key) against a `COPY` of
 * the very rows it wrote into the same tables of a copy of the database taken before the run (CREATE DATABASE ...
 * TEMPLATE), in one transaction, rows already in memory. A record is 6 rows: records, record_versions, its
 * record.saved ledger entry, its audit_events row and that event's audit.event ledger entry, and its
 * idempotency_keys row. Target: >= 0.3x COPY's records/s. Run alone with `node --import tsx bench/batch-api.ts`.
 */
import { randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import postgres from "postgres";
import { parseEnv } from "../app/platform/env.server.ts";
import { openDatabase } from "../db/client.ts";
import { contextFor } from "../app/platform/context.server.ts";
import { createStudy } from "../app/studies/studies.server.ts";
import { importForm } from "../app/records/forms.server.ts";
import { enrollParticipant } from "../app/participants/participants.server.ts";
import { setFormsBeforeConsent } from "../app/studies/settings.server.ts";
import { createUser } from "../app/accounts/users.server.ts";
import { principalForUser } from "../app/accounts/auth.server.ts";
import { createApiToken, tokenPrincipal } from "../app/accounts/tokens.server.ts";
import { saveRecordBatch } from "../app/records/batch.server.ts";
import type { Principal } from "../app/platform/permissions.server.ts";

const OPERATOR: Principal = { kind: "user", userId: null, label: "bench", platformAdmin: true, memberships: [] };
const STUDY = "BENCH-BAT";
/** Rows per record (see above). */
export const ROWS_PER_RECORD = 6;
const TABLES = ["records", "record_versions", "ledger_entries", "audit_events", "idempotency_keys"] as const;

export async function benchBatchApi(
  adminUrl: string,
  opts: { batches?: number; batchSize?: number; subjects?: number; log?: (s: string) => void } = {},
) {
  const batches = opts.batches ?? 10;
  const size = opts.batchSize ?? 1000;
  const subjects = opts.subjects ?? 50;
  const name = `ts_bench_bat_${randomBytes(4).toString("hex")}`;
  const copyName = `${name}_copy`;
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`CREATE DATABASE ${name}`);
  const urlOf = (db: string) => {
    const u = new URL(adminUrl);
    u.pathname = `/${db}`;
    return u.toString();
  };
  const env = parseEnv({
    NODE_ENV: "test",
    DATA_DIR: path.join(tmpdir(), name),
    SESSION_SECRET: "b".repeat(40),
    DATA_KEY: "22".repeat(32),
    DATABASE_URL: urlOf(name),
  });
  let database = await openDatabase({ url: urlOf(name) });
  try {
    // Set-up: a study, an adverse-event-like repeating form, subjects, an API token.
    let ctx = contextFor(env, database);
    await createStudy(ctx, { code: STUDY, title: "Batch bench", sites: [{ code: "S1", name: "1" }] }, null);
    await importForm(
      ctx,
      STUDY,
      {
        code: "LAB",
        title: "Lab results",
        version: 1,
        visits: ["LOG"],
        repeating: true,
        fields: [
          ...Array.from({ length: 6 }, (_, i) => ({ name: `f${i + 1}`, label: `F${i + 1}`, type: "number" })),
          { name: "taken", label: "Date taken", type: "date", required: true },
        ],
      },
      { actorId: null },
    );
    await setFormsBeforeConsent(ctx, OPERATOR, STUDY, { formsBeforeConsent: ["LAB"] });
    const u = await createUser(
      ctx,
      {
        email: "inv@bench.test",
        fullName: "Bench investigator",
        password: "amber otter winter forty-two",
        role: "investigator",
        study: STUDY,
        site: "S1",
      },
      null,
    );
    const inv = (await principalForUser(ctx, u.id)) as Principal;
    const codes: string[] = [];
    for (let i = 0; i < subjects; i++)
      codes.push((await enrollParticipant(ctx, inv, { study: STUDY, site: "S1" })).subjectCode);
    const token = (await createApiToken(ctx, { study: STUDY, name: "bench" }, null)).token;
    // The copy for the COPY baseline: the same database before any record.
    await database.close();
    await admin.unsafe(`CREATE DATABASE ${copyName} TEMPLATE ${name}`);
    database = await openDatabase({ url: urlOf(name) });
    ctx = contextFor(env, database);
    const api = (await tokenPrincipal(ctx, token)) as Principal;
    const a = postgres(urlOf(name), { max: 1, onnotice: () => {} });
    await a`CREATE TABLE bench_before AS SELECT id FROM ledger_entries`;
    await a`CREATE TABLE bench_before_events AS SELECT id FROM audit_events`;
    await a.end();

    // The batch API's service: `batches` calls of `size` items, one after another.
    let n = 0;
    const t0 = process.hrtime.bigint();
    for (let b = 0; b < batches; b++) {
      const records = Array.from({ length: size }, (_, i) => {
        const k = b * size + i;
        return {
          subject: codes[k % codes.length],
          form: "LAB",
          visit: "LOG",
          data: { f1: k % 97, f2: 1.5, f3: 3, f4: 4, f5: 5, f6: 6, taken: "2026-03-01" },
          idempotencyKey: `bench-${k}`,
        };
      });
      const r = await saveRecordBatch(ctx, api, STUDY, { records });
      if (r.failed) throw new Error(`batch ${b}: ${JSON.stringify(r.results.find((x) => x.status !== 201))}`);
      n += r.written;
      opts.log?.(`  batch ${b + 1}/${batches}: ${r.written} records`);
    }
    const batchSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
    await database.close();
    opts.log?.("  reading the rows written for the COPY baseline");

    // The same rows, read out of the batch's database as COPY text (not timed; one connection per table: a
    // postgres.js connection does not answer another query after a COPY TO STDOUT stream) ...
    const dump: Record<string, { cols: string; chunks: Buffer[]; rows: number }> = {};
    for (const table of TABLES) {
      const src = postgres(urlOf(name), { max: 1, onnotice: () => {} });
      try {
        const cols = (
          await src`SELECT column_name FROM information_schema.columns
                    WHERE table_schema = 'public' AND table_name = ${table} AND is_generated = 'NEVER'
                    ORDER BY ordinal_position`
        )
          .map((c) => `"${c.column_name}"`)
          .join(", ");
        const where =
          table === "ledger_entries"
            ? "WHERE id NOT IN (SELECT id FROM bench_before)"
            : table === "audit_events"
              ? "WHERE id NOT IN (SELECT id FROM bench_before_events)"
              : "";
        const chunks: Buffer[] = [];
        for await (const c of await src.unsafe(`COPY (SELECT ${cols} FROM ${table} ${where}) TO STDOUT`).readable())
          chunks.push(c as Buffer);
        const rows = chunks.reduce((s, c) => s + c.toString("utf8").split("\n").length - 1, 0);
        dump[table] = { cols, chunks, rows };
      } finally {
        await src.end({ timeout: 1 });
      }
    }
    const rows = Object.values(dump).reduce((s, d) => s + d.rows, 0);
    if (rows !== n * ROWS_PER_RECORD)
      throw new Error(`expected ${n * ROWS_PER_RECORD} rows for ${n} records, read ${rows}`);

    opts.log?.(`  ${rows} rows read; COPY into the copy of the database`);
    // ... and COPYed into the same tables of the copy, in one transaction (timed).
    const dst = postgres(urlOf(copyName), { max: 1, onnotice: () => {} });
    await dst`SELECT 1`; // connected before the clock starts
    const t1 = process.hrtime.bigint();
    await dst.begin(async (tx) => {
      for (const table of TABLES) {
        const w = await tx.unsafe(`COPY ${table} (${dump[table].cols}) FROM STDIN`).writable();
        await new Promise<void>((resolve, reject) => {
          w.on("error", reject);
          w.on("finish", resolve);
          for (const c of dump[table].chunks) w.write(c);
          w.end();
        });
      }
    });
    const copySeconds = Number(process.hrtime.bigint() - t1) / 1e9;
    const [{ copied }] = await dst`SELECT count(*)::int AS copied FROM records`;
    await dst.end();
    if (copied !== n) throw new Error(`COPY wrote ${copied} records, expected ${n}`);

    const perSec = n / batchSeconds;
    const copyPerSec = n / copySeconds;
    return {
      records: n,
      batchSize: size,
      rowsPerRecord: ROWS_PER_RECORD,
      rows,
      batchSeconds,
      copySeconds,
      recordsPerSec: perSec,
      rowsPerSec: rows / batchSeconds,
      copyRecordsPerSec: copyPerSec,
      copyRowsPerSec: rows / copySeconds,
      ratio: perSec / copyPerSec,
      target: 0.3,
    };
  } finally {
    await database.close().catch(() => {});
    await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.unsafe(`DROP DATABASE IF EXISTS ${copyName} WITH (FORCE)`);
    await admin.end();
  }
}

export function printBatchApi(r: Awaited<ReturnType<typeof benchBatchApi>>) {
  console.log(
    `${`batch API records/s (${r.batchSize}/call; vs COPY)`.padEnd(44)} ` +
      `${`${Math.round(r.recordsPerSec)}/s`.padStart(10)}` +
      `   baseline ${`${Math.round(r.copyRecordsPerSec)}/s`.padStart(10)}   ratio ${r.ratio.toFixed(2).padStart(6)}` +
      `   target >= ${r.target}x`,
  );
  console.log(
    `${`  rows/s (a record = ${r.rowsPerRecord} rows; ${r.rows} rows)`.padEnd(44)} ` +
      `${Math.round(r.rowsPerSec).toString().padStart(10)}   COPY ${Math.round(r.copyRowsPerSec)}/s`,
  );
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const r = await benchBatchApi(process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test", {
    log: console.log,
  });
  printBatchApi(r);
  // Alone, the figure is merged into bench/results.json (npm run bench writes it with the rest).
  const { readFileSync, writeFileSync } = await import("node:fs");
  const out = path.join(path.dirname(fileURLToPath(import.meta.url)), "results.json");
  const results = JSON.parse(readFileSync(out, "utf8")) as Record<string, unknown>;
  writeFileSync(out, `${JSON.stringify({ ...results, batchApi: { at: new Date().toISOString(), ...r } }, null, 2)}\n`);
}
