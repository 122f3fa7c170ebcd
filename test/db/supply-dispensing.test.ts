/**
 * Dispensing by allocation (issue 21, ADR 0059) on PGlite and PostgreSQL: each participant is assigned a kit drawn at
 * random among their site's kits of their allocated type, never one another participant holds, and only that kit can
 * be dispensed to them; an expired, quarantined, recalled, wrong-site, at-depot, not-received, already dispensed or
 * not-assigned kit is refused with the reason (the site first), nothing written and the attempt audited; the kit type
 * is checked as well (defence in depth); a participant not randomized is refused; a blinded pharmacist never reads a
 * kit type or arm; under a database lock assignments, dispensing and returns are refused; two dispensings of one kit
 * at once on PostgreSQL: one wins.
 */
import { sql } from "drizzle-orm";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { lockDatabase } from "../../app/database-lock/database-lock.server.ts";
import {
  assignKit,
  dispenseKit,
  participantSupply,
  proposeKit,
  randomizedSubjects,
  returnKit,
} from "../../app/drug-supply/dispensing.server.ts";
import { siteInventory } from "../../app/drug-supply/inventory.server.ts";
import { kitFacts } from "../../app/drug-supply/kit-facts.server.ts";
import { registerKits, registerLot, releaseLot } from "../../app/drug-supply/lots.server.ts";
import { recallLot } from "../../app/drug-supply/recall.server.ts";
import { receiveShipment, sendShipment } from "../../app/drug-supply/shipments.server.ts";
import { enrollParticipant } from "../../app/participants/participants.server.ts";
import { contextFor } from "../../app/platform/context.server.ts";
import { ServiceError } from "../../app/platform/errors.server.ts";
import { openDatabase } from "../../db/client.ts";
import { engineUnderTest, openTestDatabase, type TestDb } from "../helpers/db.ts";
import { testEnv } from "../helpers/env.ts";
import { createStaff, STAFF_PASSWORD } from "../helpers/study-staff.ts";
import { SUPPLY_SECRET, type SupplyStudy, supplyStudy } from "../helpers/supply-study.ts";
import { waitFor } from "../helpers/wait.ts";

const STUDY = "DISP-1";
let t: TestDb;
let s: SupplyStudy;
/** Kit numbers by lot, in registration order. */
let kits: Record<string, string[]>;
const rows = async (q: string) => (await t.database.execute(q)) as Record<string, unknown>[];
const count = async (q: string) => Number((await rows(q))[0].n);
const dispensings = () =>
  count(`SELECT count(*)::int AS n FROM supply_dispensings d JOIN studies s ON s.id = d.study_id
    WHERE s.code = '${STUDY}'`);
const entries = (kind: string) =>
  count(`SELECT count(*)::int AS n FROM ledger_entries WHERE study_code = '${STUDY}' AND kind = '${kind}'`);

async function refusal(p: Promise<unknown>) {
  try {
    await p;
  } catch (err) {
    if (err instanceof ServiceError) return { code: err.code, field: err.field, message: err.message };
    throw err;
  }
  throw new Error("expected a refusal");
}

const pdf = { fileName: "coa.pdf", bytes: new Uint8Array(Buffer.from("%PDF-1.4\n% coa\n")) };
const lotInput = (lotNumber: string, kitType: string, expiresOn = "2030-12-31") => ({
  product: "BP-101 10 mg tablets or placebo",
  lotNumber,
  kitType,
  manufacturedOn: "2026-01-10",
  expiresOn,
  storageMinC: "2",
  storageMaxC: "8",
  dailyUnits: 2,
});

/**
 * The supply of the study through the lot and shipment services: lots LZ (KIT-ZOLVA) and LP (KIT-PLACQ) of 8 kits,
 * LE (KIT-ZOLVA, earlier expiry) of 1, LR (recalled later) and LX (expired later) of 2, all released. Shipped:
 * to S1 received LZ/LP[0..3], LE, LR, LX; to S1 with an excursion LZ/LP[4]; to S1 not received LZ/LP[5]; to S2
 * received LZ/LP[6]; LZ/LP[7] stay at the depot.
 */
async function buildSupply(): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  const lots: [string, string, string, number][] = [
    ["LZ", "KIT-ZOLVA", "2030-12-31", 8],
    ["LP", "KIT-PLACQ", "2030-12-31", 8],
    ["LE", "KIT-ZOLVA", "2029-06-30", 1],
    ["LR", "KIT-ZOLVA", "2030-12-31", 2],
    ["LX", "KIT-PLACQ", "2030-12-31", 2],
  ];
  for (const [lot, type, expires, n] of lots) {
    await registerLot(t.ctx, s.p.depot, STUDY, lotInput(lot, type, expires), pdf);
    await releaseLot(t.ctx, s.p.admin, STUDY, lot);
    out[lot] = (await registerKits(t.ctx, s.p.depot, STUDY, { lotNumber: lot, count: n, units: 30 })).kits.map(
      (k) => k.number,
    );
  }
  const ship = async (site: string, numbers: string[], receive: "ok" | "excursion" | "no") => {
    const sent = await sendShipment(t.ctx, s.p.depot, STUDY, { site, depot: "DEPOT-EU", kits: numbers });
    const by = site === "S1" ? s.p.pharm : s.p.pharm2;
    if (receive !== "no")
      await receiveShipment(t.ctx, by, STUDY, sent.number, {
        temperatureMinC: "4",
        temperatureMaxC: "6",
        excursion: receive === "excursion",
      });
  };
  const pick = (i: number) => [out.LZ[i], out.LP[i]];
  await ship("S1", [...[0, 1, 2, 3].flatMap(pick), ...out.LE, ...out.LR, ...out.LX], "ok");
  await ship("S1", pick(4), "excursion");
  await ship("S1", pick(5), "no");
  await ship("S2", pick(6), "ok");
  await recallLot(t.ctx, s.p.admin, STUDY, { lotNumber: "LR", reason: "Stability failure at 12 months" });
  // LX expired after it was received (the test cannot wait for a date): its expiry moved into the past.
  await t.ctx.db.transaction(async (tx) => {
    await tx.execute(sql.raw("SET LOCAL session_replication_role = replica"));
    await tx.execute(
      sql`UPDATE supply_lots SET expires_on = '2026-02-01' WHERE lot_number = 'LX'
        AND study_id = (SELECT id FROM studies WHERE code = ${STUDY})`,
    );
  });
  return out;
}

/** The lot of the kits of `subject`'s allocated type (LZ or LP), and of the other type. */
const own = (subject: string) => (s.kitTypeOf[subject] === "KIT-ZOLVA" ? "LZ" : "LP");
const other = (subject: string) => (own(subject) === "LZ" ? "LP" : "LZ");

beforeAll(async () => {
  t = await openTestDatabase();
  s = await supplyStudy(t.ctx, STUDY, { participants: 6 });
  kits = await buildSupply();
});

afterAll(async () => {
  await t?.close();
});

describe(`dispensing by allocation on ${engineUnderTest()}`, () => {
  it("assigns each participant a kit of their type on hand at their site, never one another holds", async () => {
    expect(await randomizedSubjects(t.ctx, s.p.pharm, STUDY, "S1")).toEqual([...s.subjects].sort());
    const mineOf = (x: string) => [...kits[own(x)].slice(0, 4), ...(own(x) === "LZ" ? kits.LE : [])];
    expect(await proposeKit(t.ctx, s.p.pharm, STUDY, s.subjects[0])).toEqual({
      kit: null,
      why: `no kit is assigned to ${s.subjects[0]} yet: assign one`,
    });
    const given: Record<string, { assignmentId: string; kit: string }> = {};
    for (const x of s.subjects) given[x] = await assignKit(t.ctx, s.p.pharm, STUDY, x);
    const numbers = Object.values(given).map((g) => g.kit);
    expect(new Set(numbers).size).toBe(s.subjects.length);
    for (const x of s.subjects) {
      expect(mineOf(x), x).toContain(given[x].kit);
      // Asked again (or read): the same assignment, no new row.
      expect(await assignKit(t.ctx, s.p.pharm, STUDY, x)).toEqual(given[x]);
      expect(await proposeKit(t.ctx, s.p.pharm, STUDY, x)).toEqual({ kit: given[x].kit });
    }
    expect(await entries("supply.kit_assigned")).toBe(s.subjects.length);
    const [row] = await rows(
      `SELECT e.payload_text, a.actor_user_id FROM supply_kit_assignments a JOIN ledger_entries e ON e.id = a.entry_id
        WHERE a.id = '${given[s.subjects[0]].assignmentId}'`,
    );
    expect(JSON.parse(String(row.payload_text))).toMatchObject({
      number: given[s.subjects[0]].kit,
      subject: s.subjects[0],
      site: "S1",
      actor: s.userIds.pharm,
    });
    expect(JSON.stringify([given, row])).not.toMatch(SUPPLY_SECRET);
    // Dispensed: the next assignment of that participant is a new kit.
    const first = s.subjects[0];
    await dispenseKit(t.ctx, s.p.pharm, STUDY, first, { kit: given[first].kit });
    expect(await proposeKit(t.ctx, s.p.pharm, STUDY, first)).toMatchObject({ kit: null });
    // A pharmacist of the other site does not see the participant at all.
    expect(await refusal(assignKit(t.ctx, s.p.pharm2, STUDY, first))).toMatchObject({ code: "not_found" });
  });

  it("refuses a wrong kit with the reason, writing nothing, and audits the attempt", async () => {
    const subject = s.subjects[1];
    const mine = own(subject);
    const facts = await kitFacts(t.ctx.db, null, { numbers: [...kits.LZ, ...kits.LP, ...kits.LE] });
    const open = new Set(
      (await rows(`SELECT k.number FROM supply_kit_assignments a JOIN supply_kits k ON k.id = a.kit_id`)).map((r) =>
        String(r.number),
      ),
    );
    const onHand = (lot: string) => kits[lot].slice(0, 4).filter((k) => !facts.find((f) => f.number === k)?.dispensed);
    /** An on-hand kit of `lot` no one is assigned, and one another participant is assigned. */
    const free = (lot: string) => onHand(lot).find((k) => !open.has(k)) ?? onHand(lot)[0];
    const held = () => [...open].find((k) => k !== proposed && !facts.find((f) => f.number === k)?.dispensed)!;
    const proposed = (await proposeKit(t.ctx, s.p.pharm, STUDY, subject)).kit;
    const dispensed = (await rows(
      `SELECT k.number FROM supply_dispensings d JOIN supply_kits k ON k.id = d.kit_id LIMIT 1`,
    )) as { number: string }[];
    const cases: [string, string, RegExp][] = [
      ["expired", kits.LX[0], /expired on 2026-02-01/],
      ["quarantined", kits[mine][4], /is quarantined after a temperature excursion/],
      ["recalled", kits.LR[0], /is recalled: it must not be dispensed/],
      ["wrong site", kits[mine][6], /belongs to another site, not to S1/],
      ["wrong type", free(other(subject)), /is not the kit assigned to S1-\d+ \(kit \d+\): dispense kit \d+/],
      ["another's", held(), /is not the kit assigned to S1-\d+ \(kit \d+\): dispense kit \d+/],
      ["at the depot", kits[mine][7], /is at the depot, not at site S1/],
      ["not received", kits[mine][5], /has not been received at site S1 yet/],
      ["already dispensed", dispensed[0].number, /has already been dispensed \(to S1-/],
    ];
    const before = {
      rows: await dispensings(),
      entries: await entries("supply.kit_dispensed"),
      refused: await count(`SELECT count(*)::int AS n FROM audit_events WHERE action = 'supply.dispense_refused'`),
    };
    for (const [what, kit, reason] of cases) {
      const r = await refusal(dispenseKit(t.ctx, s.p.pharm, STUDY, subject, { kit }));
      expect(r, what).toMatchObject({ code: "conflict", field: "kit", message: expect.stringMatching(reason) });
      expect(r.message, what).toContain(`kit ${kit}`);
      expect(r.message, what).not.toMatch(SUPPLY_SECRET);
    }
    expect(await dispensings()).toBe(before.rows);
    expect(await entries("supply.kit_dispensed")).toBe(before.entries);
    // Every refused attempt is in the audit trail with its reason (probing shows), never a kit type.
    const refused = await rows(
      `SELECT detail, outcome FROM audit_events WHERE action = 'supply.dispense_refused' ORDER BY at, id`,
    );
    expect(refused.length - before.refused).toBe(cases.length);
    expect(refused.at(-1)).toMatchObject({ outcome: "failure" });
    expect(JSON.stringify(refused.at(-1)?.detail)).toContain(`"subject":"${subject}"`);
    expect(JSON.stringify(refused)).not.toMatch(SUPPLY_SECRET);
    // Defence in depth: an assignment row pointed at a kit of the other type still does not dispense it.
    const assigned = (await proposeKit(t.ctx, s.p.pharm, STUDY, subject)).kit!;
    const wrong = free(other(subject));
    const move = (to: string, from: string) =>
      t.ctx.db.transaction(async (tx) => {
        await tx.execute(sql.raw("SET LOCAL session_replication_role = replica"));
        await tx.execute(
          sql`UPDATE supply_kit_assignments SET kit_id = (SELECT id FROM supply_kits WHERE number = ${to})
            WHERE kit_id = (SELECT id FROM supply_kits WHERE number = ${from})`,
        );
      });
    await move(wrong, assigned);
    try {
      expect(await refusal(dispenseKit(t.ctx, s.p.pharm, STUDY, subject, { kit: wrong }))).toMatchObject({
        code: "conflict",
        message: expect.stringMatching(/does not match this participant's allocation/),
      });
    } finally {
      await move(assigned, wrong);
    }
    expect(await dispensings()).toBe(before.rows);
    // Bad input named by its field.
    expect(await refusal(dispenseKit(t.ctx, s.p.pharm, STUDY, subject, { kit: "abc!" }))).toMatchObject({
      code: "invalid",
      field: "kit",
    });
    expect(await refusal(dispenseKit(t.ctx, s.p.pharm, STUDY, subject, { kit: "000000X" }))).toMatchObject({
      code: "not_found",
      field: "kit",
    });
    expect(
      await refusal(dispenseKit(t.ctx, s.p.pharm, STUDY, subject, { kit: kits[mine][0], visit: "NOPE" })),
    ).toMatchObject({ code: "invalid", field: "visit" });
    // Not permitted: a coordinator receives and returns, but does not dispense.
    expect(await refusal(dispenseKit(t.ctx, s.p.coord, STUDY, subject, { kit: kits[mine][0] }))).toMatchObject({
      code: "forbidden",
    });
  });

  it("refuses a participant who is not randomized", async () => {
    const e = await enrollParticipant(t.ctx, s.p.inv, { study: STUDY, site: "S1" });
    const before = await dispensings();
    const r = await refusal(dispenseKit(t.ctx, s.p.pharm, STUDY, e.subjectCode, { kit: kits.LZ[0] }));
    expect(r).toMatchObject({
      code: "conflict",
      field: "subject",
      message: expect.stringMatching(/not randomized yet/),
    });
    expect(await proposeKit(t.ctx, s.p.pharm, STUDY, e.subjectCode)).toEqual({
      kit: null,
      why: `${e.subjectCode} is not randomized yet`,
    });
    expect(await refusal(assignKit(t.ctx, s.p.pharm, STUDY, e.subjectCode))).toMatchObject({
      code: "conflict",
      field: "subject",
      message: expect.stringMatching(/not randomized yet/),
    });
    expect(await dispensings()).toBe(before);
  });

  it("dispenses the proposed kit, sealed and audited; a blinded pharmacist never reads a kit type", async () => {
    const subject = s.subjects[2];
    const seen: unknown[] = [];
    const proposal = await proposeKit(t.ctx, s.p.pharm, STUDY, subject);
    seen.push(proposal);
    const r = await dispenseKit(t.ctx, s.p.pharm, STUDY, subject, { kit: ` ${proposal.kit} ` });
    seen.push(r);
    expect(r.kit).toBe(proposal.kit);
    const [row] = await rows(
      `SELECT e.kind, e.payload_text, d.actor_user_id, d.visit FROM supply_dispensings d
        JOIN ledger_entries e ON e.id = d.entry_id WHERE d.id = '${r.dispensingId}'`,
    );
    const payload = JSON.parse(String(row.payload_text));
    expect(payload).toMatchObject({ number: r.kit, subject, site: "S1", visit: null, actor: s.userIds.pharm });
    expect(String(row.payload_text)).not.toMatch(SUPPLY_SECRET);
    expect(row.actor_user_id).toBe(s.userIds.pharm);
    const [ev] = await rows(
      `SELECT detail FROM audit_events WHERE action = 'supply.kit_dispensed'
        AND detail::text LIKE '%${r.dispensingId}%'`,
    );
    expect(JSON.stringify(ev.detail)).not.toMatch(SUPPLY_SECRET);
    // What the blinded pharmacist reads: inventory, the participant's kits, refusals.
    const inv = await siteInventory(t.ctx, s.p.pharm, STUDY, "S1");
    expect(inv.showKitTypes).toBe(false);
    expect(inv.kits.find((k) => k.number === r.kit)).toMatchObject({ state: "dispensed", subject });
    seen.push(inv, await participantSupply(t.ctx, s.p.pharm, STUDY, subject));
    for (const subj of s.subjects) seen.push(await proposeKit(t.ctx, s.p.pharm, STUDY, subj));
    for (const kit of [kits[other(subject)][1], kits[own(subject)][6], kits.LX[0], kits.LR[1]])
      seen.push(await refusal(dispenseKit(t.ctx, s.p.pharm, STUDY, subject, { kit })));
    expect(JSON.stringify(seen)).not.toMatch(SUPPLY_SECRET);
    // The unblinded pharmacist of the site sees the kit types (the needle is really there to find).
    const uinv = await siteInventory(t.ctx, s.p.upharm, STUDY, "S1");
    expect(uinv.showKitTypes).toBe(true);
    expect(JSON.stringify(uinv)).toMatch(SUPPLY_SECRET);
  });

  it("the pharmacy pages' data and a refused dispensing hold no kit type for the blinded pharmacist", async () => {
    const { login } = await import("../../app/accounts/auth.server.ts");
    const { sessionCookie } = await import("../../app/platform/session.server.ts");
    const pharmacy = await import("../../app/routes/studies/studies.$code.supply_.pharmacy.tsx");
    const destructions = await import("../../app/routes/studies/studies.$code.supply_.destructions.tsx");
    const reconciliation = await import("../../app/routes/studies/studies.$code.supply_.reconciliation.tsx");
    const signedIn = await login(t.ctx, `pharm@${STUDY.toLowerCase()}.test`, STAFF_PASSWORD, {
      ip: null,
      userAgent: null,
    });
    const headers = { cookie: await sessionCookie(t.ctx).serialize(signedIn.token) };
    const call = async (fn: (a: never) => Promise<Response>, path: string, body?: Record<string, string>) => {
      const request = new Request(`http://portal.test/studies/${STUDY}/supply/${path}`, {
        method: body ? "POST" : "GET",
        headers,
        ...(body ? { body: new URLSearchParams(body) } : {}),
      });
      return fn({ request, context: { ctx: t.ctx }, params: { code: STUDY } } as never);
    };
    const subject = s.subjects[1];
    const page = await call(pharmacy.loader as never, `pharmacy?subject=${subject}`);
    const data = (await page.json()) as { proposal: { kit: string }; inventory: { kits: unknown[] } };
    expect([...kits[own(subject)], ...kits.LE]).toContain(data.proposal.kit);
    expect(data.inventory.kits.length).toBeGreaterThan(0);
    const notAssigned = (await siteInventory(t.ctx, s.p.pharm, STUDY, "S1")).kits.find(
      (k) => k.dispensable && k.number !== data.proposal.kit,
    )!.number;
    const refused = await call(pharmacy.action as never, "pharmacy", {
      intent: "dispense",
      subject,
      kit: notAssigned,
    });
    expect(refused.status).toBe(409);
    const body = (await refused.json()) as { field: string; error: string };
    expect(body).toMatchObject({ field: "kit", error: expect.stringMatching(/is not the kit assigned to/) });
    // The "Assign a kit" button: the first participant (dispensed) gets a new kit, shown on the page.
    const first = s.subjects[0];
    const assigned = await call(pharmacy.action as never, `pharmacy?subject=${first}`, {
      intent: "assign",
      subject: first,
    });
    const said = (await assigned.json()) as { message: string };
    const shown = (await (await call(pharmacy.loader as never, `pharmacy?subject=${first}`)).json()) as typeof data;
    expect(said.message).toBe(`Kit ${shown.proposal.kit} is assigned to ${first}: take it from the shelf and scan it.`);
    const texts = [
      JSON.stringify(data),
      JSON.stringify(body),
      await (await call(destructions.loader as never, "destructions")).text(),
      await (await call(reconciliation.loader as never, "reconciliation")).text(),
    ];
    for (const text of texts) expect(text).not.toMatch(SUPPLY_SECRET);
  });

  // PostgreSQL only: PGlite has a single connection, so two transactions there can never overlap.
  it.skipIf(engineUnderTest() === "pglite")(
    "two pharmacists dispensing one kit at once on two connections: one wins, the other is told (PostgreSQL only)",
    async () => {
      const subjects = s.subjects.filter((x) => own(x) === own(s.subjects[3]));
      const { kit } = await assignKit(t.ctx, s.p.pharm, STUDY, subjects[0]);
      const second = await openDatabase({ url: t.url!, poolSize: 2 });
      const ctx2 = contextFor({ ...testEnv(), databaseUrl: t.url! }, second);
      const holder = postgres(t.url!, { max: 1, onnotice: () => {} });
      try {
        // A third connection holds the kit's row, so both dispensings are inside their transactions at once.
        const reserved = await holder.reserve();
        await reserved`BEGIN`;
        await reserved`SELECT id FROM supply_kits WHERE number = ${kit} FOR UPDATE`;
        const before = await dispensings();
        const waiting = async () =>
          (
            await reserved`SELECT count(*)::int AS n FROM pg_stat_activity
              WHERE datname = current_database() AND cardinality(pg_blocking_pids(pid)) > 0`
          )[0].n;
        const settled = <T>(p: Promise<T>) =>
          p.then(
            (value) => ({ status: "fulfilled" as const, value }),
            (reason: unknown) => ({ status: "rejected" as const, reason }),
          );
        // The first waits on the holder before the second starts, so the second queues behind the first on the row
        // (started together, the second could reach the row first and be refused as another participant's kit).
        let both: Promise<({ status: "fulfilled"; value: unknown } | { status: "rejected"; reason: unknown })[]>;
        try {
          const first = settled(dispenseKit(t.ctx, s.p.pharm, STUDY, subjects[0], { kit }));
          await waitFor(async () => (await waiting()) === 1, { what: "the first dispensing waiting on the kit's row" });
          const second = settled(dispenseKit(ctx2, s.p.upharm, STUDY, subjects.at(-1)!, { kit }));
          both = Promise.all([first, second]);
          await waitFor(async () => (await waiting()) === 2, { what: "both dispensings waiting on the kit's row" });
        } finally {
          await reserved`COMMIT`;
          reserved.release();
        }
        const out = await both;
        const won = out.filter((o) => o.status === "fulfilled");
        const lost = out.filter((o) => o.status === "rejected");
        expect(won).toHaveLength(1);
        expect(lost).toHaveLength(1);
        expect(lost[0].reason).toMatchObject({
          code: "conflict",
          field: "kit",
          message: expect.stringMatching(new RegExp(`^kit ${kit} has already been dispensed`)),
        });
        expect(await dispensings()).toBe(before + 1);
        expect(
          await count(`SELECT count(*)::int AS n FROM supply_dispensings d JOIN supply_kits k ON k.id = d.kit_id
            WHERE k.number = '${kit}'`),
        ).toBe(1);
      } finally {
        await holder.end();
        await second.close();
      }
    },
  );

  it("under a database lock, assignments, dispensing and returns are refused and nothing is written", async () => {
    const { principals } = await createStaff(t.ctx, STUDY, "disp-lock.test", [["dm", "data_manager"]]);
    const subject = s.subjects[3];
    const kit = (await proposeKit(t.ctx, s.p.pharm, STUDY, subject)).kit ?? kits.LZ[0];
    const [done] = (await rows(
      `SELECT k.number FROM supply_dispensings d JOIN supply_kits k ON k.id = d.kit_id LIMIT 1`,
    )) as { number: string }[];
    await lockDatabase(t.ctx, principals.dm, STUDY, { reason: "final database lock" });
    const before = { d: await dispensings(), r: await entries("supply.kit_returned") };
    expect(await refusal(dispenseKit(t.ctx, s.p.pharm, STUDY, subject, { kit }))).toMatchObject({
      code: "locked",
      message: expect.stringMatching(/^dispensing a kit is refused: the study database is locked/),
    });
    expect(await refusal(assignKit(t.ctx, s.p.pharm, STUDY, s.subjects[0]))).toMatchObject({
      code: "locked",
      message: expect.stringMatching(/^assigning a kit is refused/),
    });
    const today = new Date().toISOString().slice(0, 10);
    expect(
      await refusal(returnKit(t.ctx, s.p.pharm, STUDY, { kit: done.number, unitsReturned: 0, returnedOn: today })),
    ).toMatchObject({ code: "locked", message: expect.stringMatching(/^recording a returned kit is refused/) });
    expect(await dispensings()).toBe(before.d);
    expect(await entries("supply.kit_returned")).toBe(before.r);
  });
});
