/**
 * Importing existing data (issue 18, ADR 0037): 100,000 values from one CSV file (10,000 rows of 10 numeric fields,
 * 1,000 subjects x 10 visits) written through the import job on PostgreSQL: read, resolved, built and written in one
 * transaction. Target: under 60 s on the 2-core bench machine. Run alone with `node --import tsx bench/import.ts`.
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
import { createImportJob, runImportJob } from "../app/data-import/import-jobs.server.ts";
import { createUser } from "../app/accounts/users.server.ts";
import { principalForUser } from "../app/accounts/auth.server.ts";
import type { Principal } from "../app/platform/permissions.server.ts";

const OPERATOR: Principal = { kind: "user", userId: null, label: "bench", platformAdmin: true, memberships: [] };

export async function benchImport(
  adminUrl: string,
  opts: { subjects?: number; visits?: number; fields?: number } = {},
) {
  const subjects = opts.subjects ?? 1000;
  const visits = opts.visits ?? 10;
  const fields = opts.fields ?? 10;
  const name = `ts_bench_imp_${randomBytes(4).toString("hex")}`;
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`CREATE DATABASE ${name}`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const database = await openDatabase({ url: url.toString() });
  try {
    const env = parseEnv({
      NODE_ENV: "test",
      DATA_DIR: path.join(tmpdir(), name),
      SESSION_SECRET: "b".repeat(40),
      DATA_KEY: "22".repeat(32),
      DATABASE_URL: url.toString(),
    });
    const ctx = contextFor(env, database);
    await createStudy(ctx, { code: "BENCH-IMP", title: "Import bench", sites: [{ code: "S1", name: "1" }] }, null);
    const visitCodes = Array.from({ length: visits }, (_, i) => `V${i + 1}`);
    await importForm(
      ctx,
      "BENCH-IMP",
      {
        code: "LAB",
        title: "Lab",
        version: 1,
        visits: visitCodes,
        fields: Array.from({ length: fields }, (_, i) => ({ name: `f${i + 1}`, label: `F${i + 1}`, type: "number" })),
      },
      { actorId: null },
    );
    await setFormsBeforeConsent(ctx, OPERATOR, "BENCH-IMP", { formsBeforeConsent: ["LAB"] });
    const u = await createUser(
      ctx,
      {
        email: "inv@bench.test",
        fullName: "Bench investigator",
        password: "amber otter winter forty-two",
        role: "investigator",
        study: "BENCH-IMP",
        site: "S1",
      },
      null,
    );
    const inv = (await principalForUser(ctx, u.id)) as Principal;
    const codes: string[] = [];
    for (let i = 0; i < subjects; i++)
      codes.push((await enrollParticipant(ctx, inv, { study: "BENCH-IMP", site: "S1" })).subjectCode);
    const lines = [`subject,visit,${Array.from({ length: fields }, (_, i) => `f${i + 1}`).join(",")}`];
    for (const s of codes)
      for (const v of visitCodes)
        lines.push(`${s},${v},${Array.from({ length: fields }, (_, i) => (100 + i + s.length) % 997).join(",")}`);
    const bytes = new TextEncoder().encode(`${lines.join("\n")}\n`);
    const t0 = process.hrtime.bigint();
    const job = await createImportJob(ctx, OPERATOR, "BENCH-IMP", {
      fileName: "lab.csv",
      bytes,
      formCode: "LAB",
      dryRun: false,
    });
    const done = await runImportJob(ctx, job.id);
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    if (done.status !== "done") throw new Error(`import ${done.status}: ${done.error ?? done.problemsText}`);
    return {
      rows: lines.length - 1,
      values: done.values,
      records: done.records,
      bytes: bytes.length,
      seconds,
      valuesPerSec: done.values / seconds,
      targetSeconds: 60,
      ratioToTarget: seconds / 60,
    };
  } finally {
    await database.close();
    await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.end();
  }
}

export function printImport(r: Awaited<ReturnType<typeof benchImport>>) {
  console.log(
    `${`import ${r.values} values on PostgreSQL (${r.rows} rows)`.padEnd(44)} ` +
      `${`${r.seconds.toFixed(1)} s`.padStart(10)}` +
      `   baseline       60 s   ratio ${r.ratioToTarget.toFixed(2).padStart(6)}   target < 60 s`,
  );
  console.log(`${"  values/s".padEnd(44)} ${Math.round(r.valuesPerSec).toString().padStart(10)}`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const r = await benchImport(process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test");
  printImport(r);
  // Alone, the figure is merged into bench/results.json (npm run bench writes it with the rest).
  const { readFileSync, writeFileSync } = await import("node:fs");
  const out = path.join(path.dirname(fileURLToPath(import.meta.url)), "results.json");
  const results = JSON.parse(readFileSync(out, "utf8")) as Record<string, unknown>;
  writeFileSync(out, `${JSON.stringify({ ...results, import: { at: new Date().toISOString(), ...r } }, null, 2)}\n`);
}
