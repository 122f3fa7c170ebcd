/**
 * Which protocol version was in force at a site at a moment (ADR 0048), as pure logic: the version whose approval
 * date at that site is the latest on or before the moment's date on the site's clock (its time zone). Dates, not
 * instants: an ethics committee approves on a day, and a value entered that day at the site falls under it. Two
 * versions approved at a site on the same day: the later registered one (an amendment is registered after what it
 * replaces) is in force. Only approvals already recorded when the value was entered count (`recordedAt` <= the value's
 * instant): the protocol in force as known when the value was entered, so an approval recorded later with an earlier
 * date never changes a value entered before it was recorded (nor an export made then, such as the analysis data set
 * sealed at database lock).
 */

export interface SiteApproval {
  siteId: string;
  /** YYYY-MM-DD, the site's approval date of the version. */
  approvedOn: string;
  documentId: string;
  version: string;
  /** When the version was registered (orders two versions approved at a site on the same day). */
  registeredAt: Date;
  /** When the site approval was recorded (its sealed entry's time): it counts only for values entered from then on. */
  recordedAt: Date;
}

export interface InForce {
  documentId: string;
  version: string;
}

/** The calendar date (YYYY-MM-DD) of an instant on the clock of a time zone; UTC for an unknown zone. */
export function dateInZone(at: Date, timeZone: string): string {
  const fmt = (tz: string) =>
    new Intl.DateTimeFormat("en-CA", { timeZone: tz, year: "numeric", month: "2-digit", day: "2-digit" }).format(at);
  try {
    return fmt(timeZone || "UTC");
  } catch {
    return fmt("UTC");
  }
}

/**
 * Of one site's approvals, the one in force on `date` (YYYY-MM-DD) as known at the instant `at` (approvals recorded
 * after it do not count; all count when `at` is not given), or null when none was approved by then.
 */
export function approvalInForce(approvals: readonly SiteApproval[], date: string, at?: Date): InForce | null {
  let best: SiteApproval | null = null;
  for (const a of approvals) {
    if (a.approvedOn > date) continue;
    if (at !== undefined && a.recordedAt.getTime() > at.getTime()) continue;
    if (
      !best ||
      a.approvedOn > best.approvedOn ||
      (a.approvedOn === best.approvedOn && a.registeredAt.getTime() > best.registeredAt.getTime())
    )
      best = a;
  }
  return best ? { documentId: best.documentId, version: best.version } : null;
}

/**
 * A function (siteId, at) -> the protocol version in force at that site at that instant, as known then, from every
 * site approval of the study's protocol versions and each site's time zone.
 */
export function inForceLookup(
  approvals: readonly SiteApproval[],
  timeZones: ReadonlyMap<string, string>,
): (siteId: string, at: Date) => InForce | null {
  const bySite = new Map<string, SiteApproval[]>();
  for (const a of approvals) bySite.set(a.siteId, [...(bySite.get(a.siteId) ?? []), a]);
  return (siteId, at) => {
    const mine = bySite.get(siteId);
    if (!mine) return null;
    return approvalInForce(mine, dateInZone(at, timeZones.get(siteId) ?? "UTC"), at);
  };
}
