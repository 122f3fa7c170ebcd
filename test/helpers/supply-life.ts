/**
 * A full kit life through the portal's own services (issue 21 tests of the audit and the chain of custody): three
 * released lots (A and C of KIT-ZOLVA, B of KIT-PLACQ); kits registered (one of A left at the depot); a shipment of
 * three kits of A and three of B to S1 received with a temperature excursion and released by the sponsor; lot C
 * recalled; two participants dispensed a kit by their allocation; the first kit returned, destroyed at S1 and
 * witnessed by a second person; S1 reconciled; everything sealed.
 */
import { assignKit, dispenseKit, returnKit } from "../../app/drug-supply/dispensing.server.ts";
import { recordDestruction, witnessDestruction } from "../../app/drug-supply/destruction.server.ts";
import { registerKits, registerLot, releaseLot } from "../../app/drug-supply/lots.server.ts";
import { recallLot } from "../../app/drug-supply/recall.server.ts";
import { reconcileSite } from "../../app/drug-supply/reconciliation.server.ts";
import { decideQuarantine, receiveShipment, sendShipment } from "../../app/drug-supply/shipments.server.ts";
import { sealAll } from "../../app/log/sealer.server.ts";
import type { AppContext } from "../../app/platform/context.server.ts";
import { todayIn } from "../../app/records/records.server.ts";
import { STAFF_PASSWORD } from "./study-staff.ts";
import type { SupplyStudy } from "./supply-study.ts";

export const coaFile = { fileName: "coa.pdf", bytes: new Uint8Array(Buffer.from("%PDF-1.4\n% coa\n")) };
export const lotInput = (lotNumber: string, kitType: string) => ({
  product: "ZX-101 10 mg tablets or matching placebo",
  lotNumber,
  kitType,
  manufacturedOn: "2026-01-10",
  expiresOn: "2030-12-31",
  storageMinC: "2",
  storageMaxC: "8",
  dailyUnits: 2,
});

export interface KitLife {
  lots: { A: string; B: string; C: string };
  /** The shipment's number and its kits. */
  shipment: { number: string; kits: string[] };
  /** A kit of lot A never shipped; the recalled lot C's kit (at the depot). */
  depotKit: string;
  recalledKit: string;
  /** subject -> kit dispensed, in order; the first was returned, destroyed and witnessed. */
  dispensed: { subject: string; kit: string }[];
  destructionId: string;
}

export async function kitLife(ctx: AppContext, s: SupplyStudy, prefix = "LZ"): Promise<KitLife> {
  const { p, code } = s;
  const lots = { A: `${prefix}-A1`, B: `${prefix}-B2`, C: `${prefix}-C3` };
  for (const [n, type] of [
    [lots.A, "KIT-ZOLVA"],
    [lots.B, "KIT-PLACQ"],
    [lots.C, "KIT-ZOLVA"],
  ]) {
    await registerLot(ctx, p.depot, code, lotInput(n, type), coaFile);
    await releaseLot(ctx, p.admin, code, n);
  }
  const a = await registerKits(ctx, p.depot, code, { lotNumber: lots.A, count: 4, units: 30 });
  await registerKits(ctx, p.depot, code, { lotNumber: lots.B, count: 3, units: 30 });
  const c = await registerKits(ctx, p.depot, code, { lotNumber: lots.C, count: 1, units: 30 });
  const sent = await sendShipment(ctx, p.depot, code, {
    site: "S1",
    depot: "DEPOT-EU",
    fromLots: [
      { lotNumber: lots.A, count: 3 },
      { lotNumber: lots.B, count: 3 },
    ],
  });
  const received = await receiveShipment(ctx, p.pharm, code, sent.number, {
    temperatureMinC: "4",
    temperatureMaxC: "15",
  });
  if (!received.excursion) throw new Error("the fixture's shipment should be an excursion");
  await decideQuarantine(ctx, p.admin, code, sent.number, { outcome: "release", reason: "stability data cover it" });
  await recallLot(ctx, p.admin, code, { lotNumber: lots.C, reason: "particles in retained samples" });
  const dispensed: KitLife["dispensed"] = [];
  for (const subject of s.subjects.slice(0, 2)) {
    const { kit } = await assignKit(ctx, p.pharm, code, subject);
    await dispenseKit(ctx, p.pharm, code, subject, { kit, visit: "" });
    dispensed.push({ subject, kit });
  }
  await returnKit(ctx, p.pharm, code, { kit: dispensed[0].kit, unitsReturned: "12", returnedOn: todayIn("UTC") });
  const { destructionId } = await recordDestruction(ctx, p.pharm, code, {
    site: "S1",
    kits: [dispensed[0].kit],
    method: "incineration by the pharmacy's contractor",
  });
  const meta = { ip: "127.0.0.1", userAgent: "vitest supply life" };
  await witnessDestruction(ctx, p.inv, code, destructionId, { password: STAFF_PASSWORD }, meta);
  await reconcileSite(ctx, p.mon, code, {
    site: "S1",
    counted: sent.kits.filter((k) => !dispensed.some((d) => d.kit === k)),
  });
  await sealAll(ctx);
  const depotKit = a.kits.map((k) => k.number).find((n) => !sent.kits.includes(n));
  if (!depotKit) throw new Error("no kit left at the depot");
  return {
    lots,
    shipment: { number: sent.number, kits: sent.kits },
    depotKit,
    recalledKit: c.kits[0].number,
    dispensed,
    destructionId,
  };
}
