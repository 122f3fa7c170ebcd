/**
 * The database lock page and the public registration page against their sealed entries (issue 20 review, ADR 0050,
 * ADR 0054) on PGlite and PostgreSQL: the lock page calls the analysis data set's SHA-256 "sealed" only when the row
 * and the stored file match the `database.locked` entry, and names what differs; the public page shows each lock and
 * its unlock with their times, and flags an unlock after unblinding (page data and JSON).
 */
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { lockDatabase, unlockDatabase } from "../../app/database-lock/database-lock.server.ts";
import { lockPageState } from "../../app/database-lock/lock-page.server.ts";
import { enrollParticipant } from "../../app/participants/participants.server.ts";
import type { Principal } from "../../app/platform/permissions.server.ts";
import { commitList, createGeneratedList } from "../../app/randomization/lists.server.ts";
import { randomizeParticipant } from "../../app/randomization/randomize.server.ts";
import { unblindStudy } from "../../app/randomization/unblinding.server.ts";
import { publicRegistry } from "../../app/registration/public-registry.server.ts";
import { setRegistration } from "../../app/registration/registration.server.ts";
import { loader as jsonLoader } from "../../app/routes/public/registry.$code[.json].ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { giveCompleteConsent } from "../helpers/consent.ts";
import { engineUnderTest, openTestDatabase, type TestDb } from "../helpers/db.ts";
import { createStaff } from "../helpers/study-staff.ts";

let t: TestDb;
let p: Record<string, Principal>;
const S = "PGS-1";
const rows = async (q: string) => (await t.database.execute(q)) as Record<string, unknown>[];
async function tamper(statements: string[]) {
  await t.ctx.db.transaction(async (tx) => {
    await tx.execute(sql.raw("SET LOCAL session_replication_role = replica"));
    for (const s of statements) await tx.execute(sql.raw(s));
  });
}
const DESIGN = {
  v: 1,
  arms: [
    { code: "A", name: "Active", ratio: 1 },
    { code: "P", name: "Placebo", ratio: 1 },
  ],
  blockSizes: [2],
  factors: [],
  sites: ["S1"],
  slotsPerStratum: 4,
  kitTypes: { KA: "A", KP: "P" },
};
const json = async () => {
  const res = (await jsonLoader({
    request: new Request(`http://portal.test/registry/${S}.json`),
    context: { ctx: t.ctx },
    params: { code: S },
  } as never)) as Response;
  return (await res.json()) as Record<string, unknown>;
};

beforeAll(async () => {
  t = await openTestDatabase();
  await createStudy(t.ctx, { code: S, title: "Pages", sites: [{ code: "S1", name: "One" }] }, null);
  p = (
    await createStaff(t.ctx, S, "pgs.test", [
      ["admin", "admin"],
      ["inv", "investigator", "S1"],
      ["dm", "data_manager"],
      ["mon", "monitor"],
      ["stat", "unblinded_statistician"],
    ])
  ).principals;
  await enrollParticipant(t.ctx, p.inv, { study: S, site: "S1" });
  await giveCompleteConsent(t.ctx, S, "S1-001");
  const { listId } = await createGeneratedList(t.ctx, p.stat, S, { design: DESIGN });
  await commitList(t.ctx, p.stat, S, listId);
  await randomizeParticipant(t.ctx, p.inv, S, "S1-001", { factors: {} });
  await setRegistration(t.ctx, p.admin, S, { published: true });
}, 120_000);
afterAll(async () => {
  await t?.close();
});

describe(`lock page and public page against their entries on ${engineUnderTest()}`, () => {
  it("the public page shows when the randomization list was committed: before the first allocation", async () => {
    const r = await publicRegistry(t.ctx, S);
    const [list] = await rows(
      `SELECT round(extract(epoch FROM committed_at) * 1000) AS ms FROM randomization_lists
        WHERE committed_at IS NOT NULL`,
    );
    const [first] = await rows(
      `SELECT round(extract(epoch FROM min(created_at)) * 1000) AS ms FROM randomization_allocations`,
    );
    expect(Date.parse(r?.randomizationCommitted?.at ?? "")).toBe(Number(list.ms));
    expect(Date.parse(r?.randomizationCommitted?.at ?? "")).toBeLessThanOrEqual(Number(first.ms));
    expect(r?.randomizationCommitted?.seal.status).toMatch(/^(pending|sealed)$/);
    // Nothing else about the list: no root, no size, no stratum, no arm.
    expect(Object.keys(r?.randomizationCommitted ?? {}).sort()).toEqual(["at", "seal"]);
    expect((await json()).randomizationCommitted).toEqual(JSON.parse(JSON.stringify(r?.randomizationCommitted)));
  });

  it("the lock page calls the analysis data set's SHA-256 sealed only while it matches its entry", async () => {
    const r = await lockDatabase(t.ctx, p.dm, S, { reason: "final lock" });
    let s = await lockPageState(t.ctx, p.mon, S);
    expect(s.inForce).toMatchObject({ sha256: r.sha256, sealedSha256: r.sha256, matchesSeal: true, differences: [] });
    expect(s.inForce?.storedSha256).toBe(r.sha256);
    // The row's hash changed behind the log (to match a swapped file, say): named, the sealed hash shown beside it.
    const other = "ab".repeat(32);
    await tamper([`UPDATE database_locks SET analysis_sha256 = '\\x${other}' WHERE id = '${r.databaseLockId}'`]);
    s = await lockPageState(t.ctx, p.mon, S);
    expect(s.inForce).toMatchObject({ sha256: other, sealedSha256: r.sha256, matchesSeal: false });
    expect(s.inForce?.differences).toEqual(["SHA-256"]);
    // The stored file's bytes changed (the row's hash left alone): named too.
    await tamper([
      `UPDATE database_locks SET analysis_sha256 = '\\x${r.sha256}', analysis_data = '\\x504b0506'
       WHERE id = '${r.databaseLockId}'`,
    ]);
    s = await lockPageState(t.ctx, p.mon, S);
    expect(s.inForce?.differences).toEqual(["stored file"]);
    expect(s.inForce?.storedSha256).not.toBe(r.sha256);
    const [{ data }] = await rows(`SELECT encode(analysis_data, 'hex') AS data FROM database_locks`);
    expect(String(data)).toBe("504b0506");
    await tamper([`UPDATE database_locks SET records = records + 5 WHERE id = '${r.databaseLockId}'`]);
    expect((await lockPageState(t.ctx, p.mon, S)).inForce?.differences).toEqual(["stored file", "records"]);
  });

  it("the public page shows each lock and unlock, and flags an unlock after unblinding (page and JSON)", async () => {
    let r = await publicRegistry(t.ctx, S);
    expect(r?.databaseLocks).toEqual([
      expect.objectContaining({ unlockedAt: null, unlockSeal: null, unlockedAfterUnblinding: false }),
    ]);
    expect(r?.unlockedAfterUnblinding).toBe(false);
    await unblindStudy(t.ctx, p.stat, S);
    await unlockDatabase(t.ctx, p.dm, S, "late adverse event report");
    r = await publicRegistry(t.ctx, S);
    const [lock] = r?.databaseLocks ?? [];
    expect(lock.unlockedAt).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(Date.parse(lock.unlockedAt ?? "")).toBeGreaterThan(Date.parse(r?.unblindings[0].at ?? ""));
    expect(lock.unlockSeal?.status).toMatch(/^(pending|sealed)$/);
    expect(lock.unlockSeal?.recordedAt).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(lock.unlockedAfterUnblinding).toBe(true);
    expect(r?.unlockedAfterUnblinding).toBe(true);
    const j = await json();
    expect(j.unlockedAfterUnblinding).toBe(true);
    expect(j.databaseLocks).toEqual([expect.objectContaining({ unlockedAfterUnblinding: true })]);
    // The unlock's reason is free text: never on the public page.
    expect(JSON.stringify(j)).not.toContain("late adverse event");
  });

  it("a lock unlocked before unblinding is shown with its unlock, not flagged", async () => {
    await createStudy(t.ctx, { code: "PGS-2", title: "Pages two", sites: [{ code: "S1", name: "One" }] }, null);
    const q = (
      await createStaff(t.ctx, "PGS-2", "pgs2.test", [
        ["admin", "admin"],
        ["dm", "data_manager"],
      ])
    ).principals;
    await setRegistration(t.ctx, q.admin, "PGS-2", { published: true });
    await lockDatabase(t.ctx, q.dm, "PGS-2", { reason: "first lock" });
    await unlockDatabase(t.ctx, q.dm, "PGS-2", "a query to resolve");
    await lockDatabase(t.ctx, q.dm, "PGS-2", { reason: "second lock" });
    const r = await publicRegistry(t.ctx, "PGS-2");
    expect(
      r?.databaseLocks.map((l) => [l.unlockedAt !== null, l.unlockSeal !== null, l.unlockedAfterUnblinding]),
    ).toEqual([
      [true, true, false],
      [false, false, false],
    ]);
    expect(r?.unlockedAfterUnblinding).toBe(false);
  });
});
