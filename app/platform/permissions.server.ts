/**
 * The one permission helper. PERMISSIONS is the role x action table: it is the code and the documentation.
 * A platform admin may do everything; otherwise a principal needs a current membership in the study with a
 * role listed for the action, and for site-scoped memberships the same site.
 */
import type { Role } from "../../db/schema/index.ts";
import { ServiceError } from "./errors.server.ts";

export const PERMISSIONS = {
  "study.view": ["admin", "investigator", "coordinator", "monitor", "data_manager", "regulator"],
  "study.manage": ["admin"],
  "users.manage": ["admin"],
  "tokens.manage": ["admin"],
  "forms.manage": ["admin"],
  "records.read": ["admin", "investigator", "coordinator", "monitor", "data_manager", "regulator"],
  "records.enter": ["investigator", "coordinator"],
  "records.sign": ["investigator"],
  "records.monitor": ["monitor"],
  "records.lock": ["data_manager"],
  /** Importing existing data (issue 18, ADR 0037): data managers and admins. */
  "records.import": ["admin", "data_manager"],
  "participants.enroll": ["investigator", "coordinator"],
  "consent.obtain": ["investigator", "coordinator"],
  "study.review": ["admin", "monitor", "data_manager", "regulator"],
  "personal_data.view": ["investigator", "coordinator"],
  "audit.view": ["admin", "monitor", "data_manager", "regulator"],
  "proofs.read": ["admin", "investigator", "coordinator", "monitor", "data_manager", "regulator"],
} as const satisfies Record<string, readonly Role[]>;

export type Action = keyof typeof PERMISSIONS;

export interface MembershipRef {
  role: Role;
  studyId: string;
  studyCode: string;
  siteId: string | null;
  siteCode: string | null;
}

export interface Principal {
  kind: "user" | "token";
  userId: string | null;
  label: string;
  platformAdmin: boolean;
  memberships: MembershipRef[];
  /** API tokens only: extra actions granted in the token's study (TOKEN_SCOPES). */
  scopes?: readonly Action[];
  /** API tokens only: the token's id and name, to attribute its writes (app/platform/attribution.ts). */
  token?: { id: string; name: string };
}

/** Actions an API token may be granted on top of its integration roles. */
export const TOKEN_SCOPES = ["forms.manage"] as const satisfies readonly Action[];

export function can(p: Principal, action: Action, scope: { studyId: string; siteId?: string | null }): boolean {
  if (p.platformAdmin) return true;
  if (p.kind === "token" && p.scopes?.includes(action) && p.memberships.some((m) => m.studyId === scope.studyId))
    return true;
  const allowed = PERMISSIONS[action] as readonly Role[];
  return p.memberships.some(
    (m) =>
      m.studyId === scope.studyId &&
      allowed.includes(m.role) &&
      (m.siteId === null || scope.siteId === undefined || scope.siteId === null || m.siteId === scope.siteId),
  );
}

export function requirePermission(
  p: Principal,
  action: Action,
  scope: { studyId: string; siteId?: string | null },
): void {
  if (!can(p, action, scope)) throw new ServiceError("forbidden", `not permitted: ${action}`);
}

/** Studies the principal can see at all. */
export function visibleStudyIds(p: Principal): string[] | undefined {
  if (p.platformAdmin) return undefined; // all
  return [...new Set(p.memberships.map((m) => m.studyId))];
}
