/**
 * The one permission helper. PERMISSIONS is the role x action table: it is the code and the documentation.
 * A platform admin may do everything; otherwise a principal needs a current membership in the study with a
 * role listed for the action, and for site-scoped memberships the same site.
 */
import type { Role } from "../../db/schema/index.ts";
import { ServiceError } from "./errors.server.ts";

/** Every role a member of a study's staff can hold (issue 20 added the two unblinded roles, issue 21 the supply's). */
const EVERY_STUDY_ROLE = [
  "admin",
  "investigator",
  "coordinator",
  "monitor",
  "data_manager",
  "regulator",
  "unblinded_statistician",
  "unblinded_pharmacist",
  "depot_manager",
  "site_pharmacist",
] as const satisfies readonly Role[];

export const PERMISSIONS = {
  "study.view": EVERY_STUDY_ROLE,
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
  "proofs.read": EVERY_STUDY_ROLE,
  // ---- Issue 20: pre-commitment (ADR 0048-0055) ----
  /** Upload and amend study documents (protocol, SAP, IB, DMP), set the SAP's outcome list. */
  "documents.manage": ["admin"],
  /** Record a site's approval date of a document version (site-scoped for investigators and coordinators). */
  "documents.approve_site": ["admin", "investigator", "coordinator"],
  /** Read the study documents and download their PDFs. */
  "documents.read": EVERY_STUDY_ROLE,
  /** Publish or withdraw the study's public registration page (the sponsor). */
  "registration.manage": ["admin"],
  /** Make, upload, review and commit the randomization list (sees arms). */
  "randomization.manage": ["unblinded_statistician"],
  /** Randomize a participant (sees the randomization number only). */
  "randomization.randomize": ["investigator", "coordinator"],
  /** See arms and kit types before the study is unblinded (site-scoped for a pharmacist). */
  "randomization.view_arms": ["unblinded_statistician", "unblinded_pharmacist"],
  /** Unblind one participant in an emergency, with a reason (the sponsor is notified). */
  "randomization.emergency_unblind": ["investigator"],
  /** Lock and unlock the study database (the analysis data set's hash is sealed at lock). */
  "database.lock": ["data_manager"],
  /** Unblind the study while the database is locked (reveals the whole list to every role). */
  "randomization.unblind": ["admin", "unblinded_statistician"],
  // ---- Issue 21: investigational product accountability (ADR 0056-0065) ----
  /** The supply pages: kits by number and state, shipments, inventory per site (never kit types or lots of kits). */
  "supply.view": EVERY_STUDY_ROLE,
  /** Register lots (with the certificate of analysis) and kits, print labels, send shipments (sees kit types). */
  "supply.manage": ["depot_manager"],
  /** See each kit's type and lot before unblinding (site-scoped for a pharmacist). */
  "supply.view_kit_types": ["depot_manager", "unblinded_pharmacist", "unblinded_statistician"],
  /** Release a lot, decide on a quarantined shipment (release or destroy), recall a lot: the sponsor. */
  "supply.release": ["admin"],
  /** Receive a shipment at the site, with its temperatures or logger file. */
  "supply.receive": ["site_pharmacist", "unblinded_pharmacist", "coordinator"],
  /** Dispense a kit to a participant by their allocation. */
  "supply.dispense": ["site_pharmacist", "unblinded_pharmacist"],
  /** Record a returned kit's counts. */
  "supply.return": ["site_pharmacist", "unblinded_pharmacist", "coordinator"],
  /** Record a destruction of kits (a second person witnesses it). */
  "supply.destroy": ["site_pharmacist", "unblinded_pharmacist", "depot_manager"],
  /** Witness someone else's destruction. */
  "supply.witness": [
    "site_pharmacist",
    "unblinded_pharmacist",
    "depot_manager",
    "monitor",
    "investigator",
    "coordinator",
  ],
  /** Reconcile a site's kits: counted against expected. */
  "supply.reconcile": ["monitor"],
  /** The accountability log (CSV, PDF), FHIR Medication/MedicationDispense and ODM drug accountability exports. */
  "supply.export": [
    "admin",
    "monitor",
    "regulator",
    "data_manager",
    "site_pharmacist",
    "unblinded_pharmacist",
    "depot_manager",
  ],
  /** A kit's chain-of-custody proof bundles. */
  "supply.custody": ["admin", "monitor", "regulator", "depot_manager", "site_pharmacist", "unblinded_pharmacist"],
  // ---- Issue 22: participant-controlled sharing (ADR 0066-0072) ----
  /** Ask for data with a purpose, fields and period; download one's own approved deliveries until they expire. */
  "data_use.request": ["external_researcher"],
  /** Approve or decline a data-use request with a reason, make its deliveries (the sponsor's committee). */
  "data_use.decide": ["data_access_committee"],
  /** Read every data-use request, decision and delivery of the study (never the packages' contents). */
  "data_use.view": ["admin", "data_access_committee", "regulator", "monitor"],
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

/**
 * Actions that reveal arms before unblinding (ADR 0053): API tokens never get them.
 */
export const ARM_REVEALING_ACTIONS: readonly Action[] = [
  "randomization.manage",
  "randomization.view_arms",
  // Issue 21: kit types (and which lot a kit is of) reveal arms as well (ADR 0057).
  "supply.manage",
  "supply.view_kit_types",
];

/**
 * Actions a platform admin does not get by being one, only by a membership of the study with the role (ADR 0053):
 * those that reveal arms, and locking the database and unblinding the study (which lets every role see the arms):
 * decisions of the study's own people, not of whoever runs the deployment.
 */
export const MEMBERSHIP_ONLY_ACTIONS: readonly Action[] = [
  ...ARM_REVEALING_ACTIONS,
  "database.lock",
  "randomization.unblind",
  // Issue 21: the sponsor's supply decisions (release, quarantine, recall) and witnessing a destruction are acts of
  // the study's own people (ADR 0057).
  "supply.release",
  "supply.witness",
  // Issue 22: asking for data and deciding on a request are acts of the researcher and of the committee's members
  // themselves (ADR 0069).
  "data_use.request",
  "data_use.decide",
];

export function can(p: Principal, action: Action, scope: { studyId: string; siteId?: string | null }): boolean {
  if (ARM_REVEALING_ACTIONS.includes(action) && p.kind === "token") return false;
  if (p.platformAdmin && !MEMBERSHIP_ONLY_ACTIONS.includes(action)) return true;
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
