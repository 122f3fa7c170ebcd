/**
 * The whole-log audit's streamed reads (issue 19), on PGlite and PostgreSQL: the keyset pages of streamLogEntries
 * hold exactly the rows (and values) a query of each seq range returns, across page boundaries; studyEntriesOfKinds,
 * paged by the seq index, keeps the log order (sealed by seq, then pending by write time) across small pages; and the
 * streamed audit names the same log findings as the LogAuditor fed batch by batch with range queries, also when a
 * batch no longer starts where the previous one ended (the stream then starts over at that batch).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sql } from "drizzle-orm";
import { openTestDatabase, engineUnderTest, type TestDb } from "../helpers/db.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { appendEntry } from "../../app/log/append-entry.server.ts";
import { sealAll } from "../../app/log/sealer.server.ts";
import { deploymentTrustPolicy } from "../../app/anchor-worker/anchor-worker.server.ts";
import { runIntegrityAudit } from "../../app/integrity-audit/integrity-audit.server.ts";
import { LogAuditor, type AuditFinding, type StoredEntry } from "../../anchoring/verifier/log-auditor.ts";
import {
  batchesFrom,
  checkpointsAll,
  entriesInSeqRange,
  streamLogEntries,
  studyEntriesOfKinds,
} from "../../db/queries/integrity-audit.ts";

let t: TestDb;
let study: { id: string; code: string };
const SEALED = 97;

async function tamper(statements: string[]) {
  await t.ctx.db.transaction(async (tx) => {
    await tx.execute(sql.raw("SET LOCAL session_replication_role = replica"));
    for (const s of statements) await tx.execute(sql.raw(s));
  });
}
const plain = (e: StoredEntry) => ({
  ...e,
  at: e.at.toISOString(),
  payloadHash: Buffer.from(e.payloadHash).toString("hex"),
  leafHash: e.leafHash ? Buffer.from(e.leafHash).toString("hex") : null,
});

/** The log findings of a LogAuditor fed batch by batch with range queries (how the audit read the log before). */
async function rangeAudit(): Promise<AuditFinding[]> {
  const auditor = new LogAuditor(t.ctx.crypto, deploymentTrustPolicy(t.ctx));
  const cps = new Map((await checkpointsAll(t.ctx.db)).map((c) => [c.treeSize, c]));
  for (const b of await batchesFrom(t.ctx.db, -1, 10_000)) {
    auditor.batch(b, await entriesInSeqRange(t.ctx.db, b.firstSeq, b.firstSeq + b.size));
    const cp = cps.get(b.batchNo + 1);
    if (cp) auditor.checkpoint(cp);
  }
  return auditor.findings;
}
const logCodes = new Set(["BATCH_NOT_CONSECUTIVE", "SEQ_MISSING", "SEQ_DUPLICATED", "BATCH_ROOT_MISMATCH"]);
const key = (f: AuditFinding) => `${f.code} ${f.seq ?? ""} ${f.batch ?? ""} ${f.treeSize ?? ""} ${f.field ?? ""}`;

beforeAll(async () => {
  t = await openTestDatabase();
  t.ctx.env = { ...t.ctx.env, sealMaxBatch: 10 };
  const s = await createStudy(t.ctx, { code: "STR-1", title: "Streamed", sites: [{ code: "S1", name: "1" }] }, null);
  study = { id: s.study.id, code: s.study.code };
  for (let i = 0; i < SEALED; i++)
    await appendEntry(t.ctx.db, t.ctx.crypto, study, "site.added", { site: `X${i}`, timeZone: "UTC", actor: null });
  await sealAll(t.ctx);
  for (let i = 0; i < 4; i++)
    await appendEntry(t.ctx.db, t.ctx.crypto, study, "site.added", { site: `P${i}`, timeZone: "UTC", actor: null });
}, 120_000);
afterAll(async () => {
  await t?.close();
});

describe(`the audit's streamed reads (${engineUnderTest()})`, () => {
  it("streams exactly the rows of each seq range, page by page", async () => {
    const end = Number(
      ((await t.database.execute("SELECT max(seq) + 1 AS n FROM ledger_entries"))[0] as { n: unknown }).n,
    );
    expect(end).toBeGreaterThan(SEALED);
    for (const [from, to, page] of [
      [0, end, 7],
      [0, end, 5000],
      [13, 61, 4],
      [end - 3, end + 50, 2],
    ]) {
      const streamed: StoredEntry[] = [];
      let pages = 0;
      for await (const p of streamLogEntries(t.ctx.db, from, to, page)) {
        expect(p.length).toBeLessThanOrEqual(page);
        streamed.push(...p);
        pages++;
      }
      const ranged = await entriesInSeqRange(t.ctx.db, from, to);
      expect(ranged.length).toBe(Math.min(to, end) - from);
      expect(streamed.map(plain)).toEqual(ranged.map(plain));
      expect(pages).toBeGreaterThanOrEqual(Math.ceil(ranged.length / page));
    }
  });

  it("pages a study's entries in log order: sealed by seq, then pending by write time", async () => {
    const all = await studyEntriesOfKinds(t.ctx.db, study.id, ["site.added"], null, 10_000);
    const sealed = all.filter((e) => e.seq !== null);
    const pending = all.filter((e) => e.seq === null);
    expect(pending.length).toBe(4);
    expect(all.slice(0, sealed.length)).toEqual(sealed);
    expect(sealed.map((e) => e.seq)).toEqual([...sealed.map((e) => e.seq!)].sort((a, b) => a - b));
    for (const limit of [1, 3, 10]) {
      const paged: typeof all = [];
      let after: { seq: number | null; at: Date; id: string } | null = null;
      for (;;) {
        const page = await studyEntriesOfKinds(t.ctx.db, study.id, ["site.added"], after, limit);
        if (page.length === 0) break;
        expect(page.length).toBeLessThanOrEqual(limit);
        paged.push(...page);
        const l = page[page.length - 1];
        after = { seq: l.seq, at: l.at, id: l.id };
      }
      expect(paged.map((e) => e.id)).toEqual(all.map((e) => e.id));
    }
  });

  it("names the log findings range reads name, also when a batch no longer starts where the last ended", async () => {
    let r = await runIntegrityAudit(t.ctx);
    expect(r.clean).toBe(true);
    const sealed = (await t.database.execute("SELECT count(*)::int AS n FROM ledger_entries WHERE seq IS NOT NULL"))[0];
    expect(r.checked.entries).toBe(Number((sealed as { n: unknown }).n));
    // Batch 3 moved one seq back (overlapping batch 2), batch 5 one seq on (leaving a gap).
    await tamper([
      "UPDATE batches SET first_seq = first_seq - 1 WHERE batch_no = 3",
      "UPDATE batches SET first_seq = first_seq + 1 WHERE batch_no = 5",
    ]);
    try {
      r = await runIntegrityAudit(t.ctx);
      const want = (await rangeAudit())
        .filter((f) => logCodes.has(f.code))
        .map(key)
        .sort();
      expect(want).toContain("BATCH_NOT_CONSECUTIVE  3  ");
      expect(want).toContain("BATCH_NOT_CONSECUTIVE  5  ");
      expect(want.some((k) => k.startsWith("BATCH_ROOT_MISMATCH"))).toBe(true);
      expect(
        r.findings
          .filter((f) => logCodes.has(f.code))
          .map(key)
          .sort(),
      ).toEqual(want);
    } finally {
      await tamper([
        "UPDATE batches SET first_seq = first_seq + 1 WHERE batch_no = 3",
        "UPDATE batches SET first_seq = first_seq - 1 WHERE batch_no = 5",
      ]);
    }
    expect((await runIntegrityAudit(t.ctx)).clean).toBe(true);
  });
});
