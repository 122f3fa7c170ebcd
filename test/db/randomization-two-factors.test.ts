/**
 * Randomization stratified by site and two factors (issue 20: "stratified by site and by up to two factors", ADR 0051
 * and 0052) on PGlite and PostgreSQL: a list generated for two sites x sex x age group (8 strata) and committed; the
 * commitment seals each stratum's key, Merkle root and size (recomputed here from the slot rows); participants with
 * different factor values each take the next slot of their own stratum (site x factor 1 x factor 2), proven by an
 * inclusion proof against the committed root; a full stratum refuses while the others go on; an upload of the same
 * design has the same strata; and a third factor is refused (in the design, in an upload's columns, at randomization).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fromHex, toHex } from "../../anchoring/log/bytes.ts";
import { inclusionProof, rootOf, verifyInclusion } from "../../anchoring/log/merkle.ts";
import { slotLeafHash } from "../../anchoring/randomization/slots.ts";
import { type AuditReport, runIntegrityAudit } from "../../app/integrity-audit/integrity-audit.server.ts";
import { enrollParticipant } from "../../app/participants/participants.server.ts";
import type { Principal } from "../../app/platform/permissions.server.ts";
import {
  commitList,
  createGeneratedList,
  createUploadedList,
  previewList,
} from "../../app/randomization/lists.server.ts";
import { randomizationOverview } from "../../app/randomization/randomization-view.server.ts";
import { randomizeParticipant } from "../../app/randomization/randomize.server.ts";
import { createStudy, getStudyOrThrow } from "../../app/studies/studies.server.ts";
import { giveCompleteConsent } from "../helpers/consent.ts";
import { engineUnderTest, openTestDatabase, type TestDb } from "../helpers/db.ts";
import { createStaff } from "../helpers/study-staff.ts";

let t: TestDb;
let p: Record<string, Principal>;
let studyId: string;
const STUDY = "RND-2F";
const SLOTS = 3;
const rows = async (q: string) => (await t.database.execute(q)) as Record<string, unknown>[];
const tamperFindings = (r: AuditReport) => r.findings.filter((f) => f.severity === "tamper");

const SEX = { name: "sex", label: "Sex at birth", levels: ["F", "M"] };
const AGE = { name: "age", label: "Age group", levels: ["U65", "O65"] };
const design = (factors: unknown[] = [SEX, AGE]) => ({
  v: 1,
  arms: [
    { code: "ZOLVATREX", name: "Zolvatrex 10 mg", ratio: 1 },
    { code: "PLACEBOQ", name: "Placebo", ratio: 1 },
  ],
  blockSizes: [2, 4],
  factors,
  sites: ["S1", "S2"],
  slotsPerStratum: SLOTS,
  kitTypes: { "KIT-ZOLVA": "ZOLVATREX", "KIT-PLACQ": "PLACEBOQ" },
});
const SECRET = /ZOLVATREX|PLACEBOQ|KIT-ZOLVA|KIT-PLACQ/;

/** The strata in their documented order (ADR 0051): sites in the design's order, then sex, then age (first slowest). */
const KEYS = ["S1", "S2"].flatMap((site) =>
  ["F", "M"].flatMap((sex) => ["U65", "O65"].map((age) => `site=${site};sex=${sex};age=${age}`)),
);

/** Who is randomized, in this order: site, sex, age group (strata filled unevenly, sites interleaved). */
const PLAN = [
  ["S1", "F", "U65"],
  ["S2", "M", "U65"],
  ["S1", "M", "O65"],
  ["S1", "F", "U65"],
  ["S2", "F", "O65"],
  ["S1", "F", "O65"],
  ["S1", "M", "O65"],
  ["S2", "M", "U65"],
  ["S1", "F", "U65"],
] as const;

let listId: string;
let commitEntryId: string;
const subjects: string[] = [];

beforeAll(async () => {
  t = await openTestDatabase();
  await createStudy(
    t.ctx,
    {
      code: STUDY,
      title: "Randomization by site and two factors",
      sites: [
        { code: "S1", name: "One" },
        { code: "S2", name: "Two" },
      ],
    },
    null,
  );
  studyId = (await getStudyOrThrow(t.ctx, STUDY)).id;
  p = (
    await createStaff(t.ctx, STUDY, "rnd2f.test", [
      ["stat", "unblinded_statistician"],
      ["inv", "investigator", "S1"],
      ["inv2", "investigator", "S2"],
    ])
  ).principals;
  // The plan's participants and two more at S1 (one for a full stratum, one for the refusals).
  for (const site of [...PLAN.map(([s]) => s), "S1", "S1"]) {
    const e = await enrollParticipant(t.ctx, site === "S1" ? p.inv : p.inv2, { study: STUDY, site });
    await giveCompleteConsent(t.ctx, STUDY, e.subjectCode);
    subjects.push(e.subjectCode);
  }
}, 120_000);
afterAll(async () => {
  await t?.close();
});

describe(`randomization by site and two factors on ${engineUnderTest()}`, () => {
  it("refuses a design with a third stratification factor, naming the factors", async () => {
    const third = { name: "smoker", label: "Smoker", levels: ["Y", "N"] };
    const err = await createGeneratedList(t.ctx, p.stat, STUDY, { design: design([SEX, AGE, third]) }).catch((x) => x);
    expect(err).toMatchObject({ code: "invalid", field: "design.factors" });
    expect(err.message).toBe("stratification factors: at most two besides the site (remove Smoker)");
    // Nothing was drafted.
    const [{ n }] = await rows(`SELECT count(*)::int AS n FROM randomization_lists WHERE study_id = '${studyId}'`);
    expect(Number(n)).toBe(0);
    // An upload with a column for a third factor is refused naming that column.
    const csv = ["site,sex,age,smoker,sequence,arm,kit_type", "S1,F,U65,Y,1,ZOLVATREX,KIT-ZOLVA"].join("\n");
    await expect(createUploadedList(t.ctx, p.stat, STUDY, { design: design(), csvText: csv })).rejects.toMatchObject({
      code: "invalid",
      field: "csv",
      message: "list file: line 1: unknown column smoker",
    });
  });

  it("an uploaded list of the design has the same 8 strata, site x sex x age group", async () => {
    const lines = ["site,sex,age,sequence,arm,kit_type"];
    for (const key of KEYS) {
      const [site, sex, age] = key.split(";").map((x) => x.split("=")[1]);
      for (let i = 1; i <= SLOTS; i++)
        lines.push(`${site},${sex},${age},${i},${i % 2 ? "ZOLVATREX,KIT-ZOLVA" : "PLACEBOQ,KIT-PLACQ"}`);
    }
    const up = await createUploadedList(t.ctx, p.stat, STUDY, { design: design(), csvText: lines.join("\n") });
    const pv = await previewList(t.ctx, p.stat, STUDY, up.listId);
    expect(pv.source).toBe("uploaded");
    expect(pv.strata.map((s) => [s.key, s.size])).toEqual(KEYS.map((k) => [k, SLOTS]));
    expect(pv.strata[0].arms).toEqual({ ZOLVATREX: 2, PLACEBOQ: 1 });
  });

  it("generates and commits a list of 8 strata; the commitment seals each stratum's root and size", async () => {
    ({ listId } = await createGeneratedList(t.ctx, p.stat, STUDY, { design: design() }));
    const pv = await previewList(t.ctx, p.stat, STUDY, listId);
    expect(pv.strata.map((s) => s.key)).toEqual(KEYS);
    for (const s of pv.strata) {
      expect(s.size).toBe(SLOTS);
      expect(Object.values(s.arms).reduce((a, b) => a + b, 0)).toBe(SLOTS);
    }
    commitEntryId = (await commitList(t.ctx, p.stat, STUDY, listId)).entryId;
    const [e] = await rows(`SELECT kind, payload_text FROM ledger_entries WHERE id = '${commitEntryId}'`);
    expect(e.kind).toBe("randomization.committed");
    expect(String(e.payload_text)).not.toMatch(SECRET);
    const payload = JSON.parse(String(e.payload_text)) as {
      list: string;
      strata: { key: string; root: string; size: number }[];
    };
    expect(payload.list).toBe(listId);
    expect(payload.strata.map((s) => s.key)).toEqual(KEYS);
    const strata = await rows(
      `SELECT id, key, position, size, encode(root, 'hex') AS root FROM randomization_strata
        WHERE list_id = '${listId}' ORDER BY position`,
    );
    expect(strata.map((s) => [s.key, s.position])).toEqual(KEYS.map((k, i) => [k, i + 1]));
    for (const [i, s] of strata.entries()) {
      // Each stratum's root recomputed from its slot rows (leaf i = slot i, each leaf the hash of its five fields).
      const slots = await rows(
        `SELECT seq, arm, kit_type, salt, encode(leaf, 'hex') AS leaf FROM randomization_slots
          WHERE stratum_id = '${s.id}' ORDER BY seq`,
      );
      expect(slots.map((x) => x.seq)).toEqual([...Array(SLOTS).keys()]);
      for (const x of slots)
        expect(
          slotLeafHash(t.ctx.crypto, {
            stratum: String(s.key),
            seq: Number(x.seq),
            arm: String(x.arm),
            kitType: String(x.kit_type),
            salt: String(x.salt),
          }),
        ).toBe(x.leaf);
      const root = toHex(
        rootOf(
          t.ctx.crypto,
          slots.map((x) => fromHex(String(x.leaf))),
        ),
      );
      expect(payload.strata[i]).toEqual({ key: s.key, root, size: slots.length });
      expect(s.root).toBe(root);
      expect(Number(s.size)).toBe(SLOTS);
    }
    // Eight distinct roots: every stratum has its own list.
    expect(new Set(payload.strata.map((s) => s.root)).size).toBe(KEYS.length);
  });

  it("each participant takes the next slot of their own stratum (site x sex x age group)", async () => {
    const taken = new Map<string, number>();
    for (const [i, [site, sex, age]] of PLAN.entries()) {
      const key = `site=${site};sex=${sex};age=${age}`;
      const seq = taken.get(key) ?? 0;
      taken.set(key, seq + 1);
      const r = await randomizeParticipant(t.ctx, site === "S1" ? p.inv : p.inv2, STUDY, subjects[i], {
        factors: { sex, age },
      });
      const position = KEYS.indexOf(key) + 1;
      expect(r).toMatchObject({
        stratum: key,
        number: `R${String(position).padStart(2, "0")}-${String(seq + 1).padStart(4, "0")}`,
      });
    }
    const [commit] = await rows(`SELECT payload_text FROM ledger_entries WHERE id = '${commitEntryId}'`);
    const committed = new Map(
      (JSON.parse(String(commit.payload_text)).strata as { key: string; root: string; size: number }[]).map((s) => [
        s.key,
        s,
      ]),
    );
    const alloc = await rows(
      `SELECT pa.subject_code, s.id AS stratum_id, s.key, a.seq, a.number, sl.seq AS slot_seq,
              encode(sl.leaf, 'hex') AS leaf, e.payload_text
         FROM randomization_allocations a
         JOIN randomization_strata s ON s.id = a.stratum_id
         JOIN randomization_slots sl ON sl.id = a.slot_id
         JOIN participants pa ON pa.id = a.participant_id
         JOIN ledger_entries e ON e.id = a.entry_id
        WHERE a.study_id = '${studyId}' ORDER BY s.position, a.seq`,
    );
    expect(alloc).toHaveLength(PLAN.length);
    // Per stratum: the seqs taken are 0..n-1 (none skipped or reused), n the planned participants of that stratum.
    for (const key of KEYS) {
      const mine = alloc.filter((a) => a.key === key);
      expect(
        mine.map((a) => a.seq),
        key,
      ).toEqual([...Array(PLAN.filter(([si, sx, ag]) => key === `site=${si};sex=${sx};age=${ag}`).length).keys()]);
    }
    for (const a of alloc) {
      const idx = subjects.indexOf(String(a.subject_code));
      const [site, sex, age] = PLAN[idx];
      expect(a.key).toBe(`site=${site};sex=${sex};age=${age}`);
      expect(a.slot_seq).toBe(a.seq);
      // The sealed allocation names the stratum, the slot and its leaf; never an arm.
      const payload = JSON.parse(String(a.payload_text));
      expect(payload).toMatchObject({ stratum: a.key, seq: a.seq, number: a.number, leaf: a.leaf, list: listId });
      expect(String(a.payload_text)).not.toMatch(SECRET);
      // The slot taken is the committed one: an inclusion proof from its stratum's leaves leads to the sealed root.
      const c = committed.get(String(a.key));
      const leaves = (
        await rows(
          `SELECT encode(leaf, 'hex') AS leaf FROM randomization_slots WHERE stratum_id = '${a.stratum_id}'
            ORDER BY seq`,
        )
      ).map((x) => fromHex(String(x.leaf)));
      const seq = Number(a.seq);
      expect(c?.size).toBe(leaves.length);
      expect(() =>
        verifyInclusion(
          t.ctx.crypto,
          seq,
          c?.size ?? 0,
          fromHex(String(a.leaf)),
          inclusionProof(t.ctx.crypto, leaves, seq, leaves.length),
          fromHex(c?.root ?? ""),
        ),
      ).not.toThrow();
    }
    const overview = await randomizationOverview(t.ctx, p.inv, STUDY);
    expect(overview.committed?.strata.map((s) => s.allocated)).toEqual(
      KEYS.map((k) => PLAN.filter(([si, sx, ag]) => k === `site=${si};sex=${sx};age=${ag}`).length),
    );
    expect(tamperFindings(await runIntegrityAudit(t.ctx, { study: STUDY }))).toEqual([]);
  });

  it("a full stratum refuses while the others go on; a missing, unknown or third factor is refused", async () => {
    const [full, other] = subjects.slice(PLAN.length);
    const one = (subject: string, factors: Record<string, string>) =>
      randomizeParticipant(t.ctx, p.inv, STUDY, subject, { factors });
    // site=S1;sex=F;age=U65 took all its slots in the plan.
    const fullKey = "site=S1;sex=F;age=U65";
    expect(PLAN.filter(([si, sx, ag]) => si === "S1" && sx === "F" && ag === "U65")).toHaveLength(SLOTS);
    await expect(one(full, { sex: "F", age: "U65" })).rejects.toMatchObject({
      code: "conflict",
      field: "factors",
      message: `stratum ${fullKey} has no slot left (all ${SLOTS} are taken); ask the unblinded statistician`,
    });
    // Same site and sex, the other age group: its own stratum's first slot.
    await expect(one(full, { sex: "F", age: "O65" })).resolves.toMatchObject({
      stratum: "site=S1;sex=F;age=O65",
      number: "R02-0002",
    });
    await expect(one(other, { sex: "M" })).rejects.toMatchObject({
      code: "invalid",
      field: "factors.age",
      message: "Age group: choose one of U65, O65",
    });
    await expect(one(other, { sex: "M", age: "65+" })).rejects.toMatchObject({
      field: "factors.age",
      message: 'Age group: "65+" is not one of U65, O65',
    });
    const third = await one(other, { sex: "M", age: "U65", smoker: "Y" }).catch((x) => x);
    expect(third).toMatchObject({
      code: "invalid",
      field: "factors.smoker",
      message: "smoker is not a stratification factor of this study",
    });
    // None of the refusals took a slot: the participant still gets their stratum's first.
    await expect(one(other, { sex: "M", age: "U65" })).resolves.toMatchObject({
      stratum: "site=S1;sex=M;age=U65",
      number: "R03-0001",
    });
    const [{ n }] = await rows(
      `SELECT count(*)::int AS n FROM randomization_allocations WHERE study_id = '${studyId}'`,
    );
    expect(Number(n)).toBe(PLAN.length + 2);
  });
});
