/**
 * The public counterfeit check (issue 21, ADR 0060): the QR code on a kit's label opens `/kits/<label token>`, which
 * says only whether the label is one of ours and, if so, whether the kit is recalled, quarantined (held, not for use:
 * awaiting the sponsor after an excursion, rejected by the sponsor, or returned) or expired. A destroyed kit no longer
 * exists: its label is answered like an unknown one. The token is 16 random bytes (base64url, 22 characters): kits
 * cannot be enumerated. Nothing else leaves: no lot, kit type, site, date or participant (kit-state.ts publicKitCheck
 * picks the four facts).
 */
import { eq } from "drizzle-orm";
import { sites } from "../../db/schema/index.ts";
import type { AppContext } from "../platform/context.server.ts";
import { dateInZone } from "../study-documents/protocol-in-force.ts";
import { kitFacts } from "./kit-facts.server.ts";
import { type PublicKitCheck, publicKitCheck } from "./kit-state.ts";

/** A label token as printed in the QR code: 16 bytes in base64url. */
export const LABEL_TOKEN_PATTERN = /^[A-Za-z0-9_-]{22}$/;

/**
 * The check of one label token, or null when it is not one of ours or its kit was destroyed (a malformed token is
 * refused without a query).
 * "Expired" is judged at the date of the kit's site when it was shipped, else in UTC.
 */
export async function checkKitLabel(ctx: AppContext, token: string): Promise<PublicKitCheck | null> {
  if (typeof token !== "string" || !LABEL_TOKEN_PATTERN.test(token)) return null;
  const [f] = await kitFacts(ctx.db, null, { labelToken: token });
  if (!f) return null;
  let timeZone = "UTC";
  if (f.shipment) {
    const [s] = await ctx.db.select({ timeZone: sites.timeZone }).from(sites).where(eq(sites.id, f.shipment.siteId));
    timeZone = s?.timeZone ?? "UTC";
  }
  return publicKitCheck(f, dateInZone(new Date(), timeZone));
}
