/**
 * Backup and restore, as docs/operations.md describes it: while a PostgreSQL-backed portal runs, dump the
 * database (pg_dump, one consistent snapshot), then copy DATA_DIR/keys and DATA_DIR/ledger. Restore both into
 * a fresh database and a fresh data directory: the whole-log audit is clean, a proof made before the backup
 * still verifies under the pinned trust policy, and a portal on the restored copy takes new writes that seal
 * and anchor onto the same log.
 */
import { afterAll, describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import postgres from "postgres";
import { cli, cliAsync, startPortal, tempDataDir, type Portal } from "../helpers/portal.ts";
import { createScratchPostgres } from "../helpers/db.ts";
import { demoClone } from "../helpers/demo-snapshot.ts";
import { waitFor } from "../helpers/wait.ts";

const drops: (() => Promise<void>)[] = [];
let portal: Portal | undefined;
afterAll(async () => {
  await portal?.stop();
  for (const d of drops) await d();
});

/** Wait until every entry is sealed and the newest checkpoint is anchored. */
async function settled(url: string) {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    await waitFor(
      async () => {
        const [{ pending }] = await sql`SELECT count(*)::int AS pending FROM ledger_entries WHERE status = 'pending'`;
        const [{ unanchored }] = await sql`SELECT count(*)::int AS unanchored FROM checkpoints c
                    WHERE c.tree_size = (SELECT max(tree_size) FROM checkpoints)
                    AND NOT EXISTS (SELECT 1 FROM anchors a WHERE a.tree_size >= c.tree_size AND a.status = 'final')`;
        expect({ pending, unanchored }).toEqual({ pending: 0, unanchored: 0 });
        return true;
      },
      { what: "the log to settle (nothing pending, the newest checkpoint anchored)" },
    );
  } finally {
    await sql.end();
  }
}

describe("backup and restore (PostgreSQL + data directory)", () => {
  it(
    "restores into a fresh database and data directory: clean audit, old proofs verify, " + "the log continues",
    async () => {
      // The source: a clone of the demo snapshot (test/helpers/demo-snapshot.ts); the restore below starts empty.
      const clone = await demoClone("postgres");
      const src = { url: clone.databaseUrl!, drop: clone.drop };
      drops.push(src.drop);
      const dataDir = clone.dataDir;
      const env = {
        DATA_DIR: dataDir,
        DATABASE_URL: src.url,
        SEAL_INTERVAL_MS: "200",
        LOCAL_ANCHOR_INTERVAL_MS: "200",
        API_RATE_PER_SECOND: "100000",
      };
      portal = await startPortal(env);
      const token = cli(["tokens", "create", "--study", "DEMO-001", "--name", "backup"], env).stdout.trim();
      const post = (url: string, p: string, body: unknown) =>
        fetch(`${url}${p}`, {
          method: "POST",
          headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
          body: JSON.stringify(body),
        });
      const subjects: string[] = [];
      for (let i = 0; i < 5; i++) {
        const r = await post(portal.url, "/api/v1/studies/DEMO-001/participants", { site: "SITE-01" });
        expect(r.status).toBe(201);
        subjects.push(((await r.json()) as { subject: string }).subject);
      }
      await settled(src.url);
      const policyFile = path.join(mkdtempSync(path.join(tmpdir(), "ts-pin-")), "policy.json");
      writeFileSync(policyFile, cli(["trust-policy"], env).stdout);
      const proof = cli(["proof", "1"], env);
      expect(proof.code, proof.stderr).toBe(0);
      const proofFile = path.join(path.dirname(policyFile), "proof-1.json");
      writeFileSync(proofFile, proof.stdout);

      // Backup while the portal runs: the database first (one snapshot), then the keys and the ledger file.
      const backup = mkdtempSync(path.join(tmpdir(), "ts-backup-"));
      execFileSync("pg_dump", ["--format=custom", "--no-owner", `--file=${path.join(backup, "db.dump")}`, src.url]);
      cpSync(path.join(dataDir, "keys"), path.join(backup, "keys"), { recursive: true });
      cpSync(path.join(dataDir, "ledger"), path.join(backup, "ledger"), { recursive: true });
      // Outside production SESSION_SECRET and DATA_KEY live in DATA_DIR/secrets.json: part of the backup.
      cpSync(path.join(dataDir, "secrets.json"), path.join(backup, "secrets.json"));
      // The source keeps going after the backup (these writes are not in it).
      expect((await post(portal.url, "/api/v1/studies/DEMO-001/participants", { site: "SITE-01" })).status).toBe(201);
      await portal.stop();
      portal = undefined;

      // Restore into a fresh database and a fresh data directory.
      const dst = await createScratchPostgres();
      drops.push(dst.drop);
      execFileSync("pg_restore", [
        "--no-owner",
        "--exit-on-error",
        `--dbname=${dst.url}`,
        path.join(backup, "db.dump"),
      ]);
      const restoredDir = tempDataDir();
      cpSync(path.join(backup, "keys"), path.join(restoredDir, "keys"), { recursive: true });
      cpSync(path.join(backup, "ledger"), path.join(restoredDir, "ledger"), { recursive: true });
      cpSync(path.join(backup, "secrets.json"), path.join(restoredDir, "secrets.json"));
      const renv = { ...env, DATA_DIR: restoredDir, DATABASE_URL: dst.url };

      const audit = await cliAsync(["audit", "--json"], renv);
      expect(audit.code, audit.stdout.slice(0, 2000) + audit.stderr).toBe(0);
      const report = JSON.parse(audit.stdout) as { clean: boolean; checked: Record<string, number> };
      expect(report.clean).toBe(true);
      // The pre-backup proof verifies offline under the policy pinned before the backup, and the restored
      // deployment publishes the same policy.
      const v = cli(["verify", proofFile, "--trust", policyFile], renv);
      expect(v.code, v.stdout + v.stderr).toBe(0);
      expect(JSON.parse(cli(["trust-policy"], renv).stdout)).toEqual(JSON.parse(readFileSync(policyFile, "utf8")));

      // A portal on the restored copy: the enrolled participants are there and the log continues.
      portal = await startPortal(renv);
      const r = await post(portal.url, "/api/v1/studies/DEMO-001/participants", { site: "SITE-01" });
      expect(r.status).toBe(201);
      await settled(dst.url);
      const sql = postgres(dst.url, { max: 1, onnotice: () => {} });
      try {
        const rows = await sql`SELECT subject_code FROM participants WHERE subject_code = ANY(${subjects})`;
        expect(rows.length).toBe(subjects.length);
      } finally {
        await sql.end();
      }
      const after = await cliAsync(["audit", "--json"], renv);
      expect(after.code, after.stdout.slice(0, 2000)).toBe(0);
      expect(JSON.parse(after.stdout).clean).toBe(true);
    },
  );
});
