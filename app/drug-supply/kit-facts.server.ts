/**
 * The facts about kits (kit-state.ts), read in one query: each kit with its lot's release, recall and expiry, its
 * shipment (site, receipt, excursion, decision), its dispensing (subject), return and destruction. `where` picks the
 * kits: by id, by number, by label token, by lot or by the site they were shipped to.
 */
import { and, eq, inArray, type SQL, sql } from "drizzle-orm";
import type { DbOrTx } from "../../db/client.ts";
import {
  participants,
  sites,
  supplyDestructionKits,
  supplyDispensings,
  supplyKits,
  supplyLotRecalls,
  supplyLotReleases,
  supplyLots,
  supplyQuarantineDecisions,
  supplyReturns,
  supplyShipmentKits,
  supplyShipmentReceipts,
  supplyShipments,
} from "../../db/schema/index.ts";
import type { KitFacts } from "./kit-state.ts";

export type KitSelector =
  | { kitIds: string[] }
  | { numbers: string[] }
  | { labelToken: string }
  | { lotId: string }
  | { siteId: string }
  | { all: true };

/** The facts about the selected kits of a study (`studyId` null only for the public label-token lookup). */
export async function kitFacts(
  db: DbOrTx,
  studyId: string | null,
  which: KitSelector,
): Promise<(KitFacts & { studyId: string; kitType: string })[]> {
  const conds: (SQL | undefined)[] = [studyId === null ? undefined : eq(supplyKits.studyId, studyId)];
  if ("kitIds" in which) conds.push(which.kitIds.length ? inArray(supplyKits.id, which.kitIds) : sql`false`);
  else if ("numbers" in which)
    conds.push(which.numbers.length ? inArray(supplyKits.number, which.numbers) : sql`false`);
  else if ("labelToken" in which) conds.push(eq(supplyKits.labelToken, which.labelToken));
  else if ("lotId" in which) conds.push(eq(supplyKits.lotId, which.lotId));
  else if ("siteId" in which) conds.push(eq(supplyShipments.siteId, which.siteId));
  const rows = await db
    .select({
      id: supplyKits.id,
      studyId: supplyKits.studyId,
      number: supplyKits.number,
      units: supplyKits.units,
      kitType: supplyKits.kitType,
      lotId: supplyKits.lotId,
      expiresOn: supplyLots.expiresOn,
      released: supplyLotReleases.id,
      recalled: supplyLotRecalls.id,
      shipmentId: supplyShipments.id,
      shipmentNumber: supplyShipments.number,
      shipmentSiteId: supplyShipments.siteId,
      shipmentSiteCode: sites.code,
      receiptId: supplyShipmentReceipts.id,
      excursion: supplyShipmentReceipts.excursion,
      decision: supplyQuarantineDecisions.outcome,
      dispensingSiteId: supplyDispensings.siteId,
      subject: participants.subjectCode,
      returned: supplyReturns.id,
      destroyed: supplyDestructionKits.destructionId,
    })
    .from(supplyKits)
    .innerJoin(supplyLots, eq(supplyLots.id, supplyKits.lotId))
    .leftJoin(supplyLotReleases, eq(supplyLotReleases.lotId, supplyKits.lotId))
    .leftJoin(supplyLotRecalls, eq(supplyLotRecalls.lotId, supplyKits.lotId))
    .leftJoin(supplyShipmentKits, eq(supplyShipmentKits.kitId, supplyKits.id))
    .leftJoin(supplyShipments, eq(supplyShipments.id, supplyShipmentKits.shipmentId))
    .leftJoin(sites, eq(sites.id, supplyShipments.siteId))
    .leftJoin(supplyShipmentReceipts, eq(supplyShipmentReceipts.shipmentId, supplyShipments.id))
    .leftJoin(supplyQuarantineDecisions, eq(supplyQuarantineDecisions.shipmentId, supplyShipments.id))
    .leftJoin(supplyDispensings, eq(supplyDispensings.kitId, supplyKits.id))
    .leftJoin(participants, eq(participants.id, supplyDispensings.participantId))
    .leftJoin(supplyReturns, eq(supplyReturns.kitId, supplyKits.id))
    .leftJoin(supplyDestructionKits, eq(supplyDestructionKits.kitId, supplyKits.id))
    .where(and(...conds))
    .orderBy(supplyKits.number);
  return rows.map((r) => ({
    id: r.id,
    studyId: r.studyId,
    number: r.number,
    units: r.units,
    kitType: r.kitType,
    lotId: r.lotId,
    lotReleased: r.released !== null,
    lotRecalled: r.recalled !== null,
    expiresOn: r.expiresOn,
    shipment:
      r.shipmentId === null
        ? null
        : {
            id: r.shipmentId,
            number: r.shipmentNumber ?? "",
            siteId: r.shipmentSiteId ?? "",
            siteCode: r.shipmentSiteCode ?? "",
            received: r.receiptId !== null,
            excursion: r.excursion ?? false,
            decision: r.decision ?? null,
          },
    dispensed: r.subject === null ? null : { subject: r.subject, siteId: r.dispensingSiteId ?? "" },
    returned: r.returned !== null,
    destroyed: r.destroyed !== null,
  }));
}
