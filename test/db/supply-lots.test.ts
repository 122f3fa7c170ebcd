/**
 * Lots, kits, labels and recall (issue 21, ADR 0056, 0063, 0065) on PGlite and PostgreSQL: a lot's registration
 * refused with a message naming the field (no committed list, unknown kit type, kit type in the product name,
 * duplicate lot number, expiry not after manufacture, storage min not below max, a CoA that is empty, not a PDF or
 * too large), a release once, kits with random unique six-digit numbers and 22-character label tokens, one sealed
 * entry per kit whose blindHash opens with the row's nonce and names no kit type, the lots page for a blinded role
 * without kit types, the CoA download refusing altered bytes, the label sheet (each kit number, never a kit type),
 * and the recall: kits blocked, affected participants listed, notices to the affected site only, the CLI's subject
 * codes.
 */
import { createHash } from "node:crypto";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { toBase64Url } from "../../anchoring/log/bytes.ts";
import { kitBlindHash } from "../../anchoring/supply/blind-hash.ts";
import { assignKit, dispenseKit } from "../../app/drug-supply/dispensing.server.ts";
import { kitFacts } from "../../app/drug-supply/kit-facts.server.ts";
import { labelSheetPdf } from "../../app/drug-supply/labels.server.ts";
import {
  lotCoa,
  lotsView,
  productNamesArm,
  registerKits,
  registerLot,
  releaseLot,
} from "../../app/drug-supply/lots.server.ts";
import { sealAll } from "../../app/log/sealer.server.ts";
import { affectedByLot, recallLot } from "../../app/drug-supply/recall.server.ts";
import { receiveShipment, sendShipment } from "../../app/drug-supply/shipments.server.ts";
import { runCommand } from "../../app/platform/commands.server.ts";
import { ServiceError } from "../../app/platform/errors.server.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { openTestDatabase, type TestDb } from "../helpers/db.ts";
import { createStaff, STAFF_PASSWORD } from "../helpers/study-staff.ts";
import { SUPPLY_SECRET, type SupplyStudy, supplyStudy } from "../helpers/supply-study.ts";

let t: TestDb;
let s: SupplyStudy;
const STUDY = "LOTS-1";
const rows = async (q: string) => (await t.database.execute(q)) as Record<string, unknown>[];
const pdf = (text: string) => ({
  fileName: `${text}.pdf`,
  bytes: new Uint8Array(Buffer.from(`%PDF-1.4\n% ${text}\n`)),
});
const lot = (lotNumber: string, kitType: string, more: Record<string, unknown> = {}) => ({
  product: "BP-101 10 mg tablets or placebo",
  lotNumber,
  kitType,
  manufacturedOn: "2026-01-10",
  expiresOn: "2030-12-31",
  storageMinC: "2",
  storageMaxC: "8,5",
  dailyUnits: 2,
  ...more,
});

/** The refusal of `p`: its ServiceError's code, field and message. */
async function refusal(p: Promise<unknown>) {
  try {
    await p;
  } catch (err) {
    if (err instanceof ServiceError) return { code: err.code, field: err.field, message: err.message };
    throw err;
  }
  throw new Error("expected a refusal");
}

async function pdfText(data: Uint8Array) {
  const { extractText, getDocumentProxy } = await import("unpdf");
  const { text } = await extractText(await getDocumentProxy(new Uint8Array(data)), { mergePages: true });
  return String(text).replace(/\s+/g, " ");
}

beforeAll(async () => {
  t = await openTestDatabase();
  s = await supplyStudy(t.ctx, STUDY, { participants: 4 });
});

afterAll(async () => {
  await t?.close();
});

describe("lots and kits", () => {
  it("refuses a lot without a committed randomization list, naming the kit type field", async () => {
    await createStudy(t.ctx, { code: "LOTS-0", title: "No list", sites: [{ code: "S1", name: "One" }] }, null);
    const { principals } = await createStaff(t.ctx, "LOTS-0", "lots0.test", [["depot", "depot_manager"]]);
    const r = await refusal(registerLot(t.ctx, principals.depot, "LOTS-0", lot("L-0", "KIT-ZOLVA"), pdf("coa")));
    expect(r).toMatchObject({ code: "invalid", field: "kitType" });
    expect(r.message).toMatch(/no committed randomization list/);
  });

  it("refuses bad input with a message naming the field", async () => {
    const reg = (input: Record<string, unknown>, coa: { fileName: string; bytes: Uint8Array } = pdf("coa-bad")) =>
      refusal(registerLot(t.ctx, s.p.depot, STUDY, input, coa));
    const cases: [Record<string, unknown>, { fileName: string; bytes: Uint8Array } | undefined, string, RegExp][] = [
      [lot("L-X", "KIT-OTHER"), undefined, "kitType", /^Kit type: choose one of the committed design's kit types/],
      [lot("L-X", "KIT-ZOLVA", { product: "KIT-ZOLVA tablets" }), undefined, "product", /^Product: leave the kit/],
      [lot("L-X", "KIT-ZOLVA", { expiresOn: "2026-01-10" }), undefined, "expiresOn", /^Expiry date: .* after the/],
      [
        lot("L-X", "KIT-ZOLVA", { storageMinC: "8.5" }),
        undefined,
        "storageMinC",
        /^Lowest storage temperature: 8.5 °C must be below/,
      ],
      [lot("L-X", "KIT-ZOLVA", { manufacturedOn: "2026-02-30" }), undefined, "manufacturedOn", /not a calendar/],
      [lot("L-X", "KIT-ZOLVA"), { fileName: "e.pdf", bytes: new Uint8Array() }, "coa", /the file is empty/],
      [lot("L-X", "KIT-ZOLVA"), { fileName: "c.docx", bytes: Buffer.from("PK..") }, "coa", /c\.docx is not a PDF/],
      [
        lot("L-X", "KIT-ZOLVA"),
        { fileName: "big.pdf", bytes: new Uint8Array(Buffer.concat([Buffer.from("%PDF-"), Buffer.alloc(20 << 20)])) },
        "coa",
        /^Certificate of analysis: the PDF is larger than 20 MB/,
      ],
    ];
    for (const [input, coa, field, message] of cases) {
      const r = await reg(input, coa);
      expect(r, JSON.stringify(input)).toMatchObject({ code: "invalid", field });
      expect(r.message).toMatch(message);
    }
    await registerLot(t.ctx, s.p.depot, STUDY, lot("L-DUP", "KIT-PLACQ"), pdf("dup"));
    const dup = await reg(lot("L-DUP", "KIT-ZOLVA"), pdf("dup2"));
    expect(dup).toMatchObject({
      code: "conflict",
      field: "lotNumber",
      message: `Lot number: ${STUDY} already has a lot L-DUP`,
    });
    // The product names no arm (words of the design's arm codes and names) and repeats the first lot's text.
    const arm = await reg(lot("L-X", "KIT-ZOLVA", { product: "BP-101 (zolvatrex) 10 mg tablets or placebo" }));
    expect(arm).toMatchObject({ code: "invalid", field: "product" });
    expect(arm.message).toMatch(/^Product: leave the arms' codes and names out of the product name/);
    const other = await reg(lot("L-X", "KIT-PLACQ", { product: "BP-101 20 mg tablets or placebo" }));
    expect(other).toMatchObject({ code: "invalid", field: "product" });
    expect(other.message).toContain(`same product text as its first lot (L-DUP): "BP-101 10 mg tablets or placebo"`);
    const demoArms = [
      { code: "A", name: "Active" },
      { code: "B", name: "Placebo" },
    ];
    expect(productNamesArm("BP-101 10 mg tablets or matching placebo", demoArms)).toBe(false);
    expect(productNamesArm("BP-101 active 10 mg", demoArms)).toBe(true);
    // Blinded roles and the sponsor do not register lots.
    for (const who of [s.p.pharm, s.p.admin])
      expect(await refusal(registerLot(t.ctx, who, STUDY, lot("L-Y", "KIT-ZOLVA"), pdf("y")))).toMatchObject({
        code: "forbidden",
      });
    expect(await rows("SELECT 1 FROM supply_lots WHERE lot_number IN ('L-X','L-Y')")).toHaveLength(0);
  });

  it("releases a lot once, by the sponsor only", async () => {
    await registerLot(t.ctx, s.p.depot, STUDY, lot("L-REL", "KIT-ZOLVA"), pdf("rel"));
    expect(await refusal(releaseLot(t.ctx, s.p.depot, STUDY, "L-REL"))).toMatchObject({ code: "forbidden" });
    const { releaseId } = await releaseLot(t.ctx, s.p.admin, STUDY, "L-REL");
    expect(releaseId).toMatch(/^[0-9a-f-]{36}$/);
    const again = await refusal(releaseLot(t.ctx, s.p.admin, STUDY, "L-REL"));
    expect(again).toMatchObject({ code: "conflict", field: "lotNumber" });
    expect(again.message).toMatch(/^Lot number: lot L-REL was already released on \d{4}-\d{2}-\d{2} by admin person$/);
    expect(await refusal(releaseLot(t.ctx, s.p.admin, STUDY, "L-NONE"))).toMatchObject({ code: "not_found" });
    expect(await rows("SELECT 1 FROM supply_lot_releases")).toHaveLength(1);
  });

  it("registers kits with random unique numbers, 22-character tokens and one blinded entry per kit", async () => {
    await registerLot(t.ctx, s.p.depot, STUDY, lot("L-KITS", "KIT-ZOLVA"), pdf("kits"));
    const { kits } = await registerKits(t.ctx, s.p.depot, STUDY, { lotNumber: "L-KITS", count: 3, units: 30 });
    const more = await registerKits(t.ctx, s.p.depot, STUDY, { lotNumber: "L-KITS", count: 3, units: 30 });
    const all = [...kits, ...more.kits];
    for (const k of all) {
      expect(k.number).toMatch(/^\d{6}$/);
      expect(k.labelToken).toMatch(/^[A-Za-z0-9_-]{22}$/);
    }
    expect(new Set(all.map((k) => k.number)).size).toBe(6);
    expect(new Set(all.map((k) => k.labelToken)).size).toBe(6);
    // Drawn at random, not counted up: six numbers in a row would be a sequence.
    const sorted = all.map((k) => Number(k.number)).sort((a, b) => a - b);
    expect(sorted[5] - sorted[0]).toBeGreaterThan(5);
    const entries = await rows(
      `SELECT k.id, k.number, k.label_token, k.kit_type, k.lot_id, encode(k.blind_nonce, 'base64') AS nonce,
              e.kind, e.payload_text FROM supply_kits k JOIN ledger_entries e ON e.id = k.entry_id
        WHERE k.id IN (${all.map((k) => `'${k.id}'`).join(",")})`,
    );
    expect(entries).toHaveLength(6);
    for (const e of entries) {
      expect(e.kind).toBe("supply.kit_registered");
      const text = String(e.payload_text);
      expect(text).not.toMatch(SUPPLY_SECRET);
      const p = JSON.parse(text);
      expect(p).toMatchObject({ kit: e.id, number: e.number, units: 30, actor: s.userIds.depot });
      const nonce = toBase64Url(Buffer.from(String(e.nonce), "base64"));
      expect(p.blindHash).toBe(
        kitBlindHash(t.ctx.crypto, { kit: String(e.id), lot: String(e.lot_id), kitType: String(e.kit_type), nonce }),
      );
      expect(p.labelTokenHash).toBe(createHash("sha256").update(String(e.label_token), "utf8").digest("hex"));
    }
    expect(
      await refusal(registerKits(t.ctx, s.p.depot, STUDY, { lotNumber: "L-KITS", count: 501, units: 1 })),
    ).toMatchObject({ code: "invalid", field: "count" });
    expect(
      await refusal(registerKits(t.ctx, s.p.pharm, STUDY, { lotNumber: "L-KITS", count: 1, units: 1 })),
    ).toMatchObject({ code: "forbidden" });
  });

  it("registers kits of several lots in one random order, the audit event with counts only", async () => {
    await registerLot(t.ctx, s.p.depot, STUDY, lot("L-MA", "KIT-ZOLVA"), pdf("ma"));
    await registerLot(t.ctx, s.p.depot, STUDY, lot("L-MB", "KIT-PLACQ"), pdf("mb"));
    const two = (a: unknown, b: unknown) => ({
      lots: [
        { lotNumber: "L-MA", count: a },
        { lotNumber: "L-MB", count: b },
      ],
      units: 30,
    });
    const bad = await refusal(registerKits(t.ctx, s.p.depot, STUDY, two(2, 0)));
    expect(bad).toMatchObject({ code: "invalid", field: "count:L-MB" });
    expect(bad.message).toMatch(/^Number of kits of lot L-MB: the number of kits must be at least 1/);
    const { kits } = await registerKits(t.ctx, s.p.depot, STUDY, two(12, "12"));
    expect(kits).toHaveLength(24);
    await sealAll(t.ctx);
    const order = await rows(
      `SELECT l.lot_number FROM supply_kits k JOIN supply_lots l ON l.id = k.lot_id
         JOIN ledger_entries e ON e.id = k.entry_id WHERE l.lot_number IN ('L-MA', 'L-MB') ORDER BY e.seq`,
    );
    expect(order).toHaveLength(24);
    // Lot after lot is 2 runs in the log; a uniform shuffle of 12 + 12 gives 2 runs with probability 2/C(24,12).
    const runs = order.filter((r, i) => i === 0 || r.lot_number !== order[i - 1].lot_number).length;
    expect(runs).toBeGreaterThan(2);
    const [ev] = await rows(
      "SELECT detail FROM audit_events WHERE action = 'supply.kits_registered' ORDER BY id DESC LIMIT 1",
    );
    const detail = typeof ev.detail === "string" ? JSON.parse(ev.detail) : ev.detail;
    expect(detail).toMatchObject({
      count: 24,
      units: 30,
      lots: [
        { lotNumber: "L-MA", count: 12 },
        { lotNumber: "L-MB", count: 12 },
      ],
    });
    for (const k of kits) expect(JSON.stringify(detail)).not.toContain(k.number);
  });

  it("shows lots with counts and kit types only to roles that see them study-wide", async () => {
    const blinded = await lotsView(t.ctx, s.p.pharm, STUDY);
    expect(JSON.stringify(blinded)).not.toMatch(SUPPLY_SECRET);
    const kits = blinded.lots.find((l) => l.lotNumber === "L-KITS");
    // Kits registered, never where a lot's kits are (beside a dispensing it would tell the participant's lot).
    const hidden = { total: 6, atDepot: null, atSites: null, dispensed: null, destroyed: null };
    expect(kits).toMatchObject({ kitType: null, kits: hidden });
    // A site-scoped unblinded pharmacist sees kit types of its site's kits (pharmacy page), not on the lots page.
    const upharm = await lotsView(t.ctx, s.p.upharm, STUDY);
    expect(upharm.seesKitTypes).toBe(false);
    expect(JSON.stringify(upharm)).not.toMatch(SUPPLY_SECRET);
    expect(upharm.lots.find((l) => l.lotNumber === "L-KITS")?.kits).toEqual(hidden);
    for (const who of [s.p.depot, s.p.stat]) {
      const v = await lotsView(t.ctx, who, STUDY);
      const l = v.lots.find((x) => x.lotNumber === "L-KITS");
      expect(l?.kitType).toBe("KIT-ZOLVA");
      expect(l).toMatchObject({ storageMinC: 2, storageMaxC: 8.5 });
      expect(l?.kits).toEqual({ total: 6, atDepot: 6, atSites: 0, dispensed: 0, destroyed: 0 });
    }
  });

  it("serves the certificate of analysis only while it is the file that was sealed", async () => {
    const coa = await lotCoa(t.ctx, s.p.pharm, STUDY, "L-KITS");
    expect(Buffer.from(coa.bytes).toString()).toBe("%PDF-1.4\n% kits\n");
    await t.ctx.db.transaction(async (tx) => {
      await tx.execute(sql.raw("SET LOCAL session_replication_role = replica"));
      await tx.execute(sql`UPDATE supply_lots SET coa_content = ${Buffer.from("%PDF-1.4\n% forged\n")}
        WHERE lot_number = 'L-REL'`);
    });
    const r = await refusal(lotCoa(t.ctx, s.p.depot, STUDY, "L-REL"));
    expect(r.code).toBe("conflict");
    expect(r.message).toMatch(/not the file that was sealed/);
  });

  it("checks each lot, release and recall row against its entry on the lots page", async () => {
    const byLot = async () => new Map((await lotsView(t.ctx, s.p.pharm, STUDY)).lots.map((l) => [l.lotNumber, l]));
    let v = await byLot();
    expect(v.get("L-KITS")?.registered).toMatchObject({ differs: [], seal: { matchesSeal: true } });
    // The certificate altered above: named in words, never shown as sealed.
    expect(v.get("L-REL")?.registered).toMatchObject({
      differs: ["coaContent", "coaContentBytes"],
      words: "the certificate of analysis",
      seal: { matchesSeal: false },
    });
    expect(v.get("L-REL")?.released).toMatchObject({ differs: [], seal: { matchesSeal: true } });
    const setActor = (id: string) =>
      t.ctx.db.transaction(async (tx) => {
        await tx.execute(sql.raw("SET LOCAL session_replication_role = replica"));
        await tx.execute(sql`UPDATE supply_lot_releases SET actor_user_id = ${id}
          WHERE lot_id = (SELECT id FROM supply_lots WHERE lot_number = 'L-REL')`);
      });
    await setActor(s.userIds.depot);
    v = await byLot();
    expect(v.get("L-REL")?.released).toMatchObject({ differs: ["actor"], seal: { matchesSeal: false } });
    await setActor(s.userIds.admin);
    expect((await byLot()).get("L-REL")?.released?.seal.matchesSeal).toBe(true);
  });

  it("prints a label sheet with each kit number and never a kit type", async () => {
    const sheet = await labelSheetPdf(t.ctx, s.p.depot, STUDY, { lotNumber: "L-KITS" });
    expect(Buffer.from(sheet.subarray(0, 5)).toString()).toBe("%PDF-");
    const text = await pdfText(sheet);
    const numbers = (
      await rows(
        "SELECT k.number FROM supply_kits k JOIN supply_lots l ON l.id = k.lot_id WHERE l.lot_number = 'L-KITS'",
      )
    ).map((r) => String(r.number));
    expect(numbers).toHaveLength(6);
    for (const n of numbers) expect(text).toContain(`Kit ${n}`);
    expect(text).toContain("Investigational product - for clinical trial use only");
    expect(text).toContain(`Study ${STUDY}`);
    expect(text).not.toMatch(SUPPLY_SECRET);
    expect(text).not.toContain("L-KITS");
    expect(await refusal(labelSheetPdf(t.ctx, s.p.pharm, STUDY, { lotNumber: "L-KITS" }))).toMatchObject({
      code: "forbidden",
    });
  });
});

describe("recall", () => {
  it("blocks the lot's kits, lists the participants who received one and tells the affected site only", async () => {
    const type = s.kitTypeOf[s.subjects[0]];
    const receivers = s.subjects.filter((x) => s.kitTypeOf[x] === type);
    await registerLot(t.ctx, s.p.depot, STUDY, lot("L-RC", type), pdf("rc"));
    await registerKits(t.ctx, s.p.depot, STUDY, { lotNumber: "L-RC", count: receivers.length + 2, units: 30 });
    await releaseLot(t.ctx, s.p.admin, STUDY, "L-RC");
    const sent = await sendShipment(t.ctx, s.p.depot, STUDY, {
      site: "S1",
      depot: "DEPOT-EU",
      fromLots: [{ lotNumber: "L-RC", count: receivers.length + 1 }],
    });
    await receiveShipment(t.ctx, s.p.pharm, STUDY, sent.number, { temperatureMinC: "4", temperatureMaxC: "6" });
    const dispensed: Record<string, string> = {};
    for (const subject of receivers) {
      const { kit } = await assignKit(t.ctx, s.p.pharm, STUDY, subject);
      dispensed[subject] = (await dispenseKit(t.ctx, s.p.pharm, STUDY, subject, { kit })).kit;
    }
    const left = sent.kits.find((k) => !Object.values(dispensed).includes(k)) as string;

    expect(await refusal(recallLot(t.ctx, s.p.depot, STUDY, { lotNumber: "L-RC", reason: "x" }))).toMatchObject({
      code: "forbidden",
    });
    expect(await refusal(recallLot(t.ctx, s.p.admin, STUDY, { lotNumber: "L-RC", reason: " " }))).toMatchObject({
      code: "invalid",
      field: "reason",
    });
    const r = await recallLot(t.ctx, s.p.admin, STUDY, { lotNumber: "L-RC", reason: "Particles found in vials" });
    // Blocked: the kit on hand at S1 and the one still at the depot; the dispensed ones are listed by participant.
    expect(r.kitsBlocked).toBe(2);
    expect(r.sitesNotified).toBe(1);
    expect(r.subjects.map((x) => x.subject)).toEqual([...receivers].sort());
    expect(r.subjects.every((x) => x.site === "S1" && x.kit === dispensed[x.subject])).toBe(true);

    const facts = await kitFacts(t.ctx.db, null, { numbers: sent.kits });
    expect(facts.every((f) => f.lotRecalled)).toBe(true);
    const blocked = await refusal(dispenseKit(t.ctx, s.p.pharm, STUDY, receivers[0], { kit: left }));
    expect(blocked.message).toMatch(/recalled/);
    expect(await refusal(releaseLot(t.ctx, s.p.admin, STUDY, "L-RC"))).toMatchObject({ code: "conflict" });
    const twice = await refusal(recallLot(t.ctx, s.p.admin, STUDY, { lotNumber: "L-RC", reason: "again" }));
    expect(twice.message).toMatch(/^Lot number: lot L-RC was recalled on .* by admin person: recalling it again/);

    const [payload] = await rows(
      `SELECT e.payload_text FROM supply_lot_recalls r JOIN ledger_entries e ON e.id = r.entry_id
        WHERE r.id = '${r.recallId}'`,
    );
    expect(JSON.parse(String(payload.payload_text))).toMatchObject({
      kitsBlocked: 2,
      subjectsAffected: receivers.length,
      sitesNotified: 1,
      actor: s.userIds.admin,
    });
    expect(String(payload.payload_text)).not.toContain("Particles");

    const notices = await rows(
      `SELECT to_address, subject, body FROM outbox WHERE kind = 'lot_recalled' ORDER BY to_address`,
    );
    const to = notices.map((n) => String(n.to_address));
    const site1 = ["coord", "inv", "pharm", "upharm"].map((k) => `${k}@${STUDY.toLowerCase()}.test`);
    expect(to).toEqual(expect.arrayContaining(site1));
    expect(to).not.toContain(`pharm2@${STUDY.toLowerCase()}.test`);
    // Everyone told is staff of S1 (the consent helper's staff too); nobody of S2 or study-wide.
    const elsewhere = await rows(
      `SELECT DISTINCT o.to_address FROM outbox o WHERE o.kind = 'lot_recalled' AND NOT EXISTS (
         SELECT 1 FROM users u JOIN memberships m ON m.user_id = u.id JOIN sites si ON si.id = m.site_id
          WHERE u.email = o.to_address AND si.code = 'S1')`,
    );
    expect(elsewhere).toEqual([]);
    for (const n of notices) {
      expect(String(n.body)).not.toMatch(SUPPLY_SECRET);
      expect(String(n.body)).toContain(left);
      for (const subject of receivers) expect(String(n.body)).toContain(subject);
    }

    expect((await affectedByLot(t.ctx, s.p.admin, STUDY, "L-RC")).map((x) => x.subject)).toEqual([...receivers].sort());
    expect(await refusal(affectedByLot(t.ctx, s.p.pharm, STUDY, "L-RC"))).toMatchObject({ code: "forbidden" });
    // A site-scoped unblinded pharmacist lists its own sites' participants only.
    expect((await affectedByLot(t.ctx, s.p.upharm, STUDY, "L-RC")).map((x) => x.subject)).toEqual(
      [...receivers].sort(),
    );
    const { principals } = await createStaff(t.ctx, STUDY, "lots1-s2.test", [
      ["upharm2", "unblinded_pharmacist", "S2"],
    ]);
    expect(await affectedByLot(t.ctx, principals.upharm2, STUDY, "L-RC")).toEqual([]);
    const blinded = await lotsView(t.ctx, s.p.pharm, STUDY);
    expect(blinded.lots.find((l) => l.lotNumber === "L-RC")?.recalled).toMatchObject({ kitsBlocked: 2 });
    expect(JSON.stringify(blinded)).not.toMatch(SUPPLY_SECRET);
  });

  it("shows a blinded pharmacist the hub and the lots page without a kit type or a kit's lot", async () => {
    const { login } = await import("../../app/accounts/auth.server.ts");
    const { sessionCookie } = await import("../../app/platform/session.server.ts");
    const signedIn = await login(t.ctx, `pharm@${STUDY.toLowerCase()}.test`, STAFF_PASSWORD, {
      ip: null,
      userAgent: null,
    });
    const cookie = await sessionCookie(t.ctx).serialize(signedIn.token);
    const args = (path: string, lot?: string) =>
      ({
        request: new Request(`http://portal.test/studies/${STUDY}/supply${path}`, { headers: { cookie } }),
        context: { ctx: t.ctx },
        params: { code: STUDY, lot },
      }) as never;
    const hub = await (await import("../../app/routes/studies/studies.$code.supply.tsx")).loader(args(""));
    const hubText = await hub.text();
    expect(hubText).not.toMatch(SUPPLY_SECRET);
    const h = JSON.parse(hubText);
    expect(h.depot).toBeNull();
    expect(h.sites.map((x: { code: string }) => x.code)).toEqual(["S1"]);
    expect(h.sites[0].kits).toMatchObject({
      onHand: 1,
      dispensed: s.subjects.filter((x) => s.kitTypeOf[x] === s.kitTypeOf[s.subjects[0]]).length,
    });
    expect(h.abilities.join(" ")).toMatch(/Dispense kits/);
    const page = await (await import("../../app/routes/studies/studies.$code.supply_.lots.tsx")).loader(args("/lots"));
    const text = await page.text();
    expect(text).not.toMatch(SUPPLY_SECRET);
    const l = JSON.parse(text);
    expect(l).toMatchObject({ seesKitTypes: false, kitTypes: [], affected: {}, canManage: false, canRelease: false });
    // Kit numbers never appear next to a lot for a blinded role.
    for (const n of await rows("SELECT number FROM supply_kits"))
      expect(text.replace(/[0-9a-f]{64}/g, "")).not.toContain(String(n.number));
    const labels = await import("../../app/routes/studies/studies.$code.supply_.lots_.$lot.labels[.pdf].ts");
    await expect(labels.loader(args("/lots/L-RC/labels.pdf", "L-RC"))).rejects.toMatchObject({ status: 403 });
    const coa = await import("../../app/routes/studies/studies.$code.supply_.lots_.$lot.coa.ts");
    const c = await coa.loader(args("/lots/L-RC/coa", "L-RC"));
    expect(c.status).toBe(200);
    expect(c.headers.get("content-type")).toBe("application/pdf");
  });

  it("answers `trialseal lots affected` with the subject codes, exit 2 for an unknown lot or study", async () => {
    const out = await runCommand(t.ctx, "lots.affected", { study: STUDY, lot: "L-RC" });
    const receivers = s.subjects.filter((x) => s.kitTypeOf[x] === s.kitTypeOf[s.subjects[0]]).sort();
    expect(out).toEqual({ stdout: receivers.map((x) => `${x}\n`).join("") });
    const none = await runCommand(t.ctx, "lots.affected", { study: STUDY, lot: "L-KITS" });
    expect(none).toEqual({ stdout: "" });
    const unknown = await runCommand(t.ctx, "lots.affected", { study: STUDY, lot: "NOPE" });
    expect(unknown).toMatchObject({ stdout: "", exitCode: 2 });
    expect(unknown.stderr).toMatch(/^trialseal: Lot number: LOTS-1 has no lot NOPE\n$/);
    expect(await runCommand(t.ctx, "lots.affected", { study: "NOPE-9", lot: "L-RC" })).toMatchObject({ exitCode: 2 });
    const list = await runCommand(t.ctx, "lots.list", { study: STUDY });
    expect(list.stdout).toMatch(/^L-RC\t2030-12-31\trecalled \d{4}-\d{2}-\d{2}\t/m);
    expect(list.stdout).not.toMatch(SUPPLY_SECRET);
  });
});

describe("integrity audit", () => {
  it("finds every lot, kit, release and recall row as sealed, and names the altered certificate", async () => {
    const { runIntegrityAudit } = await import("../../app/integrity-audit/integrity-audit.server.ts");
    const r = await runIntegrityAudit(t.ctx, { study: STUDY });
    const tamper = r.findings.filter((f) => f.severity === "tamper");
    // H4's checks (drug-supply-checks.server.ts) agree with these services: only the certificate altered above.
    expect(tamper.length).toBeGreaterThan(0);
    for (const f of tamper)
      expect(f).toMatchObject({ table: "supply_lots", message: expect.stringContaining("L-REL") });
  });
});
