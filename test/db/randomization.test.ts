/**
 * Randomization (issue 20, ADR 0052 and 0053) on PGlite and PostgreSQL: a list generated or uploaded and committed
 * once (strata, slots, the sealed commitment without arms); 40 participants randomized in two strata, each into the
 * next slot under the stratum's row lock (20 at once into one stratum take 20 consecutive slots); bad inputs named;
 * blinded roles see the randomization number only (pages' data, entries, audit events, notifications); emergency
 * unblinding sealed and notified to the sponsor without the arm; the integrity audit naming a reused slot, a skipped
 * slot, an arm changed after commitment, and allocation rows changed, deleted or inserted behind the log.
 */
import { sql } from "drizzle-orm";
import { fromHex, toBase64Url } from "../../anchoring/log/bytes.ts";
import { saltedTextHash } from "../../anchoring/log/text-hash.ts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { appendEntry } from "../../app/log/append-entry.server.ts";
import { runIntegrityAudit, type AuditReport } from "../../app/integrity-audit/integrity-audit.server.ts";
import { enrollParticipant } from "../../app/participants/participants.server.ts";
import { can, type Principal } from "../../app/platform/permissions.server.ts";
import { lockDatabase } from "../../app/database-lock/database-lock.server.ts";
import { unblindStudy } from "../../app/randomization/unblinding.server.ts";
import { emergencyUnblind } from "../../app/randomization/emergency-unblinding.server.ts";
import {
  commitList,
  createGeneratedList,
  createUploadedList,
  discardList,
  previewList,
} from "../../app/randomization/lists.server.ts";
import { randomizeParticipant } from "../../app/randomization/randomize.server.ts";
import { seedDemoRandomization } from "../../app/randomization/demo.server.ts";
import { participantRandomization, randomizationOverview } from "../../app/randomization/randomization-view.server.ts";
import { armsVisible, isStudyUnblinded } from "../../app/randomization/unblinding-state.server.ts";
import { participantBySubject } from "../../app/participants/find-participant.server.ts";
import { setLock, releaseLock } from "../../app/clinical-monitoring/clinical-monitoring.server.ts";
import { createStudy, getStudyOrThrow } from "../../app/studies/studies.server.ts";
import { giveCompleteConsent } from "../helpers/consent.ts";
import { engineUnderTest, openTestDatabase, type TestDb } from "../helpers/db.ts";
import { createStaff } from "../helpers/study-staff.ts";

let t: TestDb;
const rows = async (q: string) => (await t.database.execute(q)) as Record<string, unknown>[];
const tamperFindings = (r: AuditReport) => r.findings.filter((f) => f.severity === "tamper");
async function tamper(statements: string[]) {
  await t.ctx.db.transaction(async (tx) => {
    await tx.execute(sql.raw("SET LOCAL session_replication_role = replica"));
    for (const s of statements) await tx.execute(sql.raw(s));
  });
}

/** Arm codes and kit types long enough to grep for in everything a blinded role could read. */
const design = (sites: string[], opts: { factors?: boolean; slots?: number } = {}) => ({
  v: 1,
  arms: [
    { code: "ZOLVATREX", name: "Zolvatrex 10 mg", ratio: 1 },
    { code: "PLACEBOQ", name: "Placebo", ratio: 1 },
  ],
  blockSizes: [4, 6],
  factors: opts.factors === false ? [] : [{ name: "sex", label: "Sex at birth", levels: ["F", "M"] }],
  sites,
  slotsPerStratum: opts.slots ?? 20,
  kitTypes: { "KIT-ZOLVA": "ZOLVATREX", "KIT-PLACQ": "PLACEBOQ" },
});
const SECRET = /ZOLVATREX|PLACEBOQ|KIT-ZOLVA|KIT-PLACQ|Zolvatrex/;

/** The staff a study needs when its tests make lists, enrol and randomize, nothing more. */
const LIST_STAFF = ["stat", "inv", "coord"];

interface Setup {
  p: Record<string, Principal>;
  subjects: string[];
}

/** A study with staff, a committed (or not) list and `n` consented participants at S1. */
async function setupStudy(
  code: string,
  n: number,
  opts: { commit?: boolean; factors?: boolean; slots?: number; staff?: readonly string[] } = {},
): Promise<Setup> {
  await createStudy(
    t.ctx,
    {
      code,
      title: `Randomization ${code}`,
      sites: [
        { code: "S1", name: "One" },
        { code: "S2", name: "Two" },
      ],
    },
    null,
  );
  const domain = `${code.toLowerCase()}.test`;
  // Every account costs a password hash: a study whose tests use only some of the staff is given only those.
  const staff = (
    [
      ["stat", "unblinded_statistician"],
      ["pharm", "unblinded_pharmacist", "S1"],
      ["admin", "admin"],
      ["inv", "investigator", "S1"],
      ["inv2", "investigator", "S2"],
      ["coord", "coordinator", "S1"],
      ["mon", "monitor"],
    ] as const
  ).filter(([key]) => !opts.staff || opts.staff.includes(key));
  const { principals: p } = await createStaff(t.ctx, code, domain, staff);
  if (opts.commit !== false) {
    const { listId } = await createGeneratedList(t.ctx, p.stat, code, {
      design: design(["S1", "S2"], { factors: opts.factors, slots: opts.slots }),
    });
    await commitList(t.ctx, p.stat, code, listId);
  }
  const subjects: string[] = [];
  for (let i = 0; i < n; i++) {
    const e = await enrollParticipant(t.ctx, p.inv, { study: code, site: "S1" });
    await giveCompleteConsent(t.ctx, code, e.subjectCode);
    subjects.push(e.subjectCode);
  }
  return { p, subjects };
}

beforeAll(async () => {
  t = await openTestDatabase();
});
afterAll(async () => {
  await t?.close();
});

describe(`randomization on ${engineUnderTest()}`, () => {
  let main: Setup;

  it("generates, previews, discards and commits a list once; the commitment seals no arm", async () => {
    main = await setupStudy("RND-1", 40, { commit: false });
    const { p } = main;
    const d1 = await createGeneratedList(t.ctx, p.stat, "RND-1", { design: design(["S1", "S2"]) });
    const pv = await previewList(t.ctx, p.stat, "RND-1", d1.listId);
    expect(pv.strata.map((s) => s.key)).toEqual(["site=S1;sex=F", "site=S1;sex=M", "site=S2;sex=F", "site=S2;sex=M"]);
    for (const s of pv.strata) {
      expect(s.size).toBe(20); // exactly slotsPerStratum: the sealed size says nothing about block sizes
      // The blocks drawn cover the stratum, the last one cut at 20 (ADR 0051).
      const blocks = s.blocks ?? [];
      expect(blocks.slice(0, -1).reduce((a, b) => a + b, 0)).toBeLessThan(20);
      expect(blocks.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(20);
    }
    // Only the statistician previews, generates or commits.
    await expect(previewList(t.ctx, p.coord, "RND-1", d1.listId)).rejects.toMatchObject({ code: "forbidden" });
    await expect(createGeneratedList(t.ctx, p.admin, "RND-1", { design: design(["S1"]) })).rejects.toMatchObject({
      code: "forbidden",
    });
    // Discarding is a sealed update: the draft stays, with its entries; a list is never deleted.
    await discardList(t.ctx, p.stat, "RND-1", d1.listId);
    const [kept] = await rows(
      `SELECT draft_entry_id, discard_entry_id, discarded_at FROM randomization_lists WHERE id = '${d1.listId}'`,
    );
    expect(kept.discarded_at).not.toBeNull();
    const draftKinds = await rows(
      `SELECT kind FROM ledger_entries WHERE id IN ('${kept.draft_entry_id}', '${kept.discard_entry_id}') ORDER BY seq`,
    );
    expect(draftKinds.map((k) => k.kind).sort()).toEqual([
      "randomization.list_discarded",
      "randomization.list_drafted",
    ]);
    await expect(discardList(t.ctx, p.stat, "RND-1", d1.listId)).rejects.toMatchObject({ code: "conflict" });
    await expect(t.database.execute(`DELETE FROM randomization_lists WHERE id = '${d1.listId}'`)).rejects.toThrow(
      /no list deleted/,
    );
    const d2 = await createGeneratedList(t.ctx, p.stat, "RND-1", { design: design(["S1", "S2"]) });
    const d3 = await createGeneratedList(t.ctx, p.stat, "RND-1", { design: design(["S1", "S2"]) });
    const { entryId } = await commitList(t.ctx, p.stat, "RND-1", d2.listId);
    await expect(commitList(t.ctx, p.stat, "RND-1", d3.listId)).rejects.toMatchObject({ code: "conflict" });
    await expect(discardList(t.ctx, p.stat, "RND-1", d2.listId)).rejects.toMatchObject({ code: "conflict" });
    const [e] = await rows(`SELECT payload_text FROM ledger_entries WHERE id = '${entryId}'`);
    const payload = JSON.parse(String(e.payload_text));
    const pv2 = await previewList(t.ctx, p.stat, "RND-1", d2.listId);
    expect(payload.strata).toEqual(pv2.strata.map((s) => ({ key: s.key, root: expect.any(String), size: 20 })));
    const [l2] = await rows(
      `SELECT design_text, encode(design_nonce, 'hex') AS nonce, draft_entry_id FROM randomization_lists
       WHERE id = '${d2.listId}'`,
    );
    const [draft] = await rows(`SELECT payload_text FROM ledger_entries WHERE id = '${l2.draft_entry_id}'`);
    // The draft sealed the same strata as the commitment (its roots bind the list chosen).
    expect(JSON.parse(String(draft.payload_text)).strata).toEqual(payload.strata);
    // The design hash is under the list's secret nonce: the payload's public salt does not recompute it.
    const nonce = toBase64Url(fromHex(String(l2.nonce)));
    expect(payload.designHash).toBe(saltedTextHash(t.ctx.crypto, nonce, String(l2.design_text)));
    expect(payload.designHash).not.toBe(saltedTextHash(t.ctx.crypto, payload.salt, String(l2.design_text)));
    // Anyone (a blinded coordinator here) learns how many drafts came before the commitment: d1 discarded, d3 made.
    const seen = await randomizationOverview(t.ctx, p.coord, "RND-1");
    expect(seen.committed?.draftsBefore).toEqual({ made: 2, discarded: 1 });
    expect(String(e.payload_text)).not.toMatch(SECRET);
    const strata = await rows(`SELECT key, position, size FROM randomization_strata ORDER BY position`);
    expect(strata.map((s) => [s.key, s.position])).toEqual([
      ["site=S1;sex=F", 1],
      ["site=S1;sex=M", 2],
      ["site=S2;sex=F", 3],
      ["site=S2;sex=M", 4],
    ]);
    const [{ n }] = await rows(
      `SELECT count(*)::int AS n FROM randomization_slots sl JOIN randomization_strata s ON s.id = sl.stratum_id`,
    );
    expect(Number(n)).toBe(payload.strata.reduce((a: number, s: { size: number }) => a + s.size, 0));
    expect(tamperFindings(await runIntegrityAudit(t.ctx, { study: "RND-1" }))).toEqual([]);
  });

  it("refuses a bad design and a bad upload, naming each problem (with its line)", async () => {
    const { p } = main;
    const bad = { ...design(["S1"]), blockSizes: [5], kitTypes: { "KIT-ZOLVA": "ZOLVATREX" } };
    const err = await createGeneratedList(t.ctx, p.stat, "RND-1", { design: bad }).catch((x) => x);
    expect(err).toMatchObject({ code: "invalid" });
    expect(err.problems.map((x: { message: string }) => x.message).join("\n")).toMatch(
      /block size 5 is not a multiple of 2/,
    );
    expect(err.problems.map((x: { message: string }) => x.message).join("\n")).toMatch(/arm PLACEBOQ has no kit type/);
    await expect(createGeneratedList(t.ctx, p.stat, "RND-1", { design: design(["S1", "NOPE"]) })).rejects.toMatchObject(
      { code: "invalid", message: expect.stringContaining("NOPE is not a site") },
    );
    const csv = [
      "site,sex,sequence,arm,kit_type",
      "S1,F,1,ZOLVATREX,KIT-ZOLVA",
      "S1,F,3,PLACEBOQ,KIT-ZOLVA",
      "S1,F,4,PLACEBOQ,KIT-PLACQ",
      "S1,X,1,PLACEBOQ,KIT-PLACQ",
      "S1,M,1,PLACEBOQ,KIT-PLACQ",
      "S1,M,1,ZOLVATREX,KIT-ZOLVA",
    ].join("\n");
    const up = await createUploadedList(t.ctx, p.stat, "RND-1", { design: design(["S1"]), csvText: csv }).catch(
      (x) => x,
    );
    expect(up).toMatchObject({ code: "invalid", field: "csv" });
    const msgs = up.problems.map((x: { message: string }) => x.message).join("\n");
    expect(msgs).toContain("line 3: kit type KIT-ZOLVA belongs to arm ZOLVATREX, not PLACEBOQ");
    expect(msgs).toContain('line 5: sex "X" is not one of F, M');
    expect(msgs).toContain("line 7: stratum site=S1;sex=M sequence 1 is also on line 6");
    expect(msgs).toContain("stratum site=S1;sex=F: sequence 2, 3 missing (sequences run 1 to 4 without gaps)");
  });

  it("refuses an upload whose stratum has fewer or more rows than the design's slots per stratum", async () => {
    const { p } = await setupStudy("RND-N", 0, { commit: false, staff: LIST_STAFF });
    const d = design(["S1", "S2"], { factors: false, slots: 3 });
    const rowsOf = (site: string, n: number) =>
      Array.from({ length: n }, (_, i) => `${site},${i + 1},${i % 2 ? "PLACEBOQ,KIT-PLACQ" : "ZOLVATREX,KIT-ZOLVA"}`);
    const csv = ["site,sequence,arm,kit_type", ...rowsOf("S1", 2), ...rowsOf("S2", 4)].join("\n");
    const up = await createUploadedList(t.ctx, p.stat, "RND-N", { design: d, csvText: csv }).catch((x) => x);
    expect(up).toMatchObject({ code: "invalid", field: "csv" });
    expect(up.problems.map((x: { message: string }) => x.message)).toEqual([
      "list file: stratum site=S1 has 2 rows, the design sets 3 slots per stratum",
      "list file: stratum site=S2 has 4 rows, the design sets 3 slots per stratum",
    ]);
    const exact = ["site,sequence,arm,kit_type", ...rowsOf("S1", 3), ...rowsOf("S2", 3)].join("\n");
    await expect(createUploadedList(t.ctx, p.stat, "RND-N", { design: d, csvText: exact })).resolves.toMatchObject({
      listId: expect.any(String),
    });
  });

  it("commits an uploaded list: a salt column refused, every salt drawn by the server at upload", async () => {
    const { p } = await setupStudy("RND-U", 0, { commit: false, staff: LIST_STAFF });
    const lines = ["site,sequence,arm,kit_type"];
    for (let i = 1; i <= 4; i++) lines.push(`S1,${i},${i % 2 ? "ZOLVATREX,KIT-ZOLVA" : "PLACEBOQ,KIT-PLACQ"}`);
    const d = design(["S1"], { factors: false, slots: 4 });
    const withSalt = lines.map((l, i) => (i === 0 ? `${l},salt` : `${l},${"a".repeat(22)}`)).join("\n");
    await expect(createUploadedList(t.ctx, p.stat, "RND-U", { design: d, csvText: withSalt })).rejects.toMatchObject({
      code: "invalid",
      field: "csv",
      message: expect.stringMatching(/leave out the salt column/),
    });
    const { listId } = await createUploadedList(t.ctx, p.stat, "RND-U", { design: d, csvText: lines.join("\n") });
    await commitList(t.ctx, p.stat, "RND-U", listId);
    const slots = await rows(
      `SELECT sl.seq, sl.salt FROM randomization_slots sl JOIN randomization_strata s ON s.id = sl.stratum_id
       WHERE s.key = 'site=S1' AND sl.study_id = (SELECT id FROM studies WHERE code = 'RND-U') ORDER BY sl.seq`,
    );
    expect(slots.map((s) => s.seq)).toEqual([0, 1, 2, 3]);
    for (const s of slots) expect(String(s.salt)).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(new Set(slots.map((s) => s.salt)).size).toBe(4);
    // The salts drawn at upload are the ones sealed with the draft and committed.
    const [l] = await rows(`SELECT slots_text FROM randomization_lists WHERE id = '${listId}'`);
    expect(JSON.parse(String(l.slots_text))[0].slots.map((x: { salt: string }) => x.salt)).toEqual(
      slots.map((s) => s.salt),
    );
    expect(tamperFindings(await runIntegrityAudit(t.ctx, { study: "RND-U" }))).toEqual([]);
  });

  it("the audit names a list row changed, deleted, inserted or un-discarded behind the log", async () => {
    const { p } = await setupStudy("RND-L", 0, { commit: false, staff: LIST_STAFF });
    const audit = async () => tamperFindings(await runIntegrityAudit(t.ctx, { study: "RND-L" }));
    const a = await createGeneratedList(t.ctx, p.stat, "RND-L", { design: design(["S1"]) });
    const b = await createGeneratedList(t.ctx, p.stat, "RND-L", { design: design(["S1"]) });
    await discardList(t.ctx, p.stat, "RND-L", b.listId);
    expect(await audit()).toEqual([]);
    const named = async () => (await audit()).map((x) => [x.code, x.table, x.id, x.field ?? null]);
    // Changed: the draft's design, then its seed (another list than the one sealed).
    const [orig] = await rows(
      `SELECT design_text, encode(seed, 'hex') AS seed FROM randomization_lists WHERE id = '${a.listId}'`,
    );
    await tamper([
      `UPDATE randomization_lists SET design_text = replace(design_text, '"blockSizes":[4,6]', '"blockSizes":[4]')
       WHERE id = '${a.listId}'`,
    ]);
    expect(await named()).toContainEqual(["DATA_ROW_MISMATCH", "randomization_lists", a.listId, "designHash"]);
    await tamper([
      `UPDATE randomization_lists SET design_text = '${orig.design_text}', seed = decode('${"11".repeat(32)}', 'hex')
       WHERE id = '${a.listId}'`,
    ]);
    expect(await named()).toEqual([["DATA_ROW_MISMATCH", "randomization_lists", a.listId, "strata"]]);
    await tamper([`UPDATE randomization_lists SET seed = decode('${orig.seed}', 'hex') WHERE id = '${a.listId}'`]);
    // Un-discarded behind the log.
    await tamper([
      `UPDATE randomization_lists SET discarded_at = NULL, discarded_by = NULL, discard_entry_id = NULL
       WHERE id = '${b.listId}'`,
    ]);
    expect(await named()).toEqual([["DATA_ROW_MISSING", "randomization_lists", b.listId, null]]);
    // Deleted: the draft entry names its list.
    const [bRow] = await rows(`SELECT * FROM randomization_lists WHERE id = '${b.listId}'`);
    await tamper([`DELETE FROM randomization_lists WHERE id = '${b.listId}'`]);
    const deleted = await audit();
    expect(deleted.map((x) => [x.code, x.id])).toEqual([
      ["DATA_ROW_MISSING", b.listId],
      ["DATA_ROW_MISSING", b.listId],
    ]);
    expect(deleted.map((x) => x.message)).toContainEqual(
      expect.stringMatching(/list_drafted entry .* names list .*, which has no row \(deleted\?\)/),
    );
    // Inserted behind the log (its draft entry id names no entry).
    await tamper([
      `INSERT INTO randomization_lists (id, study_id, source, design_text, design_nonce, seed, draft_entry_id,
         actor_user_id, created_at)
       VALUES (gen_random_uuid(), '${bRow.study_id}', 'generated', '${orig.design_text}',
         decode('${"22".repeat(32)}', 'hex'), decode('${orig.seed}', 'hex'), gen_random_uuid(),
         '${p.stat.userId}', now())`,
    ]);
    expect((await audit()).map((x) => [x.code, x.table])).toContainEqual(["DATA_ROW_UNLOGGED", "randomization_lists"]);
  });

  it("randomizes 40 participants in two strata into consecutive slots; blinded roles see numbers only", async () => {
    const { p, subjects } = main;
    const study = await getStudyOrThrow(t.ctx, "RND-1");
    for (const [i, s] of subjects.entries()) {
      const r = await randomizeParticipant(t.ctx, i % 2 ? p.inv : p.coord, "RND-1", s, {
        factors: { sex: i < 20 ? "F" : "M" },
      });
      expect(r.number).toBe(`R0${i < 20 ? 1 : 2}-${String((i % 20) + 1).padStart(4, "0")}`);
    }
    const alloc = await rows(
      `SELECT s.key, a.seq FROM randomization_allocations a JOIN randomization_strata s ON s.id = a.stratum_id
       WHERE a.study_id = '${study.id}' ORDER BY s.key, a.seq`,
    );
    expect(alloc.filter((a) => a.key === "site=S1;sex=F").map((a) => a.seq)).toEqual([...Array(20).keys()]);
    expect(alloc.filter((a) => a.key === "site=S1;sex=M").map((a) => a.seq)).toEqual([...Array(20).keys()]);
    const disp = await rows(`SELECT DISTINCT disposition FROM participants WHERE study_id = '${study.id}'`);
    expect(disp).toEqual([{ disposition: "randomized" }]);
    // What the coordinator's participant page and the study page get: no arm.
    const part = await participantBySubject(t.ctx, study.id, subjects[0]);
    const coordView = await participantRandomization(t.ctx, p.coord, study, part!);
    expect(coordView.allocation?.number).toBe("R01-0001");
    expect(coordView.arm).toBeNull();
    expect(JSON.stringify(coordView)).not.toMatch(SECRET);
    const overview = await randomizationOverview(t.ctx, p.coord, "RND-1");
    expect(overview.committed?.strata.map((s) => s.allocated)).toEqual([20, 20, 0, 0]);
    expect(JSON.stringify(overview)).not.toMatch(SECRET);
    expect(overview.committed?.strata[0].root).toBeNull();
    // The unblinded roles see it (the pharmacist at S1 only); a platform admin does not by being one.
    expect((await participantRandomization(t.ctx, p.stat, study, part!)).arm?.code).toMatch(/ZOLVATREX|PLACEBOQ/);
    expect((await participantRandomization(t.ctx, p.pharm, study, part!)).arm).not.toBeNull();
    expect(await armsVisible(t.ctx, p.pharm, { studyId: study.id, siteId: await siteId("RND-1", "S2") })).toBe(false);
    expect(await armsVisible(t.ctx, { ...p.admin, platformAdmin: true }, { studyId: study.id, siteId: null })).toBe(
      false,
    );
    expect(await isStudyUnblinded(t.ctx.db, study.id)).toBe(false);
    // Entries and audit events of the allocations hold no arm, no kit type.
    const sealed = await rows(
      `SELECT payload_text FROM ledger_entries WHERE study_id = '${study.id}'
       AND kind IN ('randomization.allocated', 'randomization.committed', 'participant.disposition_set',
                    'audit.event')`,
    );
    expect(sealed.length).toBeGreaterThan(80);
    for (const r of sealed) expect(String(r.payload_text)).not.toMatch(SECRET);
    const events = await rows(`SELECT action, detail::text AS detail FROM audit_events WHERE study_id = '${study.id}'`);
    expect(events.filter((e) => e.action === "randomization.allocated")).toHaveLength(40);
    for (const e of events) expect(String(e.detail)).not.toMatch(SECRET);
    expect(tamperFindings(await runIntegrityAudit(t.ctx, { study: "RND-1" }))).toEqual([]);
  });

  it("a platform admin who is not a member can neither lock the database nor unblind the study", async () => {
    const { p } = main;
    const study = await getStudyOrThrow(t.ctx, "RND-1");
    const outsider: Principal = { ...p.mon, platformAdmin: true, memberships: [] };
    for (const action of ["database.lock", "randomization.unblind", "randomization.view_arms"] as const)
      expect(can(outsider, action, { studyId: study.id }), action).toBe(false);
    await expect(lockDatabase(t.ctx, outsider, "RND-1", { reason: "lock it" })).rejects.toMatchObject({
      code: "forbidden",
    });
    await expect(unblindStudy(t.ctx, outsider, "RND-1")).rejects.toMatchObject({ code: "forbidden" });
    // Still everything else a platform admin does (e.g. review the study), and the roles by membership.
    expect(can(outsider, "study.review", { studyId: study.id })).toBe(true);
    expect(can({ ...p.admin, platformAdmin: true }, "randomization.unblind", { studyId: study.id })).toBe(true);
    expect(can({ ...p.admin, platformAdmin: true }, "database.lock", { studyId: study.id })).toBe(false);
  });

  it("refuses bad randomizations with their reasons", async () => {
    const { p, subjects } = main;
    const one = (who: Principal, subject: string, factors: Record<string, string>) =>
      randomizeParticipant(t.ctx, who, "RND-1", subject, { factors });
    await expect(one(p.coord, subjects[0], { sex: "F" })).rejects.toMatchObject({
      code: "conflict",
      message: expect.stringContaining("already randomized (R01-0001)"),
    });
    const fresh = await enrollParticipant(t.ctx, p.inv, { study: "RND-1", site: "S1" });
    await expect(one(p.coord, fresh.subjectCode, { sex: "F" })).rejects.toMatchObject({
      code: "conflict",
      message: expect.stringContaining("has not consented yet"),
    });
    await giveCompleteConsent(t.ctx, "RND-1", fresh.subjectCode);
    await expect(one(p.coord, fresh.subjectCode, {})).rejects.toMatchObject({
      code: "invalid",
      field: "factors.sex",
      message: "Sex at birth: choose one of F, M",
    });
    await expect(one(p.coord, fresh.subjectCode, { sex: "X" })).rejects.toMatchObject({ field: "factors.sex" });
    await expect(one(p.coord, fresh.subjectCode, { sex: "F", age: "old" })).rejects.toMatchObject({
      field: "factors.age",
    });
    await expect(one(p.mon, fresh.subjectCode, { sex: "F" })).rejects.toMatchObject({ code: "forbidden" });
    await expect(one(p.inv2, fresh.subjectCode, { sex: "F" })).rejects.toMatchObject({ code: "not_found" });
    // A study lock (the database locked) stops it.
    await setLock(t.ctx, await dataManager("RND-1"), "RND-1", { scope: "study", reason: "interim lock" });
    await expect(one(p.coord, fresh.subjectCode, { sex: "F" })).rejects.toMatchObject({ code: "locked" });
    const [lock] = await rows(`SELECT id FROM locks WHERE scope = 'study' AND released_at IS NULL`);
    await releaseLock(t.ctx, await dataManager("RND-1"), "RND-1", String(lock.id), "interim over");
    // No list committed yet.
    const other = await setupStudy("RND-0", 1, { commit: false, staff: LIST_STAFF });
    await expect(
      randomizeParticipant(t.ctx, other.p.coord, "RND-0", other.subjects[0], { factors: { sex: "F" } }),
    ).rejects.toMatchObject({ code: "conflict", message: expect.stringContaining("no randomization list") });
  });

  it("refuses when the stratum has no slot left", async () => {
    const { p, subjects } = await setupStudy("RND-F", 7, { factors: false, slots: 4, staff: LIST_STAFF });
    const sizes = await rows(
      `SELECT size FROM randomization_strata WHERE key = 'site=S1'
       AND study_id = (SELECT id FROM studies WHERE code = 'RND-F')`,
    );
    const size = Number(sizes[0].size); // 4 or 6 (whole blocks)
    let refused = 0;
    for (const s of subjects)
      await randomizeParticipant(t.ctx, p.coord, "RND-F", s, { factors: {} }).catch((err) => {
        expect(err).toMatchObject({ code: "conflict", message: expect.stringContaining("has no slot left") });
        refused++;
      });
    expect(refused).toBe(subjects.length - size);
  });

  it("20 randomizations at once into one stratum take 20 distinct consecutive slots", async () => {
    const { p, subjects } = await setupStudy("RND-C", 20, { factors: false, slots: 24 });
    const out = await Promise.all(
      subjects.map((s, i) => randomizeParticipant(t.ctx, i % 2 ? p.coord : p.inv, "RND-C", s, { factors: {} })),
    );
    expect(new Set(out.map((o) => o.number)).size).toBe(20);
    const alloc = await rows(
      `SELECT seq, slot_id, number FROM randomization_allocations
       WHERE study_id = (SELECT id FROM studies WHERE code = 'RND-C') ORDER BY seq`,
    );
    expect(alloc.map((a) => a.seq)).toEqual([...Array(20).keys()]);
    expect(new Set(alloc.map((a) => a.slot_id)).size).toBe(20);
    expect(tamperFindings(await runIntegrityAudit(t.ctx, { study: "RND-C" }))).toEqual([]);
  });

  it("emergency unblinding: sealed, the arm to the investigator, the sponsor told without it", async () => {
    const { p, subjects } = main;
    const study = await getStudyOrThrow(t.ctx, "RND-1");
    await expect(emergencyUnblind(t.ctx, p.coord, "RND-1", subjects[2], { reason: "x" })).rejects.toMatchObject({
      code: "forbidden",
    });
    await expect(emergencyUnblind(t.ctx, p.inv, "RND-1", subjects[2], { reason: "  " })).rejects.toMatchObject({
      code: "invalid",
      field: "reason",
    });
    const reason = "Anaphylaxis in the emergency room; treating physician needs the arm";
    const r = await emergencyUnblind(t.ctx, p.inv, "RND-1", subjects[2], { reason });
    expect(r.arm).toMatch(/^(ZOLVATREX|PLACEBOQ)$/);
    const part = await participantBySubject(t.ctx, study.id, subjects[2]);
    expect((await participantRandomization(t.ctx, p.inv, study, part!)).arm?.code).toBe(r.arm);
    expect((await participantRandomization(t.ctx, p.coord, study, part!)).arm).toBeNull();
    const other = await participantBySubject(t.ctx, study.id, subjects[3]);
    expect((await participantRandomization(t.ctx, p.inv, study, other!)).arm).toBeNull();
    const [e] = await rows(`SELECT payload_text FROM ledger_entries WHERE kind = 'randomization.emergency_unblinded'`);
    expect(String(e.payload_text)).not.toContain("Anaphylaxis");
    expect(String(e.payload_text)).not.toMatch(SECRET);
    const mail = await rows(`SELECT to_address, subject, body FROM outbox WHERE kind = 'emergency_unblinding'`);
    expect(mail.map((m) => m.to_address).sort()).toEqual(["admin@rnd-1.test", "stat@rnd-1.test"]);
    for (const m of mail) {
      expect(String(m.body)).toContain(subjects[2]);
      expect(String(m.body)).toContain("inv person");
      expect(`${m.subject}${m.body}`).not.toMatch(SECRET);
      expect(String(m.body)).not.toContain("Anaphylaxis");
    }
    const ev = await rows(
      `SELECT detail::text AS d FROM audit_events WHERE action = 'randomization.emergency_unblinded'`,
    );
    expect(ev).toHaveLength(1);
    expect(String(ev[0].d)).not.toMatch(SECRET);
    // The audit compares the reason with its hash; a changed reason is named without its text.
    expect(tamperFindings(await runIntegrityAudit(t.ctx, { study: "RND-1" }))).toEqual([]);
    await tamper([`UPDATE emergency_unblindings SET reason = 'routine curiosity'`]);
    const f = tamperFindings(await runIntegrityAudit(t.ctx, { study: "RND-1" }));
    expect(f.map((x) => [x.table, x.field])).toEqual([["emergency_unblindings", "reason"]]);
    expect(JSON.stringify(f)).not.toContain("curiosity");
    await tamper([`UPDATE emergency_unblindings SET reason = '${reason}'`]);
  });

  it("the audit names an allocation row changed, deleted and inserted behind the log", async () => {
    const audit = async () => tamperFindings(await runIntegrityAudit(t.ctx, { study: "RND-1" }));
    expect(await audit()).toEqual([]);
    const [a] = await rows(`SELECT * FROM randomization_allocations WHERE number = 'R01-0005'`);
    await tamper([`UPDATE randomization_allocations SET number = 'R01-0099' WHERE id = '${a.id}'`]);
    expect((await audit()).map((x) => [x.code, x.table, x.id, x.field])).toContainEqual([
      "DATA_ROW_MISMATCH",
      "randomization_allocations",
      a.id,
      "number",
    ]);
    await tamper([`UPDATE randomization_allocations SET number = 'R01-0005' WHERE id = '${a.id}'`]);
    // Moved onto another participant (one not randomized): its entry names another subject.
    const [other] = await rows(
      `SELECT p.id FROM participants p LEFT JOIN randomization_allocations x ON x.participant_id = p.id
       WHERE p.study_id = '${a.study_id}' AND x.id IS NULL LIMIT 1`,
    );
    await tamper([`UPDATE randomization_allocations SET participant_id = '${other.id}' WHERE id = '${a.id}'`]);
    expect((await audit()).map((x) => [x.table, x.id, x.field])).toContainEqual([
      "randomization_allocations",
      a.id,
      "subject",
    ]);
    await tamper([`UPDATE randomization_allocations SET participant_id = '${a.participant_id}' WHERE id = '${a.id}'`]);
    await tamper([`DELETE FROM randomization_allocations WHERE id = '${a.id}'`]);
    let f = await audit();
    expect(f.map((x) => [x.code, x.table])).toContainEqual(["DATA_ROW_MISSING", "randomization_allocations"]);
    const cols = Object.keys(a).filter((k) => a[k] !== null);
    const values = cols.map((k) => (a[k] instanceof Date ? `'${(a[k] as Date).toISOString()}'` : `'${String(a[k])}'`));
    await tamper([`INSERT INTO randomization_allocations (${cols.join(", ")}) VALUES (${values.join(", ")})`]);
    expect(await audit()).toEqual([]);
    // Inserted behind the log: a row with no entry.
    const [fresh] = await rows(
      `SELECT p.id FROM participants p LEFT JOIN randomization_allocations a ON a.participant_id = p.id
       WHERE p.study_id = '${a.study_id}' AND a.id IS NULL LIMIT 1`,
    );
    const [spare] = await rows(
      `SELECT sl.id, sl.stratum_id, sl.seq FROM randomization_slots sl
       LEFT JOIN randomization_allocations x ON x.slot_id = sl.id
       WHERE sl.study_id = '${a.study_id}' AND x.id IS NULL ORDER BY sl.seq LIMIT 1`,
    );
    await tamper([
      `INSERT INTO randomization_allocations (id, study_id, list_id, stratum_id, slot_id, participant_id, seq, number,
        entry_id) VALUES ('00000000-0000-4000-8000-00000000aaaa', '${a.study_id}', '${a.list_id}',
        '${spare.stratum_id}',
        '${spare.id}', '${fresh.id}', ${spare.seq}, 'R09-0001', '00000000-0000-4000-8000-00000000bbbb')`,
    ]);
    f = await audit();
    expect(f.map((x) => [x.code, x.table, x.id])).toContainEqual([
      "DATA_ROW_UNLOGGED",
      "randomization_allocations",
      "00000000-0000-4000-8000-00000000aaaa",
    ]);
    await tamper([`DELETE FROM randomization_allocations WHERE id = '00000000-0000-4000-8000-00000000aaaa'`]);
    expect(await audit()).toEqual([]);
  });

  it("the audit names an arm changed after commitment, with its stratum and seq", async () => {
    const [s] = await rows(
      `SELECT sl.id, sl.arm, sl.kit_type FROM randomization_slots sl
       JOIN randomization_strata st ON st.id = sl.stratum_id
       WHERE st.key = 'site=S1;sex=M' AND sl.seq = 7 AND sl.study_id = (SELECT id FROM studies WHERE code = 'RND-1')`,
    );
    const [arm, kit] = s.arm === "ZOLVATREX" ? ["PLACEBOQ", "KIT-PLACQ"] : ["ZOLVATREX", "KIT-ZOLVA"];
    await tamper([`UPDATE randomization_slots SET arm = '${arm}', kit_type = '${kit}' WHERE id = '${s.id}'`]);
    const f = tamperFindings(await runIntegrityAudit(t.ctx, { study: "RND-1" }));
    const altered = f.filter((x) => x.code === "SLOT_ALTERED");
    expect(altered.map((x) => x.message).join("\n")).toContain("stratum site=S1;sex=M slot seq 7");
    expect(altered.map((x) => x.message).join("\n")).toContain("no longer hash to the root sealed at commitment");
    expect(JSON.stringify(f)).not.toMatch(SECRET);
    // Even with its stored leaf rewritten to match, the root sealed at commitment names it.
    await tamper([`UPDATE randomization_slots SET arm = '${s.arm}', kit_type = '${s.kit_type}' WHERE id = '${s.id}'`]);
    expect(tamperFindings(await runIntegrityAudit(t.ctx, { study: "RND-1" }))).toEqual([]);
  });

  it("the audit names a reused slot and a skipped slot in the log, with stratum and seq", async () => {
    const { subjects } = await setupStudy("RND-S", 3, { factors: false, slots: 8, staff: LIST_STAFF });
    const study = await getStudyOrThrow(t.ctx, "RND-S");
    await randomizeParticipant(t.ctx, await principal("coord@rnd-s.test"), "RND-S", subjects[0], { factors: {} });
    const [list] = await rows(`SELECT id FROM randomization_lists WHERE study_id = '${study.id}'`);
    const slotLeaf = async (seq: number) =>
      (
        await rows(
          `SELECT encode(sl.leaf, 'hex') AS leaf FROM randomization_slots sl
           WHERE sl.study_id = '${study.id}' AND seq = ${seq}`,
        )
      )[0].leaf as string;
    // A second entry for seq 0 (as a portal that counted outside the lock would write), then one for seq 3.
    const leaves = [await slotLeaf(0), await slotLeaf(3)];
    await t.ctx.db.transaction(async (tx) => {
      for (const [seq, subject, leaf] of [
        [0, subjects[1], leaves[0]],
        [3, subjects[2], leaves[1]],
      ] as const)
        await appendEntry(tx, t.ctx.crypto, study, "randomization.allocated", {
          allocation: crypto.randomUUID(),
          list: String(list.id),
          subject,
          stratum: "site=S1",
          seq,
          number: `R01-${String(seq + 1).padStart(4, "0")}`,
          leaf,
          actor: null,
        });
    });
    const f = tamperFindings(await runIntegrityAudit(t.ctx, { study: "RND-S" }));
    const named = f.map((x) => `${x.code}: ${x.message}`).join("\n");
    expect(named).toMatch(/SLOT_REUSED: stratum site=S1 slot seq 0 is allocated twice/);
    expect(named).toMatch(/SLOT_SKIPPED: stratum site=S1: slot seq 1 to 2 skipped/);
  });

  it("the demo's randomization commits a list and randomizes the consented participants, once", async () => {
    const { p, subjects } = await setupStudy("RND-D", 3, { commit: false, staff: LIST_STAFF });
    const unconsented = await enrollParticipant(t.ctx, p.inv, { study: "RND-D", site: "S1" });
    const first = await seedDemoRandomization(t.ctx, p.stat, p.coord, "RND-D");
    expect(first.randomized.map((r) => r.subject)).toEqual(subjects);
    expect(first.randomized.map((r) => r.subject)).not.toContain(unconsented.subjectCode);
    const again = await seedDemoRandomization(t.ctx, p.stat, p.coord, "RND-D");
    expect(again).toEqual({ listId: first.listId, randomized: [] });
    expect(tamperFindings(await runIntegrityAudit(t.ctx, { study: "RND-D" }))).toEqual([]);
  });

  async function principal(email: string): Promise<Principal> {
    const { principalForUser } = await import("../../app/accounts/auth.server.ts");
    const [u] = await rows(`SELECT id FROM users WHERE email = '${email}'`);
    return (await principalForUser(t.ctx, String(u.id)))!;
  }
  async function dataManager(study: string): Promise<Principal> {
    const email = `dm@${study.toLowerCase()}.test`;
    const [u] = await rows(`SELECT id FROM users WHERE email = '${email}'`);
    if (!u) await createStaff(t.ctx, study, `${study.toLowerCase()}.test`, [["dm", "data_manager"]]);
    return principal(email);
  }
  async function siteId(study: string, site: string): Promise<string> {
    const [s] = await rows(
      `SELECT s.id FROM sites s JOIN studies st ON st.id = s.study_id
       WHERE st.code = '${study}' AND s.code = '${site}'`,
    );
    return String(s.id);
  }
});
