/**
 * Staff of a test study, made through the services as an admin would: accounts with a role (and a site for site
 * roles), their principals, and the investigators' delegations to coordinators. `key@domain` is each e-mail.
 */
import type { AppContext } from "../../app/platform/context.server.ts";
import { createUser } from "../../app/accounts/users.server.ts";
import { principalForUser } from "../../app/accounts/auth.server.ts";
import { grantDelegation } from "../../app/studies/delegations.server.ts";
import type { Principal } from "../../app/platform/permissions.server.ts";

export const STAFF_PASSWORD = "amber otter winter forty-two";

type Role = Parameters<typeof createUser>[1]["role"];
/** [key, role, site]: the key names the account (`key@domain`) and its principal in the result. */
export type StaffMember = readonly [key: string, role: Role, site?: string];

export interface Staff {
  principals: Record<string, Principal>;
  userIds: Record<string, string>;
}

/** Create each member of the study (an admin is the study's admin), returning principals and user ids by key. */
export async function createStaff(
  ctx: AppContext,
  study: string,
  domain: string,
  members: readonly StaffMember[],
): Promise<Staff> {
  const principals: Record<string, Principal> = {};
  const userIds: Record<string, string> = {};
  for (const [key, role, site] of members) {
    const u = await createUser(
      ctx,
      {
        email: `${key}@${domain}`,
        fullName: `${key} person`,
        password: STAFF_PASSWORD,
        role,
        study,
        site,
      },
      null,
    );
    userIds[key] = u.id;
    principals[key] = (await principalForUser(ctx, u.id))!;
  }
  return { principals, userIds };
}

/** Each investigator delegates the tasks at their site to a coordinator, with GCP training on record. */
export async function delegateTasks(
  ctx: AppContext,
  study: string,
  domain: string,
  principals: Record<string, Principal>,
  pairs: readonly (readonly [investigator: string, site: string, coordinator: string])[],
  tasks: readonly ("data_entry" | "enrollment" | "consent")[] = ["data_entry"],
): Promise<void> {
  for (const [investigator, site, coordinator] of pairs)
    for (const task of tasks)
      await grantDelegation(ctx, principals[investigator], {
        study,
        site,
        delegate: `${coordinator}@${domain}`,
        task,
        startsOn: "2026-01-01",
        training: [{ course: "GCP", completedOn: "2025-01-01", evidenceSha256: "ab".repeat(32) }],
      });
}
