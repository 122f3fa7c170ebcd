/**
 * The portal as a cluster (ADR 0043): WEB_CONCURRENCY=2 on a scratch PostgreSQL database. Requests on fresh
 * connections are answered by both workers (two processes, neither the primary); records written through both
 * are all sealed, each exactly once, by the one process holding the duties lock; the integrity audit is clean;
 * SIGTERM to the primary stops both workers and the primary exits 0.
 */
import http from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import postgres from "postgres";
import { cliAsync, startPortal, tempDataDir, type Portal } from "../helpers/portal.ts";
import { createScratchPostgres } from "../helpers/db.ts";
import { waitFor } from "../helpers/wait.ts";
import { openDatabase } from "../../db/client.ts";
import { parseEnv } from "../../app/platform/env.server.ts";
import { contextFor } from "../../app/platform/context.server.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { importForm } from "../../app/records/forms.server.ts";
import { createApiToken } from "../../app/accounts/tokens.server.ts";
import { setFormsBeforeConsent } from "../../app/studies/settings.server.ts";
import { OPERATOR } from "../../app/exports/study-exports.server.ts";

const FORM = {
  code: "VITALS",
  title: "Vital signs",
  version: 1,
  visits: ["SCREENING"],
  fields: [{ name: "sbp", label: "Systolic BP", type: "number", integer: true, min: 50, max: 250, required: true }],
};
let token: string;

let portal: Portal;
let pg: { url: string; drop: () => Promise<void> };
let env: Record<string, string>;

beforeAll(async () => {
  pg = await createScratchPostgres({ migrated: true });
  env = {
    DATA_DIR: tempDataDir(),
    DATABASE_URL: pg.url,
    API_RATE_PER_SECOND: "100000",
    WEB_CONCURRENCY: "2",
    SEED_DEMO: "false",
    SESSION_SECRET: "s".repeat(40),
    DATA_KEY: "22".repeat(32),
  };
  // A study with a form allowed before consent and an API token, through the services (faster than the demo).
  const database = await openDatabase({ url: pg.url, migrate: false });
  try {
    const ctx = contextFor(parseEnv({ ...env, NODE_ENV: "test" }), database);
    await createStudy(ctx, { code: "CLU", title: "Cluster", sites: [{ code: "S1", name: "Site 1" }] }, null);
    await importForm(ctx, "CLU", FORM, { actorId: null });
    await setFormsBeforeConsent(ctx, OPERATOR, "CLU", { formsBeforeConsent: "VITALS" });
    token = (await createApiToken(ctx, { study: "CLU", name: "cluster" }, null)).token;
  } finally {
    await database.close();
  }
  portal = await startPortal(env);
  // startPortal returns at the first worker's line: wait for the second.
  await waitFor(() => workers().size === 2, { what: "both workers listening" });
});
afterAll(async () => {
  if (portal?.proc.exitCode === null) await portal.stop();
  await pg?.drop();
});

/** Worker number -> pid, from the workers' "portal on ..." lines. */
function workers(): Map<string, number> {
  const m = new Map<string, number>();
  for (const [, n, pid] of portal
    .output()
    .matchAll(/portal on http:\/\/localhost:\d+ \(.*?; worker (\d+), pid (\d+)\)/g))
    m.set(n, Number(pid));
  return m;
}

/** A request on a connection of its own (no keep-alive: the primary hands each connection to the next worker). */
function request(method: string, path: string, headers: Record<string, string>, body?: unknown) {
  return new Promise<{ status: number; worker: string | undefined; json: unknown }>((resolve, reject) => {
    const u = new URL(path, portal.url);
    const req = http.request(u, { method, headers, agent: false }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (d) => (text += d));
      res.on("end", () =>
        resolve({
          status: res.statusCode ?? 0,
          worker: res.headers["x-trialseal-worker"] as string | undefined,
          json: text ? JSON.parse(text) : null,
        }),
      );
    });
    req.on("error", reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe("portal cluster on PostgreSQL (WEB_CONCURRENCY=2)", () => {
  it("serves from two worker processes, seals every record exactly once, audits clean, stops cleanly", async () => {
    const pids = workers();
    expect([...pids.keys()].sort()).toEqual(["1", "2"]);
    expect(new Set(pids.values()).size).toBe(2);
    for (const pid of pids.values()) {
      expect(pid).not.toBe(portal.proc.pid);
      expect(alive(pid)).toBe(true);
    }
    // Exactly one process took the background duties (sealer, anchoring, imports, outbox).
    expect(portal.output().match(/background duties .* run in /g) ?? []).toHaveLength(1);

    const headers = { authorization: `Bearer ${token}`, "content-type": "application/json" };
    const answeredBy = new Set<string>();
    const subjects: string[] = [];
    for (let i = 0; i < 6; i++) {
      const r = await request("POST", "/api/v1/studies/CLU/participants", headers, { site: "S1" });
      expect(r.status, JSON.stringify(r.json)).toBe(201);
      subjects.push((r.json as { subject: string }).subject);
      if (r.worker) answeredBy.add(r.worker);
    }
    const ids: string[] = [];
    for (const [i, subject] of subjects.entries()) {
      const body = {
        subject,
        form: "VITALS",
        visit: "SCREENING",
        data: { sbp: 110 + i },
      };
      const r = await request("POST", "/api/v1/studies/CLU/records", headers, body);
      expect(r.status, JSON.stringify(r.json)).toBe(201);
      ids.push((r.json as { id: string }).id);
      if (r.worker) answeredBy.add(r.worker);
    }
    // Both workers answered (the primary hands connections out in turn).
    expect([...answeredBy].sort()).toEqual(["1", "2"]);

    const sql = postgres(pg.url, { max: 1, onnotice: () => {} });
    try {
      await waitFor(
        async () => (await sql`SELECT count(*)::int AS n FROM ledger_entries WHERE status = 'pending'`)[0].n === 0,
        { what: "every entry sealed" },
      );
      // Each entry sealed once: consecutive seqs with no gap or repeat, and the batches cover exactly them, in order.
      const [e] = await sql`SELECT count(*)::int AS n, count(DISTINCT seq)::int AS d, min(seq)::int AS lo,
                                   max(seq)::int AS hi FROM ledger_entries`;
      expect(e.d).toBe(e.n);
      expect(e.hi - e.lo + 1).toBe(e.n);
      const batches = await sql`SELECT first_seq::int AS first, size::int AS size FROM batches ORDER BY batch_no`;
      let next = e.lo;
      for (const b of batches) {
        expect(b.first).toBe(next);
        next += b.size;
      }
      expect(next).toBe(e.hi + 1);
      const [ours] = await sql`SELECT count(*)::int AS n FROM ledger_entries
                               WHERE kind = 'record.saved' AND (payload_text::json ->> 'subject') = ANY(${subjects})`;
      expect(ours.n).toBe(ids.length);
    } finally {
      await sql.end();
    }
    const audit = await cliAsync(["audit", "--json"], env);
    expect(audit.code, audit.stdout.slice(0, 2000) + audit.stderr).toBe(0);
    expect(JSON.parse(audit.stdout).clean).toBe(true);

    expect(await portal.stop()).toBe(0);
    for (const pid of pids.values()) expect(alive(pid)).toBe(false);
    expect(portal.output()).toMatch(/Stopping the 2 worker\(s\) \(SIGTERM\)/);
  });
});
