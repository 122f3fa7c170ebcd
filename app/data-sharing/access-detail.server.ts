/**
 * Who a reader was at the time (issue 22, ADR 0067): the role (and site) of the membership a read or an export was
 * made under, stored in its audit event's detail when the event is written, so the participant's access list shows
 * the role and organisation of that day, not the reader's memberships of today (a coordinator moved to another
 * site, or made a monitor, later). Pure: from the principal's memberships as the request loaded them.
 */
import type { Role } from "../../db/schema/users.ts";
import type { Principal } from "../platform/permissions.server.ts";

/** What an access event stores about its reader: `role`, and `site` (its code) for a site-scoped membership. */
export interface AccessDetail {
  role?: Role;
  site?: string;
}

/**
 * The membership a user's read or export in `studyId` (of a participant at `siteId`, or null for the whole study)
 * was made under, the most specific first: a membership at that site, then a study-wide one, then any of the study
 * (a site-scoped member exporting the study exports their site's part). Empty for an API token (named by
 * `detail.token`) and for a user without a membership in the study (a platform administrator): `{}`, so the
 * caller can spread it into `detail` whatever the reader.
 */
export function accessDetail(principal: Principal, studyId: string, siteId: string | null): AccessDetail {
  if (principal.kind === "token") return {};
  const mine = principal.memberships.filter((m) => m.studyId === studyId);
  const m =
    (siteId ? mine.find((x) => x.siteId !== null && x.siteId === siteId) : undefined) ??
    mine.find((x) => x.siteId === null) ??
    mine[0];
  if (!m) return {};
  return m.siteId && m.siteCode ? { role: m.role, site: m.siteCode } : { role: m.role };
}
