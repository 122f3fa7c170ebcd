/**
 * Shipments, receipt, excursions, the sponsor's quarantine decisions and the public counterfeit check (issue 21,
 * ADR 0058, 0060) on PGlite and PostgreSQL: only depot kits of released, unrecalled, unexpired lots are sent (each
 * refusal named); a receipt in range puts kits on hand, an excursion (temperatures, a logger reading or the receiver's
 * word) quarantines them and tells the sponsor through the outbox; a second receipt, a receipt by another site's
 * pharmacist, a decision without a reason, twice or by a non-sponsor are refused; release puts kits on hand, destroy
 * rejects them; the public check flags genuine, recalled, quarantined (rejected too), expired and says nothing else, a
 * destroyed kit answers like an unknown label; the logger file's size and name (salted hash) are sealed; each row on
 * the shipments and reconciliation pages is checked against its entry (a tampered row named); on PostgreSQL, two
 * receipts of one shipment, two shipments of one kit, and a shipment of a kit whose lot is being recalled, at once.
 */
import { randomBytes } from "node:crypto";
import { sql } from "drizzle-orm";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { toBase64Url } from "../../anchoring/log/bytes.ts";
import { saltedTextHash } from "../../anchoring/log/text-hash.ts";
import { checkKitLabel } from "../../app/drug-supply/counterfeit-check.server.ts";
import { recordDestruction } from "../../app/drug-supply/destruction.server.ts";
import { kitFacts } from "../../app/drug-supply/kit-facts.server.ts";
import { kitState } from "../../app/drug-supply/kit-state.ts";
import { registerKits, registerLot, releaseLot } from "../../app/drug-supply/lots.server.ts";
import { recallLot } from "../../app/drug-supply/recall.server.ts";
import { reconcileSite, reconciliationView } from "../../app/drug-supply/reconciliation.server.ts";
import {
  decideQuarantine,
  receiveShipment,
  sendShipment,
  shipmentsView,
} from "../../app/drug-supply/shipments.server.ts";
import { ServiceError } from "../../app/platform/errors.server.ts";
import { loader as kitPage } from "../../app/routes/public/kits.$token.tsx";
import { MISMATCH_TEXT } from "../../app/log/seal-text.ts";
import { type AppContext, contextFor } from "../../app/platform/context.server.ts";
import { openDatabase } from "../../db/client.ts";
import { engineUnderTest, openTestDatabase, type TestDb } from "../helpers/db.ts";
import { testEnv } from "../helpers/env.ts";
import { SUPPLY_SECRET, type SupplyStudy, supplyStudy } from "../helpers/supply-study.ts";
import { waitFor } from "../helpers/wait.ts";

let t: TestDb;
let s: SupplyStudy;
const STUDY = "SHIP-1";
const rows = async (q: string) => (await t.database.execute(q)) as Record<string, unknown>[];
/** Kits of each lot: number and label token. */
const kits: Record<string, { number: string; labelToken: string }[]> = {};
const coa = { fileName: "coa.pdf", bytes: new Uint8Array(Buffer.from("%PDF-1.4\n% coa\n")) };
const today = new Date().toISOString().slice(0, 10);

async function refusal(p: Promise<unknown>) {
  try {
    await p;
  } catch (err) {
    if (err instanceof ServiceError) return { code: err.code, field: err.field, message: err.message };
    throw err;
  }
  throw new Error("expected a refusal");
}
const send = (more: Record<string, unknown>) =>
  sendShipment(t.ctx, s.p.depot, STUDY, { site: "S1", depot: "DEP-1", ...more });
const stateOf = async (numbers: string[]) =>
  (await kitFacts(t.ctx.db, null, { numbers })).map((f) => kitState(f, today));
/** The payload of the entry of `kind` naming `id` (pending entries have no seq yet). */
const payloadOf = async (kind: string, id: string) =>
  (await rows(`SELECT payload_text FROM ledger_entries WHERE kind = '${kind}' AND payload_text LIKE '%${id}%'`)).map(
    (r) => JSON.parse(String(r.payload_text)),
  )[0];

beforeAll(async () => {
  t = await openTestDatabase();
  s = await supplyStudy(t.ctx, STUDY, { participants: 0 });
  // LOT-A1/B1 released, LOT-U1 not released, LOT-R1 recalled, LOT-E1 expired (2 °C to 8 °C each); LOT-C1 for races.
  const lots: [string, string, string, number][] = [
    ["LOT-A1", "KIT-ZOLVA", "2030-12-31", 10],
    ["LOT-B1", "KIT-PLACQ", "2030-12-31", 4],
    ["LOT-U1", "KIT-ZOLVA", "2030-12-31", 1],
    ["LOT-R1", "KIT-PLACQ", "2030-12-31", 1],
    ["LOT-E1", "KIT-ZOLVA", "2025-12-31", 1],
    ["LOT-C1", "KIT-ZOLVA", "2030-12-31", 3],
  ];
  for (const [lotNumber, kitType, expiresOn, count] of lots) {
    const lot = { product: "BP-101 10 mg or placebo", lotNumber, kitType, manufacturedOn: "2025-01-10", expiresOn };
    await registerLot(t.ctx, s.p.depot, STUDY, { ...lot, storageMinC: "2", storageMaxC: "8", dailyUnits: 1 }, coa);
    kits[lotNumber] = (await registerKits(t.ctx, s.p.depot, STUDY, { lotNumber, count, units: 30 })).kits;
    if (lotNumber !== "LOT-U1") await releaseLot(t.ctx, s.p.admin, STUDY, lotNumber);
  }
  await recallLot(t.ctx, s.p.admin, STUDY, { lotNumber: "LOT-R1", reason: "Stability failure" });
});

afterAll(async () => {
  await t?.close();
});

describe("sending a shipment", () => {
  it("refuses kits not at the depot or of unreleased, recalled, expired lots, each named, none written", async () => {
    const bad = [kits["LOT-U1"][0].number, kits["LOT-R1"][0].number, kits["LOT-E1"][0].number, "NO-SUCH-KIT"];
    const r = await refusal(send({ kits: bad }));
    expect(r).toMatchObject({ code: "conflict", field: "kits" });
    expect(r.message).toContain(`kit ${bad[0]} is of lot LOT-U1, which the sponsor has not released`);
    expect(r.message).toContain(`kit ${bad[1]} is of lot LOT-R1, which is recalled`);
    expect(r.message).toContain(`kit ${bad[2]} is of lot LOT-E1, which expired on 2025-12-31`);
    expect(r.message).toContain("kit NO-SUCH-KIT does not exist");
    const lotsRefused = await refusal(
      send({
        fromLots: [
          { lotNumber: "LOT-U1", count: 1 },
          { lotNumber: "LOT-A1", count: 99 },
        ],
      }),
    );
    expect(lotsRefused).toMatchObject({ code: "conflict", field: "fromLots" });
    expect(lotsRefused.message).toContain("lot LOT-U1 is not released by the sponsor");
    expect(lotsRefused.message).toContain("lot LOT-A1 has 10 kits at the depot to send, not 99");
    expect(await refusal(sendShipment(t.ctx, s.p.pharm, STUDY, { site: "S1", depot: "D", kits: bad }))).toMatchObject({
      code: "forbidden",
    });
    expect(await rows("SELECT id FROM supply_shipments")).toHaveLength(0);
  });

  it("sends depot kits of released lots as SHP-0001 with its sealed kit list; refuses a kit twice", async () => {
    const one = await send({
      fromLots: [
        { lotNumber: "LOT-A1", count: 2 },
        { lotNumber: "LOT-B1", count: 1 },
      ],
    });
    expect(one.number).toBe("SHP-0001");
    expect(one.kits).toHaveLength(3);
    expect(await payloadOf("supply.shipment_sent", one.shipmentId)).toMatchObject({
      number: "SHP-0001",
      site: "S1",
      kits: one.kits,
    });
    expect((await stateOf(one.kits)).map((x) => x.location)).toEqual(["in_transit", "in_transit", "in_transit"]);
    const again = await refusal(send({ kits: [one.kits[0]] }));
    expect(again.message).toContain(`kit ${one.kits[0]} was already shipped in SHP-0001 to S1`);
    const other = kits["LOT-A1"].find((k) => !one.kits.includes(k.number))?.number as string;
    const two = await send({ kits: [other] });
    expect(two.number).toBe("SHP-0002");
  });
});

describe("receiving a shipment", () => {
  it("in range: kits on hand; refused twice naming when and by whom, and for another site's pharmacist", async () => {
    const sh = await send({ fromLots: [{ lotNumber: "LOT-A1", count: 1 }] });
    expect(
      await refusal(
        receiveShipment(t.ctx, s.p.pharm2, STUDY, sh.number, { temperatureMinC: "4", temperatureMaxC: "6" }),
      ),
    ).toMatchObject({ code: "forbidden", message: expect.stringContaining("site S1") });
    expect(await refusal(receiveShipment(t.ctx, s.p.pharm, STUDY, sh.number, {}))).toMatchObject({
      code: "invalid",
      field: "temperatureMinC",
    });
    const r = await receiveShipment(t.ctx, s.p.pharm, STUDY, sh.number, {
      temperatureMinC: "2",
      temperatureMaxC: "8,0",
    });
    expect(r).toMatchObject({ excursion: false, quarantined: 0 });
    expect((await stateOf(sh.kits))[0]).toMatchObject({ location: "on_hand", dispensable: true });
    const twice = await refusal(
      receiveShipment(t.ctx, s.p.upharm, STUDY, sh.number, { temperatureMinC: "4", temperatureMaxC: "6" }),
    );
    expect(twice.code).toBe("conflict");
    expect(twice.message).toMatch(
      new RegExp(`^shipment ${sh.number} was already received on \\d{4}-\\d{2}-\\d{2} \\d{2}:\\d{2} UTC by \\S`),
    );
    expect(twice.message).toContain("pharm");
    expect(await rows(`SELECT id FROM supply_shipment_receipts`)).toHaveLength(1);
  });

  it("a temperature excursion quarantines the kits and tells the sponsor, naming no lot or kit type", async () => {
    const sh = await send({
      fromLots: [
        { lotNumber: "LOT-A1", count: 1 },
        { lotNumber: "LOT-B1", count: 1 },
      ],
    });
    const r = await receiveShipment(t.ctx, s.p.pharm, STUDY, sh.number, {
      temperatureMinC: "3",
      temperatureMaxC: "12.5",
    });
    expect(r).toMatchObject({ excursion: true, quarantined: 2 });
    expect((await stateOf(sh.kits)).map((x) => x.location)).toEqual(["quarantined", "quarantined"]);
    expect(await payloadOf("supply.shipment_received", r.receiptId)).toMatchObject({
      temperatureMinTenths: 30,
      temperatureMaxTenths: 125,
      loggerSha256: null,
      loggerBytes: null,
      loggerNameHash: null,
      excursion: true,
    });
    const mail = await rows(`SELECT to_address, subject, body FROM outbox WHERE kind = 'shipment_quarantined'`);
    expect(mail.map((m) => m.to_address)).toEqual([
      (await rows(`SELECT email FROM users WHERE id = '${s.userIds.admin}'`))[0].email,
    ]);
    expect(String(mail[0].subject)).toContain(`shipment ${sh.number} quarantined at site S1`);
    expect(String(mail[0].body)).toContain("3.0 °C to 12.5 °C");
    expect(JSON.stringify(mail)).not.toMatch(SUPPLY_SECRET);
    expect(JSON.stringify(mail)).not.toContain("LOT-");
  });

  it("a logger file in range: on hand, SHA-256 sealed; a reading outside quarantines; a bad line named", async () => {
    const okFile = new Uint8Array(Buffer.from("Zeit;Temperatur °C\n08:00;4,5\n09:00;7,9\n"));
    const a = await send({ fromLots: [{ lotNumber: "LOT-A1", count: 1 }] });
    const ra = await receiveShipment(t.ctx, s.p.pharm, STUDY, a.number, {
      logger: { fileName: "a.csv", bytes: okFile },
    });
    expect(ra.excursion).toBe(false);
    const sealed = await payloadOf("supply.shipment_received", ra.receiptId);
    expect(sealed).toMatchObject({ temperatureMinTenths: 45, temperatureMaxTenths: 79, excursion: false });
    const [row] = await rows(`SELECT encode(logger_sha256, 'hex') AS h, logger_file_name FROM supply_shipment_receipts
      WHERE id = '${ra.receiptId}'`);
    expect(row).toEqual({ h: sealed.loggerSha256, logger_file_name: "a.csv" });
    // The file's size and name (as its salted hash) are sealed with its SHA-256.
    expect(sealed.loggerBytes).toBe(okFile.byteLength);
    expect(sealed.loggerNameHash).toBe(saltedTextHash(t.ctx.crypto, sealed.salt, "a.csv"));
    expect(JSON.stringify(sealed)).not.toContain("a.csv");
    const b = await send({ fromLots: [{ lotNumber: "LOT-A1", count: 1 }] });
    const bad = new Uint8Array(Buffer.from("time,temp\n08:00,4.5\n09:00,hot\n"));
    expect(
      await refusal(receiveShipment(t.ctx, s.p.pharm, STUDY, b.number, { logger: { fileName: "b.csv", bytes: bad } })),
    ).toMatchObject({ code: "invalid", field: "logger", message: expect.stringContaining("line 3") });
    const warm = new Uint8Array(Buffer.from("time,temp\n08:00,4.5\n09:00,9.1\n"));
    const rb = await receiveShipment(t.ctx, s.p.pharm, STUDY, b.number, { logger: { fileName: "b.csv", bytes: warm } });
    expect(rb).toMatchObject({ excursion: true, quarantined: 1 });
    expect(rb.why.join()).toContain("the logger read 9.1 °C at 09:00 (line 3 of b.csv)");
  });
});

describe("the sponsor's decision", () => {
  it("refused without a reason, by a non-sponsor, on a shipment without excursion; release once; destroy", async () => {
    const x = await send({ fromLots: [{ lotNumber: "LOT-A1", count: 1 }] });
    const y = await send({ fromLots: [{ lotNumber: "LOT-B1", count: 1 }] });
    for (const sh of [x, y])
      await receiveShipment(t.ctx, s.p.pharm, STUDY, sh.number, {
        temperatureMinC: "4",
        temperatureMaxC: "6",
        excursion: "yes",
      });
    expect(
      await refusal(decideQuarantine(t.ctx, s.p.admin, STUDY, x.number, { outcome: "release", reason: " " })),
    ).toMatchObject({ code: "invalid", field: "reason" });
    for (const who of [s.p.depot, s.p.pharm, s.p.mon])
      expect(
        await refusal(decideQuarantine(t.ctx, who, STUDY, x.number, { outcome: "release", reason: "ok" })),
      ).toMatchObject({ code: "forbidden" });
    expect(
      await refusal(decideQuarantine(t.ctx, s.p.admin, STUDY, "SHP-0001", { outcome: "release", reason: "ok" })),
    ).toMatchObject({ code: "conflict", message: "shipment SHP-0001 has not been received yet" });
    await decideQuarantine(t.ctx, s.p.admin, STUDY, x.number, {
      outcome: "release",
      reason: "Stability data cover it",
    });
    expect((await stateOf(x.kits))[0]).toMatchObject({ location: "on_hand", dispensable: true });
    const twice = await refusal(
      decideQuarantine(t.ctx, s.p.admin, STUDY, x.number, { outcome: "destroy", reason: "x" }),
    );
    expect(twice).toMatchObject({ code: "conflict" });
    expect(twice.message).toMatch(/already decided on: .* released its kits on \d{4}-\d{2}-\d{2}/);
    const dy = await decideQuarantine(t.ctx, s.p.admin, STUDY, y.number, {
      outcome: "destroy",
      reason: "Frozen in transit",
    });
    expect((await stateOf(y.kits))[0]).toMatchObject({ location: "rejected", dispensable: false });
    const sealed = await payloadOf("supply.quarantine_decided", dy.decisionId);
    expect(sealed).toMatchObject({ outcome: "destroy", actor: s.userIds.admin });
    expect(JSON.stringify(sealed)).not.toContain("Frozen");
  });

  it("a site pharmacist sees only the site's shipments: kit numbers and states, no lot or kit type", async () => {
    const forS2 = await send({ site: "S2", fromLots: [{ lotNumber: "LOT-A1", count: 1 }] });
    const mine = await shipmentsView(t.ctx, s.p.pharm, STUDY);
    expect(mine.shipments.map((x) => x.site)).not.toContain("S2");
    expect(mine.shipments.find((x) => x.status === "quarantined")?.canDecide).toBe(false);
    const text = JSON.stringify(mine);
    expect(text).not.toMatch(SUPPLY_SECRET);
    expect(text).not.toContain("LOT-");
    const theirs = await shipmentsView(t.ctx, s.p.pharm2, STUDY);
    expect(theirs.shipments.map((x) => [x.number, x.canReceive])).toEqual([[forS2.number, true]]);
    expect((await shipmentsView(t.ctx, s.p.admin, STUDY)).shipments.length).toBe(mine.shipments.length + 1);
  });
});

describe("the public counterfeit check", () => {
  const call = (token: string, accept = "application/json") =>
    kitPage({
      request: new Request(`http://portal.test/kits/${token}`, { headers: { accept } }),
      params: { token },
      context: { ctx: t.ctx },
    } as unknown as Parameters<typeof kitPage>[0]);

  it("flags genuine, recalled, quarantined, expired, nothing else; unknown or malformed tokens: null", async () => {
    const [v] = await shipmentsView(t.ctx, s.p.admin, STUDY).then((x) =>
      x.shipments.filter((sh) => sh.status === "quarantined"),
    );
    const onHand = (await shipmentsView(t.ctx, s.p.admin, STUDY)).shipments
      .filter((sh) => sh.status === "received")
      .flatMap((sh) => sh.kits.map((k) => k.number));
    const token = (n: string) =>
      Object.values(kits)
        .flat()
        .find((k) => k.number === n)?.labelToken as string;
    expect(await checkKitLabel(t.ctx, token(onHand[0]))).toEqual({
      genuine: true,
      kit: onHand[0],
      recalled: false,
      quarantined: false,
      expired: false,
    });
    expect(await checkKitLabel(t.ctx, token(v.kits[0].number))).toMatchObject({ quarantined: true, recalled: false });
    expect(await checkKitLabel(t.ctx, kits["LOT-R1"][0].labelToken)).toMatchObject({ recalled: true, expired: false });
    expect(await checkKitLabel(t.ctx, kits["LOT-E1"][0].labelToken)).toMatchObject({ expired: true, genuine: true });
    for (const bad of [
      toBase64Url(randomBytes(16)),
      "short",
      `${kits["LOT-R1"][0].labelToken}x`,
      "' OR 1=1 --aaaaaaaaaaa",
    ])
      expect(await checkKitLabel(t.ctx, bad)).toBeNull();
    for (const k of Object.values(kits).flat()) {
      const text = JSON.stringify(await checkKitLabel(t.ctx, k.labelToken));
      expect(text).not.toMatch(SUPPLY_SECRET);
      expect(text).not.toMatch(/LOT-|S1|S2|\d{4}-\d{2}-\d{2}|DEP-1/);
    }
  });

  it("the page: JSON by Accept, HTML otherwise, 404 for an unknown token in both, never cached", async () => {
    const k = kits["LOT-R1"][0];
    const json = await call(k.labelToken);
    expect(json.status).toBe(200);
    expect(json.headers.get("cache-control")).toBe("no-store");
    expect(await json.json()).toEqual({
      genuine: true,
      kit: k.number,
      recalled: true,
      quarantined: false,
      expired: false,
    });
    const page = await call(k.labelToken, "text/html");
    const html = await page.text();
    expect(page.headers.get("content-type")).toMatch(/^text\/html/);
    expect(html).toContain(`Genuine kit ${k.number}`);
    expect(html).toContain("Recalled: do not use this kit");
    expect(html).not.toMatch(SUPPLY_SECRET);
    expect(html).not.toContain("LOT-");
    const unknown = toBase64Url(randomBytes(16));
    const j404 = await call(unknown);
    expect([j404.status, await j404.json()]).toEqual([404, { genuine: false }]);
    const h404 = await call(unknown, "text/html");
    expect(h404.status).toBe(404);
    expect(h404.headers.get("cache-control")).toBe("no-store");
    expect(await h404.text()).toContain("This label is not one of ours");
  });

  it("a kit rejected by the sponsor is on hold; a destroyed kit answers like an unknown label (404)", async () => {
    const token = (n: string) =>
      Object.values(kits)
        .flat()
        .find((k) => k.number === n)?.labelToken as string;
    const rejected = (await shipmentsView(t.ctx, s.p.admin, STUDY)).shipments.find((x) => x.status === "rejected");
    const held = token(rejected?.kits[0].number as string);
    expect(await checkKitLabel(t.ctx, held)).toMatchObject({ genuine: true, quarantined: true, recalled: false });
    const html = await (await call(held, "text/html")).text();
    expect(html).toContain("On hold: do not use this kit");
    expect(html).toContain("is held by the study and is not for use");
    expect(html).not.toContain("until the sponsor decides");
    const gone = kits["LOT-U1"][0];
    expect(await checkKitLabel(t.ctx, gone.labelToken)).toMatchObject({ genuine: true });
    await recordDestruction(t.ctx, s.p.depot, STUDY, { site: null, kits: [gone.number], method: "Incineration" });
    expect(await checkKitLabel(t.ctx, gone.labelToken)).toBeNull();
    const j = await call(gone.labelToken);
    expect([j.status, await j.json()]).toEqual([404, { genuine: false }]);
    expect(await (await call(gone.labelToken, "text/html")).text()).toContain("This label is not one of ours");
  });
});

describe("seal state on the shipments and reconciliation pages", () => {
  it("shipment, receipt, decision, reconciliation rows checked against their entries; tampered named", async () => {
    const onHand = (await shipmentsView(t.ctx, s.p.admin, STUDY)).shipments
      .filter((x) => x.status === "received")
      .flatMap((x) => x.kits.map((k) => k.number));
    await reconcileSite(t.ctx, s.p.mon, STUDY, { site: "S1", counted: [onHand[0], "999999"] });
    const view = async () => (await shipmentsView(t.ctx, s.p.admin, STUDY)).shipments;
    const seals = (v: Awaited<ReturnType<typeof view>>) =>
      v.flatMap((x) => [x.seal, x.receipt?.seal, x.decision?.seal]).filter((x) => x !== undefined);
    for (const x of [...seals(await view()), ...(await reconciliationView(t.ctx, s.p.mon, STUDY)).map((r) => r.seal)])
      expect(x).toMatchObject({ differs: [], seal: { matchesSeal: true }, words: expect.not.stringContaining("not") });
    const one = (await view()).find((x) => x.number === "SHP-0001");
    const received = (await view()).find((x) => x.receipt?.temperatureMin && x.number !== "SHP-0001");
    const decided = (await view()).find((x) => x.decision);
    await t.ctx.db.transaction(async (tx) => {
      await tx.execute(sql.raw("SET LOCAL session_replication_role = replica"));
      await tx.execute(sql`UPDATE supply_shipments SET depot = 'DEP-X' WHERE number = 'SHP-0001'`);
      await tx.execute(sql`DELETE FROM supply_shipment_kits WHERE kit_id IN
        (SELECT id FROM supply_kits WHERE number = ${one?.kits[0].number})`);
      await tx.execute(sql`UPDATE supply_shipment_receipts SET temperature_max_tenths = 50
        WHERE shipment_id = (SELECT id FROM supply_shipments WHERE number = ${received?.number})`);
      await tx.execute(sql`UPDATE supply_quarantine_decisions SET reason = 'Fine'
        WHERE shipment_id = (SELECT id FROM supply_shipments WHERE number = ${decided?.number})`);
      await tx.execute(sql`UPDATE supply_reconciliations SET unexpected_text = '[]'`);
    });
    const after = await view();
    const at = (n?: string) => after.find((x) => x.number === n);
    expect(at("SHP-0001")?.seal).toMatchObject({ differs: ["depot", "kits"], seal: { matchesSeal: false } });
    expect(at("SHP-0001")?.seal.words).toBe(`${MISMATCH_TEXT}: depot, kits`);
    expect(at(received?.number)?.receipt?.seal.differs).toEqual(["temperatureMaxTenths"]);
    expect(at(decided?.number)?.decision?.seal.differs).toEqual(["reason"]);
    const [rec] = await reconciliationView(t.ctx, s.p.mon, STUDY);
    expect(rec.seal).toMatchObject({ differs: ["unexpected"], seal: { matchesSeal: false } });
    // The rest still match.
    expect(seals(after).filter((x) => x.differs.length)).toHaveLength(3);
  });
});

// PostgreSQL only: PGlite has a single connection, so two transactions there can never overlap. A third connection
// holds a row so that both contenders are inside their transactions at once, then lets go.
describe.skipIf(engineUnderTest() === "pglite")("races (PostgreSQL only)", () => {
  /** Each contender gets its own pool (one pool may queue a query behind another's blocked one). */
  async function contend<T>(hold: string, start: ((ctx: AppContext) => Promise<T>)[]) {
    const holder = postgres(t.url as string, { max: 1, onnotice: () => {} });
    const reserved = await holder.reserve();
    const pools = await Promise.all(start.map(() => openDatabase({ url: t.url as string, poolSize: 2 })));
    try {
      await reserved`BEGIN`;
      await reserved.unsafe(hold);
      const blocked = async () =>
        (
          await reserved`SELECT count(*)::int AS n FROM pg_stat_activity
            WHERE datname = current_database() AND cardinality(pg_blocking_pids(pid)) > 0`
        )[0].n;
      const all: Promise<PromiseSettledResult<T>>[] = [];
      for (const [i, go] of start.entries()) {
        const ctx = contextFor({ ...testEnv(), databaseUrl: t.url as string }, pools[i]);
        all.push(
          go(ctx).then(
            (value) => ({ status: "fulfilled", value }) as const,
            (reason) => ({ status: "rejected", reason }) as const,
          ),
        );
        const n = all.length;
        await waitFor(async () => (await blocked()) === n, { what: `${n} contender(s) waiting` });
      }
      await reserved`COMMIT`;
      return await Promise.all(all);
    } finally {
      reserved.release();
      await holder.end();
      for (const p of pools) await p.close();
    }
  }
  const c = () => kits["LOT-C1"].map((k) => k.number);
  const lost = (out: PromiseSettledResult<unknown>[]) => {
    expect(out.filter((o) => o.status === "fulfilled")).toHaveLength(1);
    return (out.find((o) => o.status === "rejected") as PromiseRejectedResult).reason;
  };

  it("two receipts of one shipment at once: one wins, the other is told when and by whom", async () => {
    const sh = await send({ kits: [c()[0]] });
    const temps = { temperatureMinC: "4", temperatureMaxC: "6" };
    const out = await contend<unknown>(`SELECT 1 FROM supply_shipments WHERE number = '${sh.number}' FOR UPDATE`, [
      (ctx) => receiveShipment(ctx, s.p.pharm, STUDY, sh.number, temps),
      (ctx) => receiveShipment(ctx, s.p.upharm, STUDY, sh.number, temps),
    ]);
    expect(lost(out)).toMatchObject({
      code: "conflict",
      message: expect.stringMatching(new RegExp(`^shipment ${sh.number} was already received on .* by `)),
    });
    expect(
      await rows(`SELECT r.id FROM supply_shipment_receipts r JOIN supply_shipments s ON s.id = r.shipment_id
        WHERE s.number = '${sh.number}'`),
    ).toHaveLength(1);
  });

  it("two shipments of one kit at once: one wins, the other names the shipment it went in", async () => {
    const kit = c()[1];
    const out = await contend<unknown>(`SELECT 1 FROM supply_kits WHERE number = '${kit}' FOR UPDATE`, [
      (ctx) => sendShipment(ctx, s.p.depot, STUDY, { site: "S1", depot: "DEP-1", kits: [kit] }),
      (ctx) => sendShipment(ctx, s.p.depot, STUDY, { site: "S2", depot: "DEP-1", kits: [kit] }),
    ]);
    expect(lost(out)).toMatchObject({
      code: "conflict",
      field: "kits",
      message: expect.stringContaining(`kit ${kit} was already shipped in SHP-`),
    });
    expect(
      await rows(
        `SELECT 1 FROM supply_shipment_kits sk JOIN supply_kits k ON k.id = sk.kit_id WHERE k.number = '${kit}'`,
      ),
    ).toHaveLength(1);
  });

  it("a kit whose lot is recalled while its shipment waits for it is not shipped", async () => {
    const kit = c()[2];
    const out = await contend<unknown>(`SELECT 1 FROM supply_kits WHERE number = '${kit}' FOR UPDATE`, [
      (ctx) => recallLot(ctx, s.p.admin, STUDY, { lotNumber: "LOT-C1", reason: "Label misprint" }),
      (ctx) => sendShipment(ctx, s.p.depot, STUDY, { site: "S1", depot: "DEP-1", kits: [kit] }),
    ]);
    expect(out[0].status).toBe("fulfilled");
    expect(out[1]).toMatchObject({
      status: "rejected",
      reason: { code: "conflict", message: expect.stringContaining(`kit ${kit} is of lot LOT-C1, which is recalled`) },
    });
    expect(
      await rows(
        `SELECT 1 FROM supply_shipment_kits sk JOIN supply_kits k ON k.id = sk.kit_id WHERE k.number = '${kit}'`,
      ),
    ).toHaveLength(0);
  });
});
