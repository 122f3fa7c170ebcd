import { tmpdir } from "node:os";
import path from "node:path";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import autocannon from "autocannon";

type AutocannonOptions = Parameters<typeof autocannon>[0];
type AutocannonResult = Awaited<ReturnType<typeof autocannon>>;
import { parseEnv } from "../app/platform/env.server.ts";
import { openDatabase } from "../db/client.ts";
import { contextFor } from "../app/platform/context.server.ts";
import { createStudy } from "../app/studies/studies.server.ts";
import { createUser } from "../app/accounts/users.server.ts";
import { principalForUser } from "../app/accounts/auth.server.ts";
import { importForm } from "../app/records/forms.server.ts";
import { enrollParticipant } from "../app/participants/participants.server.ts";
import { createApiToken } from "../app/accounts/tokens.server.ts";
import { setFormsBeforeConsent } from "../app/studies/settings.server.ts";
import { scratchDb, VISITS, values, vitalsForm } from "./ingest.ts";
import { OPERATOR } from "../app/exports/study-exports.server.ts";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

const FORM = vitalsForm("HTTP", "HTTP");

export interface Latency {
  p50: number;
  p97_5: number;
  p99: number;
  max: number;
}
export interface HttpRun {
  requests: number;
  perSec: number;
  latencyMs: Latency;
  non2xx: number;
  errors: number;
}
export interface HttpResult {
  /** The fixed rate (requests/s) of the open-loop runs. */
  rate: number;
  seconds: number;
  workers: number;
  /** POST /records at the fixed rate. */
  post: HttpRun;
  /** GET /forms (authenticated) at the same rate: the baseline. */
  get: HttpRun;
  /** POST /records closed-loop (each connection sends its next request when the last one is answered). */
  closed: HttpRun & { connections: number };
}

function summary(r: AutocannonResult): HttpRun {
  const lat = r.latency as unknown as Record<string, number>;
  return {
    requests: r.requests.total,
    perSec: r.requests.average,
    latencyMs: { p50: lat.p50, p97_5: lat.p97_5, p99: lat.p99, max: lat.max },
    non2xx: r.non2xx,
    errors: r.errors,
  };
}

/**
 * Start a portal (bin/serve.ts, WEB_CONCURRENCY = opts.workers) on a fresh database with a study, a form allowed
 * before consent, 2,000 participants and an API token; load it; stop it; drop the database.
 */
export async function benchHttp(
  adminUrl: string,
  opts: { rate?: number; connections?: number; seconds: number; workers?: number; log: (s: string) => void },
): Promise<HttpResult> {
  const rate = opts.rate ?? 200;
  const connections = opts.connections ?? 50;
  const workers = opts.workers ?? 1;
  const db = await scratchDb(adminUrl);
  const dataDir = path.join(tmpdir(), `${db.name}-portal`);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    NODE_ENV: "production",
    PORT: "0",
    HOST: "127.0.0.1",
    DATA_DIR: dataDir,
    DATABASE_URL: db.url,
    SESSION_SECRET: "c".repeat(40),
    DATA_KEY: "33".repeat(32),
    API_RATE_PER_SECOND: "100000",
    SEED_DEMO: "false",
    PUBLIC_URL: "http://localhost",
    WEB_CONCURRENCY: String(workers),
  };
  // Set up the study, a form with many visits, participants and a token through the services.
  const database = await openDatabase({ url: db.url });
  const ctx = contextFor(parseEnv({ ...(env as Record<string, string>), NODE_ENV: "test" }), database);
  await createStudy(ctx, { code: "HTTP", title: "HTTP", sites: [{ code: "S1", name: "Site 1" }] }, null);
  const adminUser = await createUser(
    ctx,
    {
      email: "bench@http.test",
      fullName: "Bench Investigator",
      password: "amber otter winter forty-two",
      role: "investigator",
      study: "HTTP",
      site: "S1",
    },
    null,
  );
  const principal = (await principalForUser(ctx, adminUser.id))!;
  await importForm(ctx, "HTTP", FORM, { actorId: adminUser.id });
  const subjects: string[] = [];
  for (let k = 0; k < 2000; k++)
    subjects.push((await enrollParticipant(ctx, principal, { study: "HTTP", site: "S1" })).subjectCode);
  // 2,000 paper consents would add minutes of password checks to the set-up: the HTTP figure uses a form allowed
  // before consent (ADR 0021), so each save reads the study's settings but not the consent.
  await setFormsBeforeConsent(ctx, OPERATOR, "HTTP", { formsBeforeConsent: "HTTP" });
  const { token } = await createApiToken(ctx, { study: "HTTP", name: "bench" }, null);
  await database.close();
  const profileDir = process.env.BENCH_HTTP_PROFILE;
  const nodeArgs = profileDir ? ["--cpu-prof", `--cpu-prof-dir=${path.resolve(profileDir)}`] : [];
  const proc = spawn(process.execPath, [...nodeArgs, "--import", "tsx", path.join(ROOT, "bin", "serve.ts")], {
    cwd: ROOT,
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  proc.stdout.on("data", (d) => (out += d));
  proc.stderr.on("data", (d) => (out += d));
  try {
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`portal did not start:\n${out}`)), 120_000);
      const check = () => {
        const m = /portal on http:\/\/localhost:(\d+)/.exec(out);
        // With several workers, wait until each one listens.
        const up = out.match(/portal on http:\/\/localhost:\d+/g)?.length ?? 0;
        if (m && up >= workers) {
          clearTimeout(timer);
          resolve(`http://127.0.0.1:${m[1]}`);
        }
      };
      proc.stdout.on("data", check);
      proc.once("exit", (c) => reject(new Error(`portal exited with ${c}:\n${out}`)));
    });
    const headers = { authorization: `Bearer ${token}`, "content-type": "application/json" };
    let n = 0;
    const post = (extra: Partial<AutocannonOptions>) =>
      autocannon({
        url: `${url}/api/v1/studies/HTTP/records`,
        connections,
        duration: opts.seconds,
        method: "POST",
        headers,
        requests: [
          {
            setupRequest: (req: Record<string, unknown>) => {
              const i = n++;
              const subject = subjects[i % subjects.length];
              const visit = VISITS[Math.floor(i / subjects.length) % VISITS.length];
              return { ...req, body: JSON.stringify({ subject, form: "HTTP", visit, data: values(i) }) };
            },
          },
        ],
        ...extra,
      });
    // Warm-up (JIT, pools), not counted.
    await autocannon({ url: `${url}/api/v1/studies/HTTP/forms`, connections: 10, duration: 2, headers });
    const get = summary(
      await autocannon({
        url: `${url}/api/v1/studies/HTTP/forms`,
        connections,
        duration: opts.seconds,
        headers,
        overallRate: rate,
      }),
    );
    const fixed = summary(await post({ overallRate: rate }));
    const closed = summary(await post({}));
    opts.log(
      `  at ${rate}/s for ${opts.seconds} s (${workers} worker${workers === 1 ? "" : "s"}): ` +
        `GET ${get.requests} (${get.non2xx} non-2xx, ${get.errors} errors), ` +
        `POST ${fixed.requests} (${fixed.non2xx} non-2xx, ${fixed.errors} errors); ` +
        `closed loop at ${connections} connections: ${closed.requests} POST (${closed.non2xx} non-2xx)`,
    );
    return { rate, seconds: opts.seconds, workers, post: fixed, get, closed: { ...closed, connections } };
  } finally {
    proc.kill("SIGTERM");
    await new Promise((r) => (proc.exitCode !== null ? r(null) : proc.once("exit", r)));
    await db.drop();
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const adminUrl = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
  const r = await benchHttp(adminUrl, {
    seconds: Number(process.env.BENCH_HTTP_SECONDS ?? 10),
    workers: Number(process.env.BENCH_HTTP_WORKERS ?? 1),
    rate: Number(process.env.BENCH_HTTP_RATE ?? 200),
    log: console.log,
  });
  console.log(JSON.stringify(r, null, 2));
}
