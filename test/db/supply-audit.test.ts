/**
 * The integrity audit of the drug supply (issue 21, ADR 0061) on PGlite and PostgreSQL: clean after a full kit life
 * (test/helpers/supply-life.ts); then, behind the portal's back (the append-only triggers off), a changed row in every
 * supply table, rows inserted with no entry, rows deleted (a dispensing, a kit, a shipment's kit link), a wrong kit
 * type dispensed, a witness who is the recorder, a kit of a recalled lot dispensed after the recall: each is named
 * with its table and row, and no message names a kit type.
 */
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AuditFinding } from "../../anchoring/verifier/log-auditor.ts";
import { runIntegrityAudit } from "../../app/integrity-audit/integrity-audit.server.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { openTestDatabase, type TestDb } from "../helpers/db.ts";
import { type KitLife, kitLife } from "../helpers/supply-life.ts";
import { SUPPLY_SECRET, type SupplyStudy, supplyStudy } from "../helpers/supply-study.ts";

let t: TestDb;
let s: SupplyStudy;
let life: KitLife;
const STUDY = "SAU-1";
const rows = async (q: string) => (await t.database.execute(q)) as Record<string, unknown>[];
const one = async (q: string) => (await rows(q))[0] as Record<string, unknown>;
const lit = (v: unknown) => (v === null || v === undefined ? "NULL" : `'${String(v).replace(/'/g, "''")}'`);
async function tamper(statements: string[]) {
  await t.ctx.db.transaction(async (tx) => {
    await tx.execute(sql.raw("SET LOCAL session_replication_role = replica"));
    for (const x of statements) await tx.execute(sql.raw(x));
  });
}
const audit = async (study = STUDY) =>
  (await runIntegrityAudit(t.ctx, { study })).findings.filter((f) => f.severity === "tamper");
/** The DATA_ROW_MISMATCH finding of `field` in `table` about row `id` (exactly one). */
function mismatch(f: AuditFinding[], table: string, id: string, field: string) {
  const hits = f.filter((x) => x.code === "DATA_ROW_MISMATCH" && x.table === table && x.id === id && x.field === field);
  expect(hits, `${table} ${id} ${field} in ${JSON.stringify(f, null, 1)}`).toHaveLength(1);
  expect(hits[0].message).toContain(table);
  return hits[0];
}
const SEALED_TABLES = [
  "supply_lots",
  "supply_lot_releases",
  "supply_lot_recalls",
  "supply_kits",
  "supply_shipments",
  "supply_shipment_receipts",
  "supply_quarantine_decisions",
  "supply_kit_assignments",
  "supply_dispensings",
  "supply_returns",
  "supply_destructions",
  "supply_destruction_witnesses",
  "supply_reconciliations",
];
const kitId = async (number: string) => String((await one(`SELECT id FROM supply_kits WHERE number = '${number}'`)).id);
/** The finding of `code` in `table` about row `id` (exactly one). */
function named(f: AuditFinding[], code: string, table: string, id: string) {
  const hits = f.filter((x) => x.code === code && x.table === table && x.id === id);
  expect(hits, `${code} ${table} ${id} in ${JSON.stringify(f, null, 1)}`).toHaveLength(1);
  expect(hits[0].message).toContain(table);
  return hits[0];
}

beforeAll(async () => {
  t = await openTestDatabase();
  s = await supplyStudy(t.ctx, STUDY, { participants: 2 });
  life = await kitLife(t.ctx, s, "LAU");
}, 60_000);

afterAll(async () => {
  await t?.close();
});

describe("the drug supply in the integrity audit", () => {
  it("is clean after a full kit life", async () => {
    expect(await audit()).toEqual([]);
  });

  it("names a changed row in every supply table, a wrong kit type, a recalled lot's kit dispensed", async () => {
    const [d0, d1] = life.dispensed;
    const ids = {
      supply_lots: await one(`SELECT id, product FROM supply_lots WHERE lot_number = '${life.lots.A}'`),
      supply_lot_releases: await one(
        `SELECT r.id, r.actor_user_id FROM supply_lot_releases r JOIN supply_lots l ON l.id = r.lot_id
         WHERE l.lot_number = '${life.lots.A}'`,
      ),
      supply_lot_recalls: await one("SELECT id, reason FROM supply_lot_recalls"),
      supply_kits: await one(`SELECT id, kit_type, lot_id FROM supply_kits WHERE number = '${d1.kit}'`),
      supply_shipments: await one("SELECT id, depot FROM supply_shipments"),
      supply_shipment_receipts: await one("SELECT id, temperature_max_tenths FROM supply_shipment_receipts"),
      supply_quarantine_decisions: await one("SELECT id, reason FROM supply_quarantine_decisions"),
      supply_dispensings: await one(`SELECT id, visit FROM supply_dispensings WHERE kit_id = '${await kitId(d0.kit)}'`),
      supply_returns: await one("SELECT id, units_returned FROM supply_returns"),
      supply_destructions: await one("SELECT id, method, actor_user_id FROM supply_destructions"),
      supply_destruction_witnesses: await one("SELECT id, actor_user_id FROM supply_destruction_witnesses"),
      supply_reconciliations: await one("SELECT id, counted FROM supply_reconciliations"),
    };
    const other = String(ids.supply_kits.kit_type) === "KIT-ZOLVA" ? "KIT-PLACQ" : "KIT-ZOLVA";
    const recalled = await one(`SELECT id FROM supply_lots WHERE lot_number = '${life.lots.C}'`);
    const set = (table: keyof typeof ids, column: string, value: unknown) =>
      `UPDATE ${table} SET ${column} = ${lit(value)} WHERE id = '${ids[table].id}'`;
    await tamper([
      set("supply_lots", "product", "ZX-999 relabelled"),
      set("supply_lot_releases", "actor_user_id", s.userIds.mon),
      set("supply_lot_recalls", "reason", "no reason"),
      set("supply_kits", "kit_type", other), // a wrong kit type dispensed to d1.subject
      set("supply_kits", "lot_id", recalled.id), // and of the lot recalled before d1's dispensing
      set("supply_shipments", "depot", "DEPOT-XX"),
      set("supply_shipment_receipts", "temperature_max_tenths", 60),
      set("supply_quarantine_decisions", "reason", "because"),
      set("supply_dispensings", "visit", "V9"),
      set("supply_returns", "units_returned", 13),
      set("supply_destructions", "method", "down the drain"),
      set("supply_destruction_witnesses", "actor_user_id", ids.supply_destructions.actor_user_id),
      set("supply_reconciliations", "counted", 99),
    ]);
    const f = await audit();
    const fields: Record<keyof typeof ids, string> = {
      supply_lots: "product",
      supply_lot_releases: "actor",
      supply_lot_recalls: "reason",
      supply_kits: "blindHash",
      supply_shipments: "depot",
      supply_shipment_receipts: "temperatureMaxTenths",
      supply_quarantine_decisions: "reason",
      supply_dispensings: "visit",
      supply_returns: "unitsReturned",
      supply_destructions: "method",
      supply_destruction_witnesses: "actor",
      supply_reconciliations: "counted",
    };
    for (const [table, field] of Object.entries(fields) as [keyof typeof ids, string][]) {
      const x = named(f, "DATA_ROW_MISMATCH", table, String(ids[table].id));
      expect(x.field).toBe(field);
      expect(x.message).toContain(String(ids[table].id));
    }
    const dispensing1 = await one(`SELECT id FROM supply_dispensings WHERE kit_id = '${ids.supply_kits.id}'`);
    const wrong = named(f, "KIT_TYPE_MISMATCH", "supply_dispensings", String(dispensing1.id));
    expect(wrong.message).toContain(`kit ${d1.kit}`);
    expect(wrong.message).toContain(d1.subject);
    const late = named(f, "DISPENSED_AFTER_RECALL", "supply_dispensings", String(dispensing1.id));
    expect(late.message).toContain(`kit ${d1.kit}`);
    named(f, "WITNESS_IS_RECORDER", "supply_destruction_witnesses", String(ids.supply_destruction_witnesses.id));
    for (const x of f) expect(x.message).not.toMatch(SUPPLY_SECRET);

    // Put back: clean again.
    await tamper([
      set("supply_lots", "product", ids.supply_lots.product),
      set("supply_lot_releases", "actor_user_id", ids.supply_lot_releases.actor_user_id),
      set("supply_lot_recalls", "reason", ids.supply_lot_recalls.reason),
      set("supply_kits", "kit_type", ids.supply_kits.kit_type),
      set("supply_kits", "lot_id", ids.supply_kits.lot_id),
      set("supply_shipments", "depot", ids.supply_shipments.depot),
      set("supply_shipment_receipts", "temperature_max_tenths", ids.supply_shipment_receipts.temperature_max_tenths),
      set("supply_quarantine_decisions", "reason", ids.supply_quarantine_decisions.reason),
      set("supply_dispensings", "visit", ids.supply_dispensings.visit),
      set("supply_returns", "units_returned", ids.supply_returns.units_returned),
      set("supply_destructions", "method", ids.supply_destructions.method),
      set("supply_destruction_witnesses", "actor_user_id", ids.supply_destruction_witnesses.actor_user_id),
      set("supply_reconciliations", "counted", ids.supply_reconciliations.counted),
    ]);
    expect(await audit()).toEqual([]);
  });

  it("names rows inserted with no entry: a kit, a shipment's kit link, a dispensing", async () => {
    const forged = "00000000-0000-4000-8000-00000000f001";
    const forgedDispensing = "00000000-0000-4000-8000-00000000f002";
    const noEntry = "00000000-0000-4000-8000-00000000f003";
    const depotKit = await kitId(life.depotKit);
    const shipment = await one("SELECT id FROM supply_shipments");
    await tamper([
      `INSERT INTO supply_kits (id, study_id, lot_id, number, kit_type, blind_nonce, units, label_token, entry_id)
       SELECT '${forged}', study_id, lot_id, 'FORGED-1', kit_type, blind_nonce, units, 'forgedforgedforgedforg',
              '${noEntry}' FROM supply_kits WHERE id = '${depotKit}'`,
      `INSERT INTO supply_shipment_kits (study_id, shipment_id, kit_id)
       SELECT study_id, '${shipment.id}', id FROM supply_kits WHERE id = '${depotKit}'`,
      `INSERT INTO supply_dispensings (id, study_id, kit_id, participant_id, allocation_id, site_id, entry_id)
       SELECT '${forgedDispensing}', study_id, '${forged}', participant_id, allocation_id, site_id, '${noEntry}'
       FROM supply_dispensings LIMIT 1`,
    ]);
    const f = await audit();
    named(f, "DATA_ROW_UNLOGGED", "supply_kits", forged);
    named(f, "DATA_ROW_UNLOGGED", "supply_dispensings", forgedDispensing);
    const link = named(f, "DATA_ROW_UNLOGGED", "supply_shipment_kits", `${shipment.id}/${depotKit}`);
    expect(link.message).toContain(`kit ${life.depotKit}`);
    expect(link.message).toContain(`shipment ${life.shipment.number}`);
    for (const x of f) expect(x.message).not.toMatch(SUPPLY_SECRET);
    await tamper([
      `DELETE FROM supply_dispensings WHERE id = '${forgedDispensing}'`,
      `DELETE FROM supply_shipment_kits WHERE kit_id = '${depotKit}'`,
      `DELETE FROM supply_kits WHERE id = '${forged}'`,
    ]);
  });

  it("names assignments, logger fields, the counted list, tokens, dates and a row moved to another study", async () => {
    const [a0, a1] = await rows(
      `SELECT a.id, a.participant_id, k.number FROM supply_kit_assignments a JOIN supply_kits k ON k.id = a.kit_id
       ORDER BY a.created_at, a.id`,
    );
    const first = Object.fromEntries(
      await Promise.all(
        SEALED_TABLES.map(async (x) => [x, String((await one(`SELECT min(id::text) AS id FROM ${x}`)).id)]),
      ),
    ) as Record<string, string>;
    const receipt = await one("SELECT id FROM supply_shipment_receipts");
    const reconciliation = await one("SELECT id, counted_text FROM supply_reconciliations");
    const dispensing = await one("SELECT id FROM supply_dispensings ORDER BY id LIMIT 1");
    const forged = "00000000-0000-4000-8000-00000000f004";
    await tamper([
      ...SEALED_TABLES.map((x) => `UPDATE ${x} SET actor_token_name = 'forged' WHERE id = '${first[x]}'`),
      `UPDATE supply_kit_assignments SET visit = 'V9' WHERE id = '${a0.id}'`,
      `UPDATE supply_kit_assignments SET participant_id = '${a0.participant_id}' WHERE id = '${a1.id}'`,
      `INSERT INTO supply_kit_assignments (id, study_id, kit_id, participant_id, site_id, entry_id)
       SELECT '${forged}', study_id, kit_id, participant_id, site_id, '${forged}' FROM supply_kit_assignments
       WHERE id = '${a0.id}'`,
      `UPDATE supply_shipment_receipts SET logger_bytes = 5, logger_file_name = 'x.csv' WHERE id = '${receipt.id}'`,
      `UPDATE supply_reconciliations SET counted_text = '[]' WHERE id = '${reconciliation.id}'`,
      `UPDATE supply_dispensings SET created_at = created_at - interval '2 days' WHERE id = '${dispensing.id}'`,
    ]);
    const f = await audit();
    for (const x of SEALED_TABLES) mismatch(f, x, first[x], "tokenName");
    mismatch(f, "supply_kit_assignments", String(a0.id), "visit");
    expect(mismatch(f, "supply_kit_assignments", String(a1.id), "subject").message).toContain(`kit ${a1.number}`);
    named(f, "DATA_ROW_UNLOGGED", "supply_kit_assignments", forged);
    mismatch(f, "supply_shipment_receipts", String(receipt.id), "loggerBytes");
    mismatch(f, "supply_shipment_receipts", String(receipt.id), "loggerName");
    mismatch(f, "supply_reconciliations", String(reconciliation.id), "countedText");
    expect(mismatch(f, "supply_dispensings", String(dispensing.id), "createdAt").message).toContain("before");
    for (const x of f) expect(x.message).not.toMatch(SUPPLY_SECRET);
    await tamper([
      ...SEALED_TABLES.map((x) => `UPDATE ${x} SET actor_token_name = NULL WHERE id = '${first[x]}'`),
      `UPDATE supply_kit_assignments SET visit = NULL WHERE id = '${a0.id}'`,
      `UPDATE supply_kit_assignments SET participant_id = '${a1.participant_id}' WHERE id = '${a1.id}'`,
      `DELETE FROM supply_kit_assignments WHERE id = '${forged}'`,
      `UPDATE supply_shipment_receipts SET logger_bytes = NULL, logger_file_name = NULL WHERE id = '${receipt.id}'`,
      `UPDATE supply_reconciliations SET counted_text = ${lit(reconciliation.counted_text)}
       WHERE id = '${reconciliation.id}'`,
      `UPDATE supply_dispensings SET created_at = created_at + interval '2 days' WHERE id = '${dispensing.id}'`,
    ]);
    expect(await audit()).toEqual([]);

    // A return moved to another study: named there (its entry is of SAU-1) and missing here.
    await createStudy(t.ctx, { code: "SAU-2", title: "Supply SAU-2", sites: [{ code: "S1", name: "One" }] }, null);
    const ret = await one("SELECT id, study_id FROM supply_returns");
    await tamper([`UPDATE supply_returns SET study_id = (SELECT id FROM studies WHERE code = 'SAU-2')`]);
    mismatch(await audit("SAU-2"), "supply_returns", String(ret.id), "study");
    named(await audit(), "DATA_ROW_MISSING", "supply_returns", String(ret.id));
    await tamper([`UPDATE supply_returns SET study_id = '${ret.study_id}'`]);
    expect(await audit()).toEqual([]);
  });

  it("names deleted rows: a dispensing (with its kit and subject), a kit, a shipment's kit link", async () => {
    const d1 = life.dispensed[1];
    const dispensing = await one(
      `SELECT d.id FROM supply_dispensings d JOIN supply_kits k ON k.id = d.kit_id WHERE k.number = '${d1.kit}'`,
    );
    const depotKit = await kitId(life.depotKit);
    const linked = life.shipment.kits.find((k) => !life.dispensed.some((d) => d.kit === k))!;
    const linkedId = await kitId(linked);
    const shipment = await one("SELECT id FROM supply_shipments");
    const assignment = await one(
      `SELECT a.id FROM supply_kit_assignments a JOIN supply_kits k ON k.id = a.kit_id WHERE k.number = '${d1.kit}'`,
    );
    await tamper([
      `DELETE FROM supply_kit_assignments WHERE id = '${assignment.id}'`,
      `DELETE FROM supply_dispensings WHERE id = '${dispensing.id}'`,
      `DELETE FROM supply_kits WHERE id = '${depotKit}'`,
      `DELETE FROM supply_shipment_kits WHERE kit_id = '${linkedId}'`,
    ]);
    const f = await audit();
    const gone = named(f, "DATA_ROW_MISSING", "supply_dispensings", String(dispensing.id));
    expect(gone.message).toContain(`kit ${d1.kit}`);
    expect(gone.message).toContain(d1.subject);
    expect(gone.seq).toBeTypeOf("number");
    const unassigned = named(f, "DATA_ROW_MISSING", "supply_kit_assignments", String(assignment.id));
    expect(unassigned.message).toContain(`kit ${d1.kit}`);
    expect(unassigned.message).toContain(d1.subject);
    expect(named(f, "DATA_ROW_MISSING", "supply_kits", depotKit).message).toContain(`kit ${life.depotKit}`);
    const link = named(f, "DATA_ROW_MISSING", "supply_shipment_kits", `${shipment.id}/${linked}`);
    expect(link.message).toContain(`shipment ${life.shipment.number}`);
    expect(link.message).toContain(`kit ${linked}`);
    for (const x of f) expect(x.message).not.toMatch(SUPPLY_SECRET);
  });
});
