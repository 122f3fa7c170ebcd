/**
 * The crash loop shared by the default suite (a few iterations) and `npm run test:long` (50): a PostgreSQL-backed
 * portal sealing and anchoring every few tens of milliseconds takes a burst of API writes (enrol a participant,
 * then enter a record for it) from concurrent clients and is killed with SIGKILL at a random moment, so the kill
 * lands during writes, seals and anchors. After each restart: every acknowledged write is present exactly once,
 * pending work resumes (everything gets sealed and anchored), and the whole-study audit is clean (no seq gaps,
 * every root, checkpoint and anchor recomputed).
 */
import postgres from "postgres";
import { cli, cliAsync, startPortal, type Portal } from "./portal.ts";
import { demoClone } from "./demo-snapshot.ts";
import { waitFor } from "./wait.ts";

export interface CrashFigures {
  iterations: number;
  writesSent: number;
  writesAcknowledged: number;
  acknowledgedFound: number;
  duplicates: number;
  gaps: number;
  auditsClean: number;
}

export async function crashLoop(iterations: number, log: (s: string) => void = () => {}): Promise<CrashFigures> {
  // The demo study seeded once per run (test/helpers/demo-snapshot.ts): the loop tests crashes, not seeding.
  const clone = await demoClone("postgres");
  const pg = { url: clone.databaseUrl!, drop: clone.drop };
  const sql = postgres(pg.url, { max: 2, onnotice: () => {} });
  const env = {
    ...clone.env,
    SEAL_INTERVAL_MS: "100",
    LOCAL_ANCHOR_INTERVAL_MS: "100",
    API_RATE_PER_SECOND: "100000",
  };
  const fig: CrashFigures = {
    iterations: 0,
    writesSent: 0,
    writesAcknowledged: 0,
    acknowledgedFound: 0,
    duplicates: 0,
    gaps: 0,
    auditsClean: 0,
  };
  const ackedSubjects = new Set<string>();
  const ackedRecords = new Set<string>();
  let portal: Portal | null = null;
  try {
    portal = await startPortal(env);
    const token = cli(["tokens", "create", "--study", "DEMO-001", "--name", "crash"], env).stdout.trim();
    for (let it = 0; it < iterations; it++) {
      const url = portal.url;
      const post = (p: string, body: unknown, key: string) =>
        fetch(`${url}${p}`, {
          method: "POST",
          headers: { authorization: `Bearer ${token}`, "content-type": "application/json", "idempotency-key": key },
          body: JSON.stringify(body),
          signal: AbortSignal.timeout(10_000),
        });
      let stop = false;
      const worker = async (w: number) => {
        for (let n = 0; !stop; n++) {
          fig.writesSent++;
          try {
            const res = await post("/api/v1/studies/DEMO-001/participants", { site: "SITE-01" }, `p-${it}-${w}-${n}`);
            if (res.status !== 201) continue;
            const { subject } = (await res.json()) as { subject: string };
            ackedSubjects.add(subject);
            fig.writesAcknowledged++;
            fig.writesSent++;
            const rec = await post(
              "/api/v1/studies/DEMO-001/records",
              { subject, form: "DEMOG", visit: "SCREENING", data: { sex: "F", age: 30 + (n % 50) } },
              `r-${it}-${w}-${n}`,
            );
            if (rec.status !== 201) continue;
            ackedRecords.add(((await rec.json()) as { id: string }).id);
            fig.writesAcknowledged++;
          } catch {
            return; // the server died under this client
          }
        }
      };
      const ackedBefore = fig.writesAcknowledged;
      const workers = Array.from({ length: 6 }, (_, w) => worker(w));
      // Kill during writes, however slow the machine: once this iteration's first write is acknowledged, then
      // after a random 0.3-1.5 s (the scenario's timing, not a wait for anything).
      await waitFor(() => fig.writesAcknowledged > ackedBefore, {
        what: `iteration ${it}: a first acknowledged write`,
      });
      await new Promise((r) => setTimeout(r, 300 + Math.floor(Math.random() * 1200)));
      portal.proc.kill("SIGKILL");
      await new Promise((r) => portal!.proc.once("exit", r));
      stop = true;
      await Promise.all(workers);
      fig.iterations++;

      // Restart: acknowledged writes are there exactly once; pending work resumes; the audit is clean.
      portal = await startPortal(env);
      const subjects = await sql`SELECT subject_code, count(*)::int AS n FROM participants
          WHERE subject_code = ANY(${[...ackedSubjects]}) GROUP BY subject_code`;
      const records = await sql`SELECT r.id, count(v.id)::int AS versions FROM records r JOIN record_versions v
          ON v.record_id = r.id WHERE r.id = ANY(${[...ackedRecords]}::uuid[]) GROUP BY r.id`;
      fig.acknowledgedFound = subjects.length + records.length;
      fig.duplicates = subjects.filter((s) => s.n !== 1).length + records.filter((r) => r.versions !== 1).length;
      // Pending work resumes: wait (generously) for the log to settle; a log that never does fails just below.
      await waitFor(
        async () => {
          const [{ pending }] = await sql`SELECT count(*)::int AS pending FROM ledger_entries WHERE status = 'pending'`;
          const [{ unanchored }] = await sql`SELECT count(*)::int AS unanchored FROM checkpoints c
                      WHERE c.tree_size = (SELECT max(tree_size) FROM checkpoints)
                      AND NOT EXISTS (SELECT 1 FROM anchors a WHERE a.tree_size >= c.tree_size AND a.status = 'final')`;
          return pending === 0 && unanchored === 0;
        },
        { what: `iteration ${it}: the log to settle after the restart` },
      ).catch(() => {});
      const [{ pending }] = await sql`SELECT count(*)::int AS pending FROM ledger_entries WHERE status = 'pending'`;
      if (pending !== 0) throw new Error(`iteration ${it}: ${pending} entries still pending after the restart`);
      const audit = await cliAsync(["audit", "--json"], env);
      const report = JSON.parse(audit.stdout || "{}") as { clean?: boolean; findings?: { code: string }[] };
      fig.gaps += (report.findings ?? []).filter((f) => f.code === "SEQ_MISSING" || f.code === "STUDY_SEQ_GAP").length;
      if (audit.code === 0 && report.clean) fig.auditsClean++;
      else throw new Error(`iteration ${it}: the audit is not clean: ${audit.stdout.slice(0, 2000)} ${audit.stderr}`);
      log(
        `iteration ${it + 1}: ${fig.writesAcknowledged} writes acknowledged, ` +
          `${fig.acknowledgedFound} found, ${fig.duplicates} duplicates, ${fig.gaps} gaps`,
      );
    }
    return fig;
  } finally {
    await portal?.stop();
    await sql.end();
    await pg.drop();
  }
}
