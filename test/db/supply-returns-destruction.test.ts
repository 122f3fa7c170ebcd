/**
 * Returns, destruction with a witness, and reconciliation (issue 21, ADR 0064) on PGlite and PostgreSQL: a return's
 * compliance computed and sealed; more units than dispensed, a date before the dispensing or in the future, and a
 * second return refused; a destruction recorded (the method only as its salted hash), refused for usable or
 * dispensed kits, witnessed by another user and never by its recorder; a reconciliation naming missing and
 * unexpected kits, sealed; a blinded pharmacist reads no kit type on the way.
 */
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { saltedTextHash } from "../../anchoring/log/text-hash.ts";
import {
  destructibleKits,
  destructionsView,
  pendingDestructions,
  recordDestruction,
  witnessDestruction,
} from "../../app/drug-supply/destruction.server.ts";
import {
  assignKit,
  compliancePercent,
  dispenseKit,
  participantSupply,
  returnKit,
} from "../../app/drug-supply/dispensing.server.ts";
import { registerKits, registerLot, releaseLot } from "../../app/drug-supply/lots.server.ts";
import {
  expectedOnHand,
  parseCountedKits,
  reconcileSite,
  reconciliationView,
} from "../../app/drug-supply/reconciliation.server.ts";
import { receiveShipment, sendShipment } from "../../app/drug-supply/shipments.server.ts";
import { ServiceError } from "../../app/platform/errors.server.ts";
import { todayIn } from "../../app/records/records.server.ts";
import { engineUnderTest, openTestDatabase, type TestDb } from "../helpers/db.ts";
import { STAFF_PASSWORD } from "../helpers/study-staff.ts";
import { SUPPLY_SECRET, type SupplyStudy, supplyStudy } from "../helpers/supply-study.ts";

const STUDY = "RET-1";
let t: TestDb;
let s: SupplyStudy;
/** Kit numbers by lot: LZ (KIT-ZOLVA) and LP (KIT-PLACQ), 6 each; [0..3] received at S1, [4] at S2, [5] at depot. */
let kits: Record<string, string[]>;
const rows = async (q: string) => (await t.database.execute(q)) as Record<string, unknown>[];
const count = async (table: string) =>
  Number(
    (
      await rows(
        `SELECT count(*)::int AS n FROM ${table} x JOIN studies s ON s.id = x.study_id WHERE s.code = '${STUDY}'`,
      )
    )[0].n,
  );
const payloadOf = async (table: string, id: string) =>
  JSON.parse(
    String(
      (
        await rows(
          `SELECT e.payload_text FROM ${table} x JOIN ledger_entries e ON e.id = x.entry_id WHERE x.id = '${id}'`,
        )
      )[0].payload_text,
    ),
  );
const today = () => todayIn("UTC");
const META = { ip: null, userAgent: null };
const daysAgo = (n: number) => new Date(Date.now() - n * 86_400_000).toISOString().slice(0, 10);

async function refusal(p: Promise<unknown>) {
  try {
    await p;
  } catch (err) {
    if (err instanceof ServiceError) return { code: err.code, field: err.field, message: err.message };
    throw err;
  }
  throw new Error("expected a refusal");
}

/** Lots LZ and LP (2 units a day, 30 units a kit), released; kits shipped to S1 and S2 and received. */
async function buildSupply(): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  const pdf = { fileName: "coa.pdf", bytes: new Uint8Array(Buffer.from("%PDF-1.4\n% coa\n")) };
  for (const [lot, kitType] of [
    ["LZ", "KIT-ZOLVA"],
    ["LP", "KIT-PLACQ"],
  ]) {
    await registerLot(
      t.ctx,
      s.p.depot,
      STUDY,
      {
        product: "BP-101 10 mg tablets or placebo",
        lotNumber: lot,
        kitType,
        manufacturedOn: "2026-01-10",
        expiresOn: "2030-12-31",
        storageMinC: "2",
        storageMaxC: "8",
        dailyUnits: 2,
      },
      pdf,
    );
    await releaseLot(t.ctx, s.p.admin, STUDY, lot);
    out[lot] = (await registerKits(t.ctx, s.p.depot, STUDY, { lotNumber: lot, count: 6, units: 30 })).kits.map(
      (k) => k.number,
    );
  }
  for (const [site, idx, by] of [
    ["S1", [0, 1, 2, 3], s.p.pharm],
    ["S2", [4], s.p.pharm2],
  ] as const) {
    const numbers = idx.flatMap((i) => [out.LZ[i], out.LP[i]]);
    const sent = await sendShipment(t.ctx, s.p.depot, STUDY, { site, depot: "DEPOT-EU", kits: numbers });
    await receiveShipment(t.ctx, by, STUDY, sent.number, { temperatureMinC: "4", temperatureMaxC: "6" });
  }
  return out;
}

/** Dispense to `subject` the kit assigned to them, dated `days` ago (the row's time moved back). */
async function dispensedDaysAgo(subject: string, days: number): Promise<string> {
  const { kit } = await assignKit(t.ctx, s.p.pharm, STUDY, subject);
  const d = await dispenseKit(t.ctx, s.p.pharm, STUDY, subject, { kit });
  await t.ctx.db.transaction(async (tx) => {
    await tx.execute(sql.raw("SET LOCAL session_replication_role = replica"));
    await tx.execute(
      sql`UPDATE supply_dispensings SET created_at = now() - make_interval(days => ${days})
        WHERE id = ${d.dispensingId}`,
    );
  });
  return kit;
}

beforeAll(async () => {
  t = await openTestDatabase();
  s = await supplyStudy(t.ctx, STUDY, { participants: 2 });
  kits = await buildSupply();
});

afterAll(async () => {
  await t?.close();
});

describe(`returns, destruction and reconciliation on ${engineUnderTest()}`, () => {
  let returned: string;

  it("compliance: units taken against days times daily units; null on the day or without daily units", () => {
    expect(compliancePercent({ unitsDispensed: 30, unitsReturned: 10, days: 10, dailyUnits: 2 })).toBe(100);
    expect(compliancePercent({ unitsDispensed: 30, unitsReturned: 16, days: 10, dailyUnits: 2 })).toBe(70);
    expect(compliancePercent({ unitsDispensed: 30, unitsReturned: 0, days: 1, dailyUnits: 1 })).toBe(1000);
    expect(compliancePercent({ unitsDispensed: 30, unitsReturned: 0, days: 0, dailyUnits: 2 })).toBeNull();
    expect(compliancePercent({ unitsDispensed: 30, unitsReturned: 0, days: 5, dailyUnits: 0 })).toBeNull();
  });

  it("records a return with its compliance, sealed; refuses bad counts and dates, and a second return", async () => {
    const subject = s.subjects[0];
    returned = await dispensedDaysAgo(subject, 10);
    const before = await count("supply_returns");
    const bad: [Record<string, unknown>, string, RegExp][] = [
      [{ unitsReturned: 31 }, "units", /31 is more than the 30 units dispensed/],
      [{ unitsReturned: "-1" }, "units", /give the number of units/],
      [{ returnedOn: daysAgo(11) }, "returnedOn", /is before the kit was dispensed/],
      [{ returnedOn: daysAgo(-2) }, "returnedOn", /is in the future/],
      [{ returnedOn: "2026-13-45" }, "returnedOn", /YYYY-MM-DD/],
      [{ returnedOn: "2026-11-31" }, "returnedOn", /a date of the calendar as YYYY-MM-DD/],
    ];
    for (const [change, field, message] of bad) {
      const input = { kit: returned, unitsReturned: 10, returnedOn: today(), ...change };
      expect(await refusal(returnKit(t.ctx, s.p.pharm, STUDY, input)), JSON.stringify(change)).toMatchObject({
        code: "invalid",
        field,
        message: expect.stringMatching(message),
      });
    }
    // A kit never dispensed does not come back.
    const unused = kits.LZ.slice(0, 4).find((k) => k !== returned)!;
    const back = (kit: string) => ({ kit, unitsReturned: 0, returnedOn: today() });
    expect(await refusal(returnKit(t.ctx, s.p.pharm, STUDY, back(unused)))).toMatchObject({
      code: "conflict",
      field: "kit",
      message: expect.stringMatching(/has not been dispensed/),
    });
    // Where the kit is comes first: another site's kit (dispensed or not) or a depot kit is no kit of yours.
    for (const [who, kit] of [
      [s.p.pharm2, unused],
      [s.p.pharm2, returned],
      [s.p.pharm, kits.LZ[5]],
      [s.p.pharm, kits.LZ[4]],
    ] as const)
      expect(await refusal(returnKit(t.ctx, who, STUDY, back(kit))), kit).toMatchObject({
        code: "not_found",
        field: "kit",
        message: `kit: there is no kit ${kit} at your sites`,
      });
    expect(await count("supply_returns")).toBe(before);
    // The coordinator records it: 20 units taken in 10 days at 2 a day.
    const r = await returnKit(t.ctx, s.p.coord, STUDY, { kit: returned, unitsReturned: "10", returnedOn: today() });
    expect(r.compliancePercent).toBe(100);
    expect(await payloadOf("supply_returns", r.returnId)).toMatchObject({
      number: returned,
      subject,
      unitsReturned: 10,
      unitsDispensed: 30,
      compliancePercent: 100,
      returnedOn: today(),
      actor: s.userIds.coord,
    });
    expect(
      await refusal(returnKit(t.ctx, s.p.pharm, STUDY, { kit: returned, unitsReturned: 10, returnedOn: today() })),
    ).toMatchObject({
      code: "conflict",
      field: "kit",
      message: expect.stringMatching(new RegExp(`^kit ${returned} was already returned on ${today()}`)),
    });
    expect(await count("supply_returns")).toBe(before + 1);
    const mine = await participantSupply(t.ctx, s.p.pharm, STUDY, subject);
    expect(mine).toEqual([
      expect.objectContaining({
        kit: returned,
        matches: true,
        returned: expect.objectContaining({ on: today(), units: 10, compliancePercent: 100, matches: true }),
      }),
    ]);
    expect(JSON.stringify(mine)).not.toMatch(SUPPLY_SECRET);
  });

  it("records a destruction; the recorder cannot witness it, another person does, once", async () => {
    // Refused: a usable kit on hand, a dispensed kit not returned, a kit of another site, a kit at the depot.
    const outstanding = await dispensedDaysAgo(s.subjects[1], 3);
    const usable = kits.LZ.slice(0, 4).find((k) => k !== returned && k !== outstanding)!;
    const before = { d: await count("supply_destructions"), k: await count("supply_destruction_kits") };
    const cases: [string, RegExp][] = [
      [usable, /is on hand at the site and usable/],
      [outstanding, /is dispensed and not returned yet: record its return first/],
      [kits.LZ[4], /is not at site S1/],
      [kits.LZ[5], /is not at site S1/],
    ];
    for (const [kit, message] of cases) {
      const r = await refusal(
        recordDestruction(t.ctx, s.p.pharm, STUDY, { site: "S1", kits: [returned, kit], method: "Incineration" }),
      );
      expect(r, kit).toMatchObject({ code: "conflict", field: "kits", message: expect.stringMatching(message) });
      expect(r.message).not.toMatch(SUPPLY_SECRET);
    }
    expect(
      await refusal(recordDestruction(t.ctx, s.p.pharm, STUDY, { site: "S1", kits: [returned], method: " " })),
    ).toMatchObject({ code: "invalid", field: "method" });
    expect(await count("supply_destructions")).toBe(before.d);
    expect(await count("supply_destruction_kits")).toBe(before.k);
    expect(await destructibleKits(t.ctx, s.p.pharm, STUDY, "S1")).toEqual([{ number: returned, state: "returned" }]);

    const method = "Incineration by the licensed contractor, certificate 2026-114";
    const { destructionId } = await recordDestruction(t.ctx, s.p.pharm, STUDY, {
      site: "S1",
      kits: [returned],
      method,
    });
    const payload = await payloadOf("supply_destructions", destructionId);
    expect(payload).toMatchObject({ site: "S1", kits: [returned], actor: s.userIds.pharm });
    expect(payload.methodHash).toBe(saltedTextHash(t.ctx.crypto, payload.salt, method));
    expect(JSON.stringify(payload)).not.toContain("Incineration");
    // Pending: the recorder sees no Witness button, the unblinded pharmacist does.
    expect(await pendingDestructions(t.ctx, s.p.pharm, STUDY)).toEqual([
      expect.objectContaining({ id: destructionId, kits: [returned], canWitness: false }),
    ]);
    expect((await pendingDestructions(t.ctx, s.p.upharm, STUDY))[0].canWitness).toBe(true);
    expect(await pendingDestructions(t.ctx, s.p.pharm2, STUDY)).toEqual([]);

    const pw = { password: STAFF_PASSWORD };
    expect(await refusal(witnessDestruction(t.ctx, s.p.pharm, STUDY, destructionId, pw, META))).toMatchObject({
      code: "forbidden",
      message: "the witness must be someone other than the person who recorded the destruction",
    });
    // The witness signs in again in their own session: without or with a wrong password, nothing is written.
    for (const [input, message] of [
      [{}, "password: enter your password"],
      [{ password: "not the password" }, "the password is not correct"],
    ] as const)
      expect(await refusal(witnessDestruction(t.ctx, s.p.upharm, STUDY, destructionId, input, META))).toMatchObject({
        code: "invalid",
        field: "password",
        message,
      });
    expect(await count("supply_destruction_witnesses")).toBe(0);
    const w = await witnessDestruction(t.ctx, s.p.upharm, STUDY, destructionId, pw, META);
    expect(await payloadOf("supply_destruction_witnesses", w.witnessId)).toMatchObject({
      destruction: destructionId,
      actor: s.userIds.upharm,
    });
    expect(await refusal(witnessDestruction(t.ctx, s.p.inv, STUDY, destructionId, pw, META))).toMatchObject({
      code: "conflict",
      message: expect.stringMatching(/^this destruction was already witnessed by upharm person/),
    });
    expect(await count("supply_destruction_witnesses")).toBe(1);
    const [view] = await destructionsView(t.ctx, s.p.pharm, STUDY);
    expect(view).toMatchObject({ witnessedBy: "upharm person", recordedBy: "pharm person", canWitness: false });
    // Destroyed once: not again, and never dispensed.
    expect(
      await refusal(recordDestruction(t.ctx, s.p.pharm, STUDY, { site: "S1", kits: [returned], method: "again" })),
    ).toMatchObject({ code: "conflict", message: expect.stringMatching(/has already been destroyed/) });

    // At the depot: only the depot manager, only kits never shipped.
    const shippedToS1 = kits.LP.slice(0, 4).find((k) => k !== returned && k !== outstanding)!;
    expect(
      await refusal(recordDestruction(t.ctx, s.p.pharm, STUDY, { site: null, kits: [kits.LP[5]], method: "x" })),
    ).toMatchObject({ code: "forbidden" });
    expect(
      // A kit shipped to S1 that is not the one destroyed above (dispensing picks a kit at random).
      await refusal(recordDestruction(t.ctx, s.p.depot, STUDY, { site: null, kits: [shippedToS1], method: "x" })),
    ).toMatchObject({ code: "conflict", message: expect.stringMatching(/was shipped to site S1: destroy it there/) });
    const depot = await recordDestruction(t.ctx, s.p.depot, STUDY, {
      site: null,
      kits: [kits.LP[5]],
      method: "Returned to the manufacturer for destruction",
    });
    expect(await payloadOf("supply_destructions", depot.destructionId)).toMatchObject({ site: null });
    expect(JSON.stringify(await destructionsView(t.ctx, s.p.pharm, STUDY))).not.toMatch(SUPPLY_SECRET);
  });

  it("reconciliation names missing and unexpected kits and seals them", async () => {
    const expected = await expectedOnHand(t.ctx, STUDY, "S1");
    // On hand at S1: LZ/LP[0..3] less the destroyed (returned) one and the outstanding dispensed one.
    expect(expected.returned).toEqual([]);
    expect(expected.onHand).toHaveLength(6);
    const [gone, ...present] = expected.onHand;
    const counted = `${present.join("\n")}\n${kits.LZ[4]}, 999999 ; ${present[0]}`;
    expect(await refusal(reconcileSite(t.ctx, s.p.pharm, STUDY, { site: "S1", counted }))).toMatchObject({
      code: "forbidden",
    });
    expect(
      await refusal(reconcileSite(t.ctx, s.p.mon, STUDY, { site: "S1", counted: "123456\nnot-a-kit!" })),
    ).toMatchObject({ code: "invalid", field: "counted", message: expect.stringMatching(/is not a kit number/) });
    expect(parseCountedKits(" 1234-56 \n\n 999999,111111")).toEqual(["1234-56", "111111", "999999"].sort());

    const r = await reconcileSite(t.ctx, s.p.mon, STUDY, { site: "S1", counted });
    expect(r.missing).toEqual([gone]);
    expect(r.unexpected).toEqual(["999999", kits.LZ[4]].sort());
    expect(r.counted).toHaveLength(present.length + 2);
    const payload = await payloadOf("supply_reconciliations", r.reconciliationId);
    expect(payload).toMatchObject({
      site: "S1",
      expected: 6,
      counted: present.length + 2,
      missing: [gone],
      unexpected: ["999999", kits.LZ[4]].sort(),
      actor: s.userIds.mon,
    });
    const [row] = await rows(
      `SELECT missing_text, unexpected_text FROM supply_reconciliations WHERE id = '${r.reconciliationId}'`,
    );
    expect(JSON.parse(String(row.missing_text))).toEqual([gone]);
    const history = await reconciliationView(t.ctx, s.p.mon, STUDY);
    expect(history).toEqual([
      expect.objectContaining({ site: "S1", expected: 6, missing: [gone], unexpected: r.unexpected }),
    ]);
    // The site's own pharmacist sees the history of S1, not another site's.
    expect(await reconciliationView(t.ctx, s.p.pharm2, STUDY)).toEqual([]);
    expect(JSON.stringify(await reconciliationView(t.ctx, s.p.pharm, STUDY))).not.toMatch(SUPPLY_SECRET);
  });

  it("a destruction, witness, dispensing or return row changed after its entry is shown so, never sealed", async () => {
    const tamper = (q: string) =>
      t.ctx.db.transaction(async (tx) => {
        await tx.execute(sql.raw("SET LOCAL session_replication_role = replica"));
        await tx.execute(sql.raw(q));
      });
    const views = async () => ({
      d: (await destructionsView(t.ctx, s.p.pharm, STUDY)).find((x) => x.site === "S1")!,
      k: (await participantSupply(t.ctx, s.p.pharm, STUDY, s.subjects[0]))[0],
    });
    const before = await views();
    expect(before.d.seal).toMatchObject({ matches: true, words: "pending seal" });
    expect(before.d.witnessSeal?.matches).toBe(true);
    expect(before.k).toMatchObject({ matches: true, returned: expect.objectContaining({ matches: true }) });
    await tamper(`UPDATE supply_destructions SET method = 'shredded' WHERE id = '${before.d.id}'`);
    await tamper(`DELETE FROM supply_destruction_kits WHERE destruction_id = '${before.d.id}'`);
    await tamper(`UPDATE supply_destruction_witnesses SET actor_user_id = '${s.userIds.pharm}'`);
    await tamper(`UPDATE supply_dispensings SET visit = 'V9' WHERE kit_id = (SELECT id FROM supply_kits
      WHERE number = '${before.k.kit}')`);
    await tamper(`UPDATE supply_returns SET units_returned = 0`);
    const after = await views();
    expect(after.d.seal).toMatchObject({ matches: false, differs: ["method", "kits"] });
    expect(after.d.seal.words).toBe("does not match its sealed entry: method, kits");
    expect(after.d.witnessSeal).toMatchObject({ matches: false, differs: ["actor"] });
    expect(after.k).toMatchObject({ matches: false, seal: "does not match its sealed entry: visit" });
    expect(after.k.returned).toMatchObject({ matches: false, seal: "does not match its sealed entry: unitsReturned" });
  });
});
