/**
 * Issue 20's tables in the integrity audit: each capability's linked tables (rows against their entries) and its
 * own findings (roots recomputed, slots skipped or reused, outcome changes without a reason, data changed under a
 * database lock). One module per capability; this one only gathers them.
 */
import type { AuditFinding } from "../../anchoring/verifier/log-auditor.ts";
import type { AppContext } from "../platform/context.server.ts";
import { databaseLockFindings, databaseLockLinks } from "./database-lock-checks.server.ts";
import type { LinkedTable } from "./linked-table.ts";
import { randomizationFindings, randomizationLinks } from "./randomization-checks.server.ts";
import { registrationFindings, registrationLinks } from "./registration-checks.server.ts";
import { studyDocumentFindings, studyDocumentLinks } from "./study-document-checks.server.ts";

export function preCommitmentLinks(ctx: AppContext): LinkedTable[] {
  return [...studyDocumentLinks(ctx), ...registrationLinks(ctx), ...randomizationLinks(ctx), ...databaseLockLinks(ctx)];
}

export async function preCommitmentFindings(
  ctx: AppContext,
  study: { id: string; code: string },
  findings: AuditFinding[],
): Promise<{ rows: number }> {
  let rows = 0;
  for (const check of [studyDocumentFindings, registrationFindings, randomizationFindings, databaseLockFindings])
    rows += (await check(ctx, study, findings)).rows;
  return { rows };
}
