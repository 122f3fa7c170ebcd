/**
 * 50 concurrent API clients over HTTP against a PostgreSQL-backed portal, each submitting records in a
 * bounded loop and sending every request twice at once under the same Idempotency-Key (as a client that
 * retries before the first answer arrives): every record exists exactly once and no ledger entry is duplicated.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import postgres from "postgres";
import { cliAsync, startPortal, type Portal } from "../helpers/portal.ts";
import { demoClone } from "../helpers/demo-snapshot.ts";

let portal: Portal;
let pg: { url: string; drop: () => Promise<void> };
let env: Record<string, string>;

beforeAll(async () => {
  const clone = await demoClone("postgres"); // the demo seeded once per run (test/helpers/demo-snapshot.ts)
  pg = { url: clone.databaseUrl!, drop: clone.drop };
  env = { ...clone.env, API_RATE_PER_SECOND: "100000" };
  portal = await startPortal(env);
});
afterAll(async () => {
  await portal?.stop();
  await pg?.drop();
});

describe("integration API under load (HTTP, PostgreSQL)", () => {
  it(
    "50 concurrent clients, 2 records each, every request sent twice at once under one key: 100 records, " +
      "no duplicates",
    async () => {
      const token = (await cliAsync(["tokens", "create", "--study", "DEMO-001", "--name", "load"], env)).stdout.trim();
      // Load on the API, not consent: the new subjects have none, so VITALS is allowed before consent (ADR 0021).
      const set = await cliAsync(["studies", "set", "--study", "DEMO-001", "--forms-before-consent", "VITALS"], env);
      expect(set.code, set.stderr).toBe(0);
      const headers = { authorization: `Bearer ${token}`, "content-type": "application/json" };
      const api = (path: string, body: unknown, extra: Record<string, string> = {}) =>
        fetch(`${portal.url}${path}`, {
          method: "POST",
          headers: { ...headers, ...extra },
          body: JSON.stringify(body),
        });
      // 50 subjects (enrolment through the API too).
      const subjects: string[] = [];
      for (let i = 0; i < 50; i++) {
        const r = await api("/api/v1/studies/DEMO-001/participants", { site: "SITE-01" });
        expect(r.status).toBe(201);
        subjects.push(((await r.json()) as { subject: string }).subject);
      }
      // Each client submits its subject's two VITALS visits, and sends every request twice under one key.
      const client = async (subject: string) => {
        const ids: string[] = [];
        for (const [k, visit] of ["SCREENING", "WEEK4"].entries()) {
          const body = { subject, form: "VITALS", visit, data: { sbp: 110 + k, dbp: 70, visit_date: "2026-03-01" } };
          const key = `${subject}-VITALS-${visit}`;
          const [a, b] = await Promise.all([
            api("/api/v1/studies/DEMO-001/records", body, { "idempotency-key": key }),
            api("/api/v1/studies/DEMO-001/records", body, { "idempotency-key": key }),
          ]);
          expect([a.status, b.status]).toEqual([201, 201]);
          const [ja, jb] = (await Promise.all([a.json(), b.json()])) as { id: string }[];
          expect(jb.id).toBe(ja.id);
          ids.push(ja.id);
        }
        return ids;
      };
      const all = (await Promise.all(subjects.map((s) => client(s)))).flat();
      const sql = postgres(pg.url, { max: 1, onnotice: () => {} });
      try {
        // The demo seeds records of its own subjects (issue 17): only this test's subjects are counted.
        const ours = sql`SELECT r.id FROM records r JOIN participants p ON p.id = r.participant_id
                          WHERE p.subject_code = ANY(${subjects})`;
        const [{ n }] = await sql`SELECT count(*)::int AS n FROM records WHERE id IN (${ours})`;
        const [{ v }] = await sql`SELECT count(*)::int AS v FROM record_versions WHERE record_id IN (${ours})`;
        const [{ e }] = await sql`SELECT count(*)::int AS e FROM ledger_entries
                                   WHERE kind = 'record.saved'
                                     AND (payload_text::json ->> 'subject') = ANY(${subjects})`;
        expect(new Set(all).size).toBe(all.length);
        expect(n).toBe(all.length);
        expect(v).toBe(all.length);
        expect(e).toBe(all.length);
        expect(all.length).toBe(100);
      } finally {
        await sql.end();
      }
    },
  );
});
