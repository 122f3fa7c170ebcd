/**
 * A scanned kit label (issue 21, ADR 0059/0060/0065) on PGlite and PostgreSQL: a barcode scanner types the label's QR
 * content, the public-check address `<any scheme and host>/kits/<label token>`, into a kit field; dispensing,
 * returns, destruction and reconciliation take it as the kit of THIS study with that label, exactly as if its number
 * had been typed. The label of another study's kit is refused exactly like an unknown label (not found, naming the
 * field, nothing about the other study); a damaged address is refused as unreadable; a bare token is not taken for a
 * label (it could be a typed kit number); nothing is written on a refusal and no message names a kit type.
 */
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { recordDestruction } from "../../app/drug-supply/destruction.server.ts";
import { assignKit, dispenseKit, returnKit } from "../../app/drug-supply/dispensing.server.ts";
import { registerKits, registerLot, releaseLot } from "../../app/drug-supply/lots.server.ts";
import { expectedOnHand, reconcileSite } from "../../app/drug-supply/reconciliation.server.ts";
import { receiveShipment, sendShipment } from "../../app/drug-supply/shipments.server.ts";
import { ServiceError } from "../../app/platform/errors.server.ts";
import { todayIn } from "../../app/records/records.server.ts";
import { engineUnderTest, openTestDatabase, type TestDb } from "../helpers/db.ts";
import { coaFile, lotInput } from "../helpers/supply-life.ts";
import { SUPPLY_SECRET, type SupplyStudy, supplyStudy } from "../helpers/supply-study.ts";

const STUDY = "SCAN-1";
const OTHER = "SCAN-2";
let t: TestDb;
let s: SupplyStudy;
/** This study's kits at S1: number -> label token. */
const tokenOf: Record<string, string> = {};
/** A kit of the other study: its number and label token. */
let foreign: { number: string; token: string };

/** What the scanner types: the label's QR content, as printed for some public address. */
const address = (token: string, base = "https://trialseal.example") => `${base}/kits/${token}`;
const rows = async (q: string) => (await t.database.execute(q)) as Record<string, unknown>[];
const count = async (q: string) => Number((await rows(q))[0].n);
const dispensings = () =>
  count(`SELECT count(*)::int AS n FROM supply_dispensings d JOIN studies s ON s.id = d.study_id
    WHERE s.code = '${STUDY}'`);
const refusedAudits = () =>
  rows(`SELECT detail FROM audit_events WHERE action = 'supply.dispense_refused' ORDER BY at, id`);

async function refusal(p: Promise<unknown>) {
  try {
    await p;
  } catch (err) {
    if (err instanceof ServiceError) return { code: err.code, field: err.field, message: err.message };
    throw err;
  }
  throw new Error("expected a refusal");
}

beforeAll(async () => {
  t = await openTestDatabase();
  s = await supplyStudy(t.ctx, STUDY, { participants: 2 });
  const o = await supplyStudy(t.ctx, OTHER, { participants: 0 });
  const numbers: string[] = [];
  for (const [lot, type] of [
    ["SZ", "KIT-ZOLVA"],
    ["SP", "KIT-PLACQ"],
  ]) {
    await registerLot(t.ctx, s.p.depot, STUDY, lotInput(lot, type), coaFile);
    await releaseLot(t.ctx, s.p.admin, STUDY, lot);
    for (const k of (await registerKits(t.ctx, s.p.depot, STUDY, { lotNumber: lot, count: 3, units: 30 })).kits) {
      tokenOf[k.number] = k.labelToken;
      numbers.push(k.number);
    }
  }
  const sent = await sendShipment(t.ctx, s.p.depot, STUDY, { site: "S1", depot: "DEPOT-EU", kits: numbers });
  await receiveShipment(t.ctx, s.p.pharm, STUDY, sent.number, { temperatureMinC: "4", temperatureMaxC: "6" });
  await registerLot(t.ctx, o.p.depot, OTHER, lotInput("OZ", "KIT-ZOLVA"), coaFile);
  await releaseLot(t.ctx, o.p.admin, OTHER, "OZ");
  const [k] = (await registerKits(t.ctx, o.p.depot, OTHER, { lotNumber: "OZ", count: 1, units: 30 })).kits;
  foreign = { number: k.number, token: k.labelToken };
});

afterAll(async () => {
  await t?.close();
});

describe(`a scanned kit label on ${engineUnderTest()}`, () => {
  it("dispenses the kit whose label is scanned, as if its number were typed", async () => {
    const subject = s.subjects[0];
    const { kit } = await assignKit(t.ctx, s.p.pharm, STUDY, subject);
    // Another kit on the shelf, not assigned to the subject: refused alike whether scanned or typed.
    const wrong = Object.keys(tokenOf).find((n) => n !== kit)!;
    const typed = await refusal(dispenseKit(t.ctx, s.p.pharm, STUDY, subject, { kit: wrong }));
    const scanned = await refusal(
      dispenseKit(t.ctx, s.p.pharm, STUDY, subject, { kit: address(tokenOf[wrong], "http://localhost:3000") }),
    );
    expect(typed).toMatchObject({ code: "conflict", field: "kit" });
    expect(scanned).toEqual(typed);
    expect(scanned.message).not.toMatch(SUPPLY_SECRET);
    expect(scanned.message).not.toContain(tokenOf[wrong]);
    // The scanner's Enter and a public address under a path prefix do not matter.
    const d = await dispenseKit(t.ctx, s.p.pharm, STUDY, subject, {
      kit: ` ${address(tokenOf[kit], "HTTPS://check.sponsor.example/trialseal")}\r\n`,
    });
    expect(d.kit).toBe(kit);
    const [row] = await rows(
      `SELECT e.payload_text FROM supply_dispensings d JOIN ledger_entries e ON e.id = d.entry_id
        WHERE d.id = '${d.dispensingId}'`,
    );
    expect(JSON.parse(String(row.payload_text))).toMatchObject({ number: kit, subject });
    expect(String(row.payload_text)).not.toContain(tokenOf[kit]);
  });

  it("refuses another study's label exactly like an unknown one, naming the field and nothing else", async () => {
    const subject = s.subjects[1];
    const { kit } = await assignKit(t.ctx, s.p.pharm, STUDY, subject);
    const before = { rows: await dispensings(), refused: (await refusedAudits()).length };
    const unknownToken = randomBytes(16).toString("base64url");
    const theirs = await refusal(dispenseKit(t.ctx, s.p.pharm, STUDY, subject, { kit: address(foreign.token) }));
    const unknown = await refusal(dispenseKit(t.ctx, s.p.pharm, STUDY, subject, { kit: address(unknownToken) }));
    expect(theirs).toMatchObject({ code: "not_found", field: "kit", message: expect.stringMatching(/^kit: /) });
    expect(theirs.message).toMatch(/label/);
    expect(theirs.message).toContain(STUDY);
    expect(unknown).toEqual(theirs);
    for (const leak of [OTHER, foreign.number, foreign.token, unknownToken, "Supply SCAN-2"])
      expect(theirs.message).not.toContain(leak);
    expect(theirs.message).not.toMatch(SUPPLY_SECRET);
    // Returns, destruction and reconciliation say the same of it, each naming its own field.
    expect(
      await refusal(
        returnKit(t.ctx, s.p.pharm, STUDY, {
          kit: address(foreign.token),
          unitsReturned: "1",
          returnedOn: todayIn("UTC"),
        }),
      ),
    ).toEqual(theirs);
    const destroy = await refusal(
      recordDestruction(t.ctx, s.p.pharm, STUDY, { site: "S1", kits: [address(foreign.token)], method: "burnt" }),
    );
    expect(destroy).toMatchObject({ code: "not_found", field: "kits", message: expect.stringMatching(/^kits: /) });
    expect(destroy.message).not.toContain(foreign.number);
    const recon = await refusal(
      reconcileSite(t.ctx, s.p.mon, STUDY, { site: "S1", counted: `${kit}\n${address(foreign.token)}` }),
    );
    expect(recon).toMatchObject({ code: "not_found", field: "counted", message: expect.stringMatching(/^counted: /) });
    expect(recon.message).not.toContain(foreign.number);
    // A damaged scan (a token cut short) is unreadable, and says how to go on.
    const damaged = await refusal(
      dispenseKit(t.ctx, s.p.pharm, STUDY, subject, { kit: address(tokenOf[kit].slice(0, 15)) }),
    );
    expect(damaged).toMatchObject({ code: "invalid", field: "kit", message: expect.stringMatching(/scan|type/) });
    // A bare token is not taken for a label: it could be a typed kit number; the assigned kit is not dispensed by it.
    expect(await refusal(dispenseKit(t.ctx, s.p.pharm, STUDY, subject, { kit: tokenOf[kit] }))).toMatchObject({
      field: "kit",
    });
    expect(await dispensings()).toBe(before.rows);
    // Refusals of a label not of this study are audited (a counterfeit label shows), without the token.
    const refused = await refusedAudits();
    expect(refused.length - before.refused).toBeGreaterThanOrEqual(2);
    const text = JSON.stringify(refused);
    for (const leak of [foreign.token, foreign.number, unknownToken]) expect(text).not.toContain(leak);
    expect(text).not.toMatch(SUPPLY_SECRET);
    // Still dispensable by its scanned label.
    expect((await dispenseKit(t.ctx, s.p.pharm, STUDY, subject, { kit: address(tokenOf[kit]) })).kit).toBe(kit);
  });

  it("returns, destroys and reconciles kits by their scanned labels", async () => {
    const kit = (
      await rows(
        `SELECT k.number FROM supply_dispensings d JOIN supply_kits k ON k.id = d.kit_id
        JOIN participants p ON p.id = d.participant_id WHERE p.subject_code = '${s.subjects[0]}'`,
      )
    )[0].number as string;
    const r = await returnKit(t.ctx, s.p.pharm, STUDY, {
      kit: address(tokenOf[kit]),
      unitsReturned: "30",
      returnedOn: todayIn("UTC"),
    });
    expect(r.kit).toBe(kit);
    const { destructionId } = await recordDestruction(t.ctx, s.p.pharm, STUDY, {
      site: "S1",
      kits: [`${address(tokenOf[kit])}\n`],
      method: "incineration",
    });
    const [row] = await rows(
      `SELECT e.payload_text FROM supply_destructions x JOIN ledger_entries e ON e.id = x.entry_id
        WHERE x.id = '${destructionId}'`,
    );
    expect(JSON.parse(String(row.payload_text))).toMatchObject({ kits: [kit] });
    const { onHand, returned } = await expectedOnHand(t.ctx, STUDY, "S1");
    const expected = [...onHand, ...returned].sort();
    expect(expected.length).toBeGreaterThan(2);
    // Half typed, half scanned (one a line, as a scanner's Enter leaves them).
    const counted = expected.map((n, i) => (i % 2 ? address(tokenOf[n]) : n)).join("\n");
    const rec = await reconcileSite(t.ctx, s.p.mon, STUDY, { site: "S1", counted });
    expect(rec).toMatchObject({ counted: expected, missing: [], unexpected: [] });
    expect(JSON.stringify([r, rec])).not.toMatch(SUPPLY_SECRET);
  });
});
