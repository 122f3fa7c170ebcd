/**
 * A kit's chain of custody (issue 21, ADR 0061) on PGlite and PostgreSQL after a full kit life
 * (test/helpers/supply-life.ts): the custody file verifies offline (verifyCustody, and `trialseal verify-custody`
 * with the pinned policy), a blinded role's file holds no lot entry, kit type or lot, an unblinded role's carries the
 * lot's entries and a disclosure that recomputes the commitments; a tampered payload, another kit's bundle and a
 * missing step are named. The kit's page lists each event with who and its seal, and shows a row changed behind the
 * log as differing from its entry, never as sealed; another site's pharmacist is refused.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseTrustPolicy } from "../../anchoring/verifier/trust-policy.ts";
import { type CustodyFile, verifyCustody } from "../../anchoring/verifier/verify-custody.ts";
import { runVerifyCustody } from "../../bin/verify-custody-command.ts";
import { kitCustody, kitPage } from "../../app/drug-supply/custody.server.ts";
import { openTestDatabase, type TestDb } from "../helpers/db.ts";
import { type KitLife, kitLife } from "../helpers/supply-life.ts";
import { SUPPLY_SECRET, type SupplyStudy, supplyStudy } from "../helpers/supply-study.ts";

let t: TestDb;
let s: SupplyStudy;
let life: KitLife;
let dir: string;
const STUDY = "SCU-1";
const LOT_RE = /LCU-/;
const verify = (file: CustodyFile) =>
  verifyCustody(file, parseTrustPolicy(JSON.parse(file.trustPolicyText!)), t.ctx.crypto);
const kinds = (f: CustodyFile) => f.bundles.map((b) => String((b as { envelope: { kind: string } }).envelope.kind));
const copy = (f: CustodyFile) => JSON.parse(JSON.stringify(f)) as CustodyFile;

async function refusal(p: Promise<unknown>) {
  try {
    await p;
  } catch (err) {
    return err as Error & { code: string };
  }
  throw new Error("expected a refusal");
}

beforeAll(async () => {
  t = await openTestDatabase();
  s = await supplyStudy(t.ctx, STUDY, { participants: 2 });
  life = await kitLife(t.ctx, s, "LCU");
  dir = mkdtempSync(path.join(tmpdir(), "trialseal-custody-"));
}, 60_000);

afterAll(async () => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  await t?.close();
});

describe("a kit's custody file", () => {
  it("verifies offline for a blinded role, holding no lot entry, kit type or lot", async () => {
    const kit = life.dispensed[0].kit;
    const f = await kitCustody(t.ctx, s.p.pharm, STUDY, kit);
    expect(kinds(f)).toEqual([
      "supply.kit_registered",
      "supply.shipment_sent",
      "supply.shipment_received",
      "supply.quarantine_decided",
      "supply.kit_dispensed",
      "supply.kit_returned",
      "supply.destruction_recorded",
      "supply.destruction_witnessed",
    ]);
    expect(f.disclosure).toBeUndefined();
    const text = JSON.stringify(f);
    expect(text).not.toMatch(SUPPLY_SECRET);
    expect(text).not.toMatch(LOT_RE);
    const r = await verify(f);
    expect(r.errors).toEqual([]);
    expect(r).toMatchObject({ ok: true, kit, disclosure: null });

    // The CLI, pinned to the file's own policy: exit 0; the same file tampered: exit 1.
    const { createHash } = await import("node:crypto");
    const pin = createHash("sha256").update(f.trustPolicyText!).digest("hex");
    const good = path.join(dir, "good.json");
    writeFileSync(good, JSON.stringify(f));
    expect(await runVerifyCustody(good, { pin })).toBe(0);
    const bad = copy(f);
    (bad.bundles[4] as { payload: { subject: string } }).payload.subject = "S1-999";
    writeFileSync(path.join(dir, "bad.json"), JSON.stringify(bad));
    expect(await runVerifyCustody(path.join(dir, "bad.json"), { pin })).toBe(1);
  });

  it("carries the lot's entries and a disclosure that recomputes the commitments for the depot manager", async () => {
    const f = await kitCustody(t.ctx, s.p.depot, STUDY, life.dispensed[0].kit);
    expect(kinds(f).slice(0, 2)).toEqual(["supply.lot_registered", "supply.lot_released"]);
    expect(f.disclosure?.kitType).toBe(s.kitTypeOf[life.dispensed[0].subject]);
    const r = await verify(f);
    expect(r.errors).toEqual([]);
    expect(r.disclosure).toMatchObject({ lotChecked: true });
    // A recalled lot's kit carries the recall.
    const recalled = await kitCustody(t.ctx, s.p.depot, STUDY, life.recalledKit);
    expect(kinds(recalled)).toContain("supply.lot_recalled");
    expect((await verify(recalled)).ok).toBe(true);
  });

  it("names a tampered payload, another kit's bundle, a missing step", async () => {
    const f = await kitCustody(t.ctx, s.p.mon, STUDY, life.dispensed[0].kit);
    const tampered = copy(f);
    (tampered.bundles[5] as { payload: { unitsReturned: number } }).payload.unitsReturned = 0;
    expect((await verify(tampered)).errors.map((e) => e.code)).toContain("BUNDLE_INVALID");

    const other = await kitCustody(t.ctx, s.p.mon, STUDY, life.dispensed[1].kit);
    const foreign = copy(f);
    foreign.bundles[4] = other.bundles[kinds(other).indexOf("supply.kit_dispensed")];
    const r = await verify(foreign);
    expect(r.errors.map((e) => e.code)).toEqual(expect.arrayContaining(["FOREIGN_BUNDLE", "STEP_MISSING"]));
    expect(r.errors.find((e) => e.code === "FOREIGN_BUNDLE")?.message).toContain(life.dispensed[0].kit);

    const missing = copy(f);
    missing.bundles.splice(2, 1); // the receipt
    const m = await verify(missing);
    expect(m.errors.map((e) => e.code)).toContain("STEP_MISSING");
    expect(m.errors[0].message).toContain("supply.shipment_received");
  });
});

describe("the kit's page", () => {
  it("lists each event with who and its seal, blinded; a changed row differs from its entry", async () => {
    const { kit, subject } = life.dispensed[1];
    const page = await kitPage(t.ctx, s.p.pharm, STUDY, kit);
    expect(page.history.map((e) => e.kind)).toEqual([
      "supply.kit_registered",
      "supply.shipment_sent",
      "supply.shipment_received",
      "supply.quarantine_decided",
      "supply.kit_dispensed",
    ]);
    expect(page.history.every((e) => e.seal.status === "sealed" && e.seal.matchesSeal === true && e.by)).toBe(true);
    expect(page.history[4].what).toContain(subject);
    expect(page.allMatch).toBe(true);
    expect("kitType" in page).toBe(false);
    expect(JSON.stringify(page)).not.toMatch(SUPPLY_SECRET);
    expect(JSON.stringify(page)).not.toMatch(LOT_RE);
    const unblinded = await kitPage(t.ctx, s.p.upharm, STUDY, kit);
    expect(unblinded.kitType).toBe(s.kitTypeOf[subject]);
    expect(unblinded.history[0].kind).toBe("supply.lot_registered");

    await t.ctx.db.transaction(async (tx) => {
      await tx.execute(sql.raw("SET LOCAL session_replication_role = replica"));
      await tx.execute(
        sql.raw(
          `UPDATE supply_dispensings SET visit = 'V9'
           WHERE kit_id = (SELECT id FROM supply_kits WHERE number = '${kit}')`,
        ),
      );
    });
    const changed = await kitPage(t.ctx, s.p.pharm, STUDY, kit);
    const d = changed.history.find((e) => e.kind === "supply.kit_dispensed")!;
    expect(d.seal.matchesSeal).toBe(false);
    expect(d.differs).toEqual(["visit"]);
    expect(changed.allMatch).toBe(false);
    expect(changed.history.filter((e) => e.seal.matchesSeal === false)).toHaveLength(1);
    // Another site's pharmacist is refused.

    expect((await refusal(kitPage(t.ctx, s.p.pharm2, STUDY, kit))).code).toMatch(/forbidden|not_found/);
    expect((await refusal(kitCustody(t.ctx, s.p.pharm2, STUDY, kit))).code).toMatch(/forbidden|not_found/);

    // Fields the row holds through its joins: the shipment's and the dispensing's site.
    await t.ctx.db.transaction(async (tx) => {
      await tx.execute(sql.raw("SET LOCAL session_replication_role = replica"));
      const s2 = `(SELECT s.id FROM sites s JOIN studies st ON st.id = s.study_id WHERE st.code = '${STUDY}'
                   AND s.code = 'S2')`;
      const kitId = `(SELECT id FROM supply_kits WHERE number = '${kit}')`;
      await tx.execute(sql.raw(`UPDATE supply_dispensings SET site_id = ${s2} WHERE kit_id = ${kitId}`));
      await tx.execute(
        sql.raw(
          `UPDATE supply_shipments SET site_id = ${s2}
           WHERE id = (SELECT shipment_id FROM supply_shipment_kits WHERE kit_id = ${kitId})`,
        ),
      );
    });
    const moved = await kitPage(t.ctx, s.p.mon, STUDY, kit);
    expect(moved.history.find((e) => e.kind === "supply.shipment_sent")!.differs).toEqual(["site"]);
    expect(moved.history.find((e) => e.kind === "supply.kit_dispensed")!.differs).toEqual(["visit", "site"]);
  });
});
