/**
 * PostgreSQL restarted under load: a portal on a PostgreSQL server of the test's own takes API writes from
 * concurrent clients while the server is stopped (fast shutdown), kept down for a few seconds and started again.
 * Clients get 503s with Retry-After and a JSON error (never a 500 or a dropped connection), retry with the same
 * Idempotency-Key, and the same portal process reconnects by itself: nothing acknowledged is lost or duplicated,
 * everything gets sealed and the audit is clean.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import postgres from "postgres";
import { cli, cliAsync, startPortal, tempDataDir, type Portal } from "../helpers/portal.ts";
import { startPgServer, type PgServer } from "../helpers/pg-server.ts";
import { sleep, waitFor } from "../helpers/wait.ts";

describe("PostgreSQL restarted under load", () => {
  let pg: PgServer;
  let portal: Portal | undefined;
  let env: Record<string, string>;

  beforeAll(async () => {
    pg = await startPgServer();
    const admin = postgres(pg.url, { max: 1, onnotice: () => {} });
    await admin`CREATE DATABASE trialseal`;
    await admin.end();
    env = {
      DATA_DIR: tempDataDir(),
      DATABASE_URL: pg.url.replace(/\/postgres$/, "/trialseal"),
      SEAL_INTERVAL_MS: "200",
      LOCAL_ANCHOR_INTERVAL_MS: "500",
      API_RATE_PER_SECOND: "100000",
    };
    portal = await startPortal(env);
  });
  afterAll(async () => {
    await portal?.stop();
    pg?.destroy();
  });

  it(
    "answers 503 + Retry-After while it is down, reconnects by itself, " +
      "and loses or duplicates nothing acknowledged",
    async () => {
      const token = cli(["tokens", "create", "--study", "DEMO-001", "--name", "restart"], env).stdout.trim();
      expect(token).toMatch(/\S{20,}/);
      const pid = portal!.proc.pid;
      const statuses = new Map<number, number>();
      const unavailable: { retryAfter: string | null; code: unknown }[] = [];
      const acked = new Map<string, string>(); // idempotency key -> subject
      let networkErrors = 0;
      const networkErrorText: string[] = [];
      let phase: "before" | "down" | "after" = "before";
      const ackedIn = { before: 0, down: 0, after: 0 };
      let stop = false;

      const worker = async (w: number) => {
        for (let n = 0; !stop; n++) {
          const key = `restart-${w}-${n}`;
          // The same request, under the same key, until it is acknowledged (or the test ends).
          while (!stop) {
            let res: Response;
            try {
              res = await fetch(`${portal!.url}/api/v1/studies/DEMO-001/participants`, {
                method: "POST",
                headers: {
                  authorization: `Bearer ${token}`,
                  "content-type": "application/json",
                  "idempotency-key": key,
                },
                body: JSON.stringify({ site: "SITE-01" }),
                signal: AbortSignal.timeout(20_000),
              });
            } catch (err) {
              networkErrors++;
              const cause = (err as Error & { cause?: Error }).cause;
              networkErrorText.push(`${phase}: ${(err as Error).message}${cause ? ` (${cause.message})` : ""}`);
              await sleep(200);
              continue;
            }
            statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
            const body = (await res.json().catch(() => null)) as { subject?: string; error?: { code?: string } } | null;
            if (res.status === 201 || res.status === 200) {
              acked.set(key, body!.subject!);
              ackedIn[phase]++;
              break;
            }
            if (res.status === 503) {
              unavailable.push({ retryAfter: res.headers.get("retry-after"), code: body?.error?.code });
              await sleep(Math.min(Number(res.headers.get("retry-after") ?? 1), 2) * 250);
              continue;
            }
            await sleep(200); // anything else is counted and fails the test below
          }
        }
      };
      const workers = Array.from({ length: 8 }, (_, w) => worker(w));
      const figures = () =>
        JSON.stringify({
          statuses: Object.fromEntries(statuses),
          unavailable: unavailable.length,
          acked: acked.size,
          ackedIn,
          networkErrors,
          networkErrorText,
        });
      try {
        // Under load before the outage: writes are being acknowledged.
        await waitFor(() => ackedIn.before >= 20, { what: "20 writes acknowledged before the stop" });
        phase = "down";
        pg.stop("fast");
        // Down until the clients have seen it (many requests answered 503) and for at least 3 s: the outage lasting
        // a few seconds is the scenario (a floor, so a slow machine only makes it longer).
        const downSince = Date.now();
        await waitFor(() => unavailable.length >= 20, { what: "20 answers 503 during the outage" });
        await sleep(3000 - (Date.now() - downSince));
        pg.start();
        phase = "after";
        // The same process reconnects by itself and takes writes again, under the same load.
        await waitFor(() => ackedIn.after >= 20, { what: "20 writes acknowledged after the restart" });
      } finally {
        stop = true;
        await Promise.all(workers);
        if (networkErrors || !ackedIn.after) console.log(portal!.output().slice(-4000));
        console.log(`restart figures: ${figures()}`);
      }

      // During the outage: 503s with Retry-After and a typed JSON error; never a 500, never a dropped connection.
      expect(unavailable.length).toBeGreaterThan(0);
      for (const u of unavailable) {
        expect(Number(u.retryAfter)).toBeGreaterThan(0);
        expect(u.code).toBe("database_unavailable");
      }
      expect([...statuses.keys()].filter((s) => s !== 201 && s !== 200 && s !== 503)).toEqual([]);
      expect(networkErrors).toBe(0);
      // The same process reconnected by itself and took writes again.
      expect(portal!.proc.exitCode).toBeNull();
      expect(portal!.proc.pid).toBe(pid);
      expect(ackedIn.before).toBeGreaterThan(0);
      expect(ackedIn.after).toBeGreaterThan(0);
      expect(portal!.output()).toMatch(/database unavailable \(/);
      expect(portal!.output()).not.toMatch(/portal error:/);

      // Every acknowledged write is there exactly once; everything gets sealed; the audit is clean.
      const sql = postgres(env.DATABASE_URL, { max: 1, onnotice: () => {} });
      try {
        const subjects = [...acked.values()];
        expect(new Set(subjects).size).toBe(subjects.length);
        const rows = await sql`SELECT subject_code, count(*)::int AS n FROM participants
            WHERE subject_code = ANY(${subjects}) GROUP BY subject_code`;
        expect(rows.length).toBe(subjects.length);
        expect(rows.every((r) => r.n === 1)).toBe(true);
        const pending = async () =>
          (await sql`SELECT count(*)::int AS pending FROM ledger_entries WHERE status = 'pending'`)[0].pending;
        await waitFor(async () => (await pending()) === 0, { what: "every entry sealed" });
        expect(await pending()).toBe(0);
      } finally {
        await sql.end();
      }
      const audit = await cliAsync(["audit", "--json"], env);
      expect(audit.code, audit.stdout.slice(0, 2000) + audit.stderr).toBe(0);
      expect(JSON.parse(audit.stdout).clean).toBe(true);
    },
  );
});
