/**
 * A kit's state, read from the facts the supply tables hold about it (issue 21, ADR 0058): where it is, whether it can
 * be dispensed, and why not, in words a pharmacist understands. Pure: the loader is kit-facts.server.ts. Blinded
 * wording: no reason names a kit type, an arm or a lot number (a wrong-type kit "does not match the allocation").
 */

export interface KitFacts {
  id: string;
  number: string;
  units: number;
  lotId: string;
  lotReleased: boolean;
  lotRecalled: boolean;
  /** The lot's expiry (YYYY-MM-DD): the kit may be used through this day. */
  expiresOn: string;
  /** The shipment the kit went out in, if any. */
  shipment: {
    id: string;
    number: string;
    siteId: string;
    siteCode: string;
    received: boolean;
    excursion: boolean;
    /** The sponsor's decision on an excursion: null while it is pending (the kits are quarantined). */
    decision: "release" | "destroy" | null;
  } | null;
  dispensed: { subject: string; siteId: string } | null;
  returned: boolean;
  /** A destruction recorded (witnessed or not). */
  destroyed: boolean;
}

/** Where a kit is in its life. */
export type KitLocation =
  | "at_depot"
  | "in_transit"
  | "quarantined"
  | "rejected"
  | "on_hand"
  | "dispensed"
  | "returned"
  | "destroyed";

export const LOCATION_WORDS: Record<KitLocation, string> = {
  at_depot: "at the depot",
  in_transit: "in transit",
  quarantined: "quarantined (temperature excursion, awaiting the sponsor's decision)",
  rejected: "rejected by the sponsor after an excursion (to be destroyed)",
  on_hand: "on hand at the site",
  dispensed: "dispensed",
  returned: "returned",
  destroyed: "destroyed",
};

export interface KitState {
  location: KitLocation;
  recalled: boolean;
  expired: boolean;
  quarantined: boolean;
  /** On hand at a site, from a released lot, not recalled, not expired: can be dispensed there. */
  dispensable: boolean;
}

export function kitLocation(f: KitFacts): KitLocation {
  if (f.destroyed) return "destroyed";
  if (f.returned) return "returned";
  if (f.dispensed) return "dispensed";
  if (!f.shipment) return "at_depot";
  if (!f.shipment.received) return "in_transit";
  if (f.shipment.excursion && f.shipment.decision === null) return "quarantined";
  if (f.shipment.excursion && f.shipment.decision === "destroy") return "rejected";
  return "on_hand";
}

/** A kit is expired after its lot's expiry day (`today` as YYYY-MM-DD in the site's time zone). */
export const isExpired = (f: Pick<KitFacts, "expiresOn">, today: string) => today > f.expiresOn;

export function kitState(f: KitFacts, today: string): KitState {
  const location = kitLocation(f);
  const expired = isExpired(f, today);
  return {
    location,
    recalled: f.lotRecalled,
    expired,
    quarantined: location === "quarantined",
    dispensable: location === "on_hand" && f.lotReleased && !f.lotRecalled && !expired,
  };
}

/**
 * Why this kit cannot be dispensed to this participant at this site today, in words; null when it can. `matches`
 * says whether the kit's type is the participant's allocated kit type (the caller compares, never shows either).
 * A kit that is not at this site (at the depot, shipped to another site, or in transit) is refused as such before
 * any other reason: nothing is said about another site's kit (dispensed to whom, expired when).
 */
export function dispenseRefusal(
  f: KitFacts,
  at: { siteId: string; siteCode: string; today: string; matches: boolean },
): string | null {
  const k = `kit ${f.number}`;
  if (!f.shipment) return `${k} is at the depot, not at site ${at.siteCode}`;
  if (f.shipment.siteId !== at.siteId) return `${k} belongs to another site, not to ${at.siteCode}`;
  if (!f.shipment.received) return `${k} has not been received at site ${at.siteCode} yet`;
  if (f.destroyed) return `${k} has been destroyed`;
  if (f.dispensed) return `${k} has already been dispensed (to ${f.dispensed.subject})`;
  if (f.lotRecalled) return `${k} is recalled: it must not be dispensed`;
  const location = kitLocation(f);
  if (location === "quarantined") return `${k} is quarantined after a temperature excursion until the sponsor decides`;
  if (location === "rejected") return `${k} was rejected by the sponsor after a temperature excursion`;
  if (!f.lotReleased) return `${k} is from a lot the sponsor has not released`;
  if (isExpired(f, at.today)) return `${k} expired on ${f.expiresOn}`;
  if (!at.matches) return `${k} does not match this participant's allocation: dispense the assigned kit`;
  return null;
}

/**
 * What the public counterfeit check says (ADR 0060): only these four facts, and the kit number to match its label.
 * `quarantined` means held, not for use: awaiting the sponsor after an excursion, rejected by the sponsor, or returned.
 */
export interface PublicKitCheck {
  genuine: true;
  kit: string;
  recalled: boolean;
  quarantined: boolean;
  expired: boolean;
}

/** The public check of a kit; null for a destroyed kit (it no longer exists: answered like an unknown label). */
export function publicKitCheck(f: KitFacts, today: string): PublicKitCheck | null {
  if (f.destroyed) return null;
  const s = kitState(f, today);
  const held = s.quarantined || s.location === "rejected" || s.location === "returned";
  return { genuine: true, kit: f.number, recalled: s.recalled, quarantined: held, expired: s.expired };
}
