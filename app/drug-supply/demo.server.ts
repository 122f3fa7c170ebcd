/**
 * The demo's drug supply (issue 21), made through the services as the people would: the depot registers two lots
 * (one per kit type) with their certificates and a third that is later recalled, the sponsor releases them, the depot
 * registers kits and sends two shipments to the site; the site pharmacist receives one in range and one with a
 * temperature excursion (left quarantined for the sponsor's decision), dispenses a kit to each randomized participant
 * by allocation, takes one back with counts and destroys it with the unblinded pharmacist as witness; the monitor
 * reconciles the site. Run twice, it does nothing the second time.
 */
import { eq } from "drizzle-orm";
import { supplyLots } from "../../db/schema/index.ts";
import type { AppContext } from "../platform/context.server.ts";
import { ServiceError } from "../platform/errors.server.ts";
import type { Principal } from "../platform/permissions.server.ts";
import { todayIn } from "../records/records.server.ts";
import { demoPdf } from "../study-documents/demo.server.ts";
import { getStudyOrThrow } from "../studies/studies.server.ts";
import { recordDestruction, witnessDestruction } from "./destruction.server.ts";
import { assignKit, dispenseKit, randomizedSubjects, returnKit } from "./dispensing.server.ts";
import { registerKits, registerLot, releaseLot } from "./lots.server.ts";
import { recallLot } from "./recall.server.ts";
import { expectedOnHand, reconcileSite } from "./reconciliation.server.ts";
import { receiveShipment, sendShipment } from "./shipments.server.ts";

export interface DemoSupplyPeople {
  /** The study's admin: releases lots, decides on quarantines, recalls. */
  sponsor: Principal;
  depot: Principal;
  sitePharmacist: Principal;
  unblindedPharmacist: Principal;
  monitor: Principal;
  /** The demo's password (every demo user has it): the witness re-enters it. */
  password: string;
}

const PRODUCT = "BP-101 10 mg tablets or matching placebo";
const LOTS = [
  { lotNumber: "LOT-2609-A", kitType: "KIT-A" },
  { lotNumber: "LOT-2609-B", kitType: "KIT-B" },
] as const;

export async function seedDemoSupply(ctx: AppContext, who: DemoSupplyPeople, studyCode: string, siteCode: string) {
  const study = await getStudyOrThrow(ctx, studyCode);
  const [any] = await ctx.db.select({ id: supplyLots.id }).from(supplyLots).where(eq(supplyLots.studyId, study.id));
  if (any) return;
  const lot = async (lotNumber: string, kitType: string, expiresOn: string) => {
    const coa = await demoPdf(`Certificate of analysis: lot ${lotNumber}`, [
      `${PRODUCT}. A demonstration certificate: not a real product.`,
      "Assay 99.6 % (limits 95.0 - 105.0 %). Dissolution conforms. Microbial limits conform.",
      "Released for clinical trial use by the manufacturer's qualified person.",
    ]);
    await registerLot(
      ctx,
      who.depot,
      study.code,
      {
        product: PRODUCT,
        lotNumber,
        kitType,
        manufacturedOn: "2026-09-01",
        expiresOn,
        storageMinC: "15",
        storageMaxC: "25",
        dailyUnits: "1",
      },
      { fileName: `coa-${lotNumber}.pdf`, bytes: coa },
    );
    await releaseLot(ctx, who.sponsor, study.code, lotNumber);
  };
  for (const l of LOTS) await lot(l.lotNumber, l.kitType, "2028-08-31");
  // Both kit types' kits in one shuffled run, so the log's order does not group kits by lot (ADR 0056).
  await registerKits(ctx, who.depot, study.code, {
    lots: LOTS.map((l) => ({ lotNumber: l.lotNumber, count: 10 })),
    units: 30,
  });
  const send = (counts: number) =>
    sendShipment(ctx, who.depot, study.code, {
      site: siteCode,
      depot: "DEPOT-EU",
      fromLots: LOTS.map((l) => ({ lotNumber: l.lotNumber, count: counts })),
    });
  const first = await send(6);
  await receiveShipment(ctx, who.sitePharmacist, study.code, first.number, {
    temperatureMinC: "16.2",
    temperatureMaxC: "22.8",
  });
  // The second shipment froze on the way: quarantined until the sponsor decides (the demo leaves that to you).
  const second = await send(2);
  await receiveShipment(ctx, who.sitePharmacist, study.code, second.number, {
    temperatureMinC: "11.5",
    temperatureMaxC: "21.0",
  });
  const dispensed: string[] = [];
  for (const subject of await randomizedSubjects(ctx, who.sitePharmacist, study.code, siteCode)) {
    const proposed = await assignKit(ctx, who.sitePharmacist, study.code, subject).catch((err: unknown) => {
      // No kit of the participant's kit type on hand: the demo leaves that participant without one.
      if (err instanceof ServiceError && err.code === "conflict") return null;
      throw err;
    });
    if (!proposed) continue;
    await dispenseKit(ctx, who.sitePharmacist, study.code, subject, { kit: proposed.kit });
    dispensed.push(proposed.kit);
  }
  if (dispensed[0]) {
    await returnKit(ctx, who.sitePharmacist, study.code, {
      kit: dispensed[0],
      unitsReturned: "2",
      returnedOn: todayIn(),
    });
    const { destructionId } = await recordDestruction(ctx, who.sitePharmacist, study.code, {
      site: siteCode,
      kits: [dispensed[0]],
      method: "Incinerated by the hospital pharmacy's licensed waste contractor",
    });
    // The witness confirms with their own password (ADR 0064); the demo's users have no authenticator yet.
    await witnessDestruction(
      ctx,
      who.unblindedPharmacist,
      study.code,
      destructionId,
      { password: who.password },
      {
        ip: "127.0.0.1",
        userAgent: "trialseal demo seed",
      },
    );
  }
  await reconcileSite(ctx, who.monitor, study.code, {
    site: siteCode,
    counted: (await expectedOnHand(ctx, study.code, siteCode)).onHand.join("\n"),
  });
  // A lot recalled before it was shipped: its kits are blocked at the depot.
  await lot("LOT-2605-A", "KIT-A", "2028-04-30");
  await registerKits(ctx, who.depot, study.code, { lotNumber: "LOT-2605-A", count: 2, units: 30 });
  await recallLot(ctx, who.sponsor, study.code, {
    lotNumber: "LOT-2605-A",
    reason: "Out-of-specification dissolution at the 3-month stability time point",
  });
}
