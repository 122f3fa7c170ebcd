/**
 * The integrity audit against a log that grows while it runs (the portal's sealer seals every second), on PGlite and
 * PostgreSQL: the audit checks the log as of its start (the batches under the largest checkpoint, or batch, it read
 * first) and leaves what is sealed meanwhile to the next audit, so batches, checkpoints and entries sealed during the
 * audit are never reported as missing or stray; a checkpoint deleted behind the log is still named.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sql } from "drizzle-orm";
import { openTestDatabase, engineUnderTest, type TestDb } from "../helpers/db.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { appendEntry } from "../../app/log/append-entry.server.ts";
import { sealAll } from "../../app/log/sealer.server.ts";
import { runIntegrityAudit, type AuditProgress } from "../../app/integrity-audit/integrity-audit.server.ts";

let t: TestDb;
let study: { id: string; code: string };
let n = 0;
const write = async (count: number) => {
  for (let i = 0; i < count; i++)
    await appendEntry(t.ctx.db, t.ctx.crypto, study, "site.added", { site: `R${n++}`, timeZone: "UTC", actor: null });
};
const batchCount = async () =>
  Number(((await t.database.execute("SELECT count(*)::int AS n FROM batches"))[0] as { n: unknown }).n);
const tamperFindings = (r: Awaited<ReturnType<typeof runIntegrityAudit>>) =>
  r.findings.filter((f) => f.severity === "tamper").map((f) => `${f.code}: ${f.message}`);

beforeAll(async () => {
  t = await openTestDatabase();
  t.ctx.env = { ...t.ctx.env, sealMaxBatch: 5 };
  const s = await createStudy(t.ctx, { code: "RACE-1", title: "Race", sites: [{ code: "S1", name: "1" }] }, null);
  study = { id: s.study.id, code: s.study.code };
  await write(20);
  await sealAll(t.ctx);
}, 120_000);
afterAll(async () => {
  await t?.close();
});

describe(`an audit while batches are sealed (${engineUnderTest()})`, () => {
  it("audits the log as of its start and leaves batches sealed meanwhile to the next audit", async () => {
    const before = await batchCount();
    expect(before).toBeGreaterThanOrEqual(4);
    let sealedDuring = 0;
    const onProgress = async (p: AuditProgress) => {
      if (p.phase !== "log" || p.done !== 1) return;
      // The first batch is checked: more entries are written and sealed (two more batches) before the audit goes on.
      await write(7);
      sealedDuring = (await sealAll(t.ctx)).length;
    };
    const r = await runIntegrityAudit(t.ctx, { onProgress });
    expect(sealedDuring).toBe(2);
    expect(await batchCount()).toBe(before + 2);
    expect(tamperFindings(r)).toEqual([]);
    expect(r.clean).toBe(true);
    expect(r.logSize).toBe(before);
    expect(r.checked.batches).toBe(before);

    // The next audit takes them in.
    const next = await runIntegrityAudit(t.ctx);
    expect(tamperFindings(next)).toEqual([]);
    expect(next.logSize).toBe(before + 2);
    expect(next.checked.batches).toBe(before + 2);
  }, 120_000);

  it("still names the newest checkpoint deleted behind the log", async () => {
    const size = await batchCount();
    await t.ctx.db.transaction(async (tx) => {
      await tx.execute(sql.raw("SET LOCAL session_replication_role = replica"));
      await tx.execute(sql`DELETE FROM checkpoints WHERE tree_size = ${size}`);
    });
    const r = await runIntegrityAudit(t.ctx);
    expect(r.clean).toBe(false);
    expect(r.logSize).toBe(size);
    expect(r.findings.map((f) => `${f.code} ${f.treeSize ?? ""}`)).toContain(`CHECKPOINT_MISSING ${size}`);
  }, 120_000);
});
