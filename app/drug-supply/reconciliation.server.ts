/**
 * The monitor's reconciliation of a site's kits (issue 21, ADR 0064): the kits the records say are physically at the
 * site (received and not dispensed, including quarantined, rejected, expired or recalled ones; plus the returned
 * kits not destroyed yet, listed apart) against the kit numbers counted there. Missing (expected, not counted) and
 * unexpected (counted, not expected) kits are listed and sealed with the counts (`supply.reconciled`).
 */
import { randomUUID } from "node:crypto";
import { and, desc, eq } from "drizzle-orm";
import { canonicalize } from "../../anchoring/log/canonical.ts";
import type { DbOrTx } from "../../db/client.ts";
import { sites, supplyReconciliations, users } from "../../db/schema/index.ts";
import { audit } from "../audit-trail/record-event.server.ts";
import { appendEntry } from "../log/append-entry.server.ts";
import { MISMATCH_TEXT } from "../log/seal-text.ts";
import { auditActor } from "../platform/attribution.ts";
import type { AppContext } from "../platform/context.server.ts";
import { type Problem, ServiceError } from "../platform/errors.server.ts";
import { can, type Principal, requirePermission } from "../platform/permissions.server.ts";
import { getStudyOrThrow } from "../studies/studies.server.ts";
import { kitFacts } from "./kit-facts.server.ts";
import { kitLocation } from "./kit-state.ts";
import { parseKitNumber, resolveKitNumbers, siteByCode } from "./inventory.server.ts";
import { type RowSeal, supplyRowSeals } from "./shipments.server.ts";

/** Kits at the site by the records: on hand (received, not dispensed, not destroyed) and returned, not destroyed. */
async function expectedAt(db: DbOrTx, studyId: string, siteId: string) {
  const facts = await kitFacts(db, studyId, { siteId });
  const onHand: string[] = [];
  const returned: string[] = [];
  for (const f of facts) {
    const where = kitLocation(f);
    if (where === "returned") returned.push(f.number);
    else if (where === "on_hand" || where === "quarantined" || where === "rejected") onHand.push(f.number);
  }
  return { onHand: onHand.sort(), returned: returned.sort() };
}

/** The kit numbers the records say are at `site` now: on hand, and returned kits awaiting destruction. */
export async function expectedOnHand(
  ctx: AppContext,
  studyCode: string,
  siteCode: string,
): Promise<{ onHand: string[]; returned: string[] }> {
  const study = await getStudyOrThrow(ctx, studyCode);
  const site = await siteByCode(ctx.db, study.id, siteCode);
  return expectedAt(ctx.db, study.id, site.id);
}

/** Kit numbers from a paste or scans: one a line, or separated by commas, semicolons or spaces. */
export function parseCountedKits(text: string): string[] {
  const parts = text.split(/[\s,;]+/).filter(Boolean);
  const problems: Problem[] = [];
  const out = new Set<string>();
  for (const part of parts) {
    try {
      out.add(parseKitNumber(part, "counted"));
    } catch (err) {
      problems.push({ field: "counted", message: (err as Error).message });
    }
  }
  if (problems.length) throw new ServiceError("invalid", problems[0].message, "counted", problems);
  return [...out].sort();
}

/**
 * Counted kits as parseCountedKits splits them, each a typed kit number or a scanned label's address (one a line, as
 * a scanner's Enter leaves them), the labels resolved to this study's kits (resolveKitNumbers); unique, in order.
 */
export async function resolveCountedKits(
  db: DbOrTx,
  study: { id: string; code: string },
  text: string,
): Promise<string[]> {
  const numbers = await resolveKitNumbers(db, study, text.split(/[\s,;]+/).filter(Boolean), "counted");
  return [...new Set(numbers)].sort();
}

export interface ReconciliationResult {
  reconciliationId: string;
  expected: string[];
  returned: string[];
  counted: string[];
  missing: string[];
  unexpected: string[];
}

/** Reconcile a site (supply.reconcile, the monitor): counted kit numbers against the records, sealed. */
export async function reconcileSite(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  input: { site: unknown; counted: unknown },
): Promise<ReconciliationResult> {
  const study = await getStudyOrThrow(ctx, studyCode);
  const site = await siteByCode(ctx.db, study.id, input.site);
  requirePermission(principal, "supply.reconcile", { studyId: study.id, siteId: site.id });
  if (principal.kind !== "user" || !principal.userId)
    throw new ServiceError("forbidden", "a reconciliation is made by a signed-in person, not an API token");
  const counted = await resolveCountedKits(
    ctx.db,
    study,
    Array.isArray(input.counted) ? input.counted.map(String).join("\n") : String(input.counted ?? ""),
  );
  const userId = principal.userId;
  return ctx.db.transaction(async (tx) => {
    const { onHand, returned } = await expectedAt(tx, study.id, site.id);
    const expected = [...onHand, ...returned].sort();
    const countedSet = new Set(counted);
    const expectedSet = new Set(expected);
    const missing = expected.filter((n) => !countedSet.has(n));
    const unexpected = counted.filter((n) => !expectedSet.has(n));
    const id = randomUUID();
    const e = await appendEntry(tx, ctx.crypto, study, "supply.reconciled", {
      reconciliation: id,
      site: site.code,
      expected: expected.length,
      counted: counted.length,
      missing,
      unexpected,
      actor: userId,
    });
    await tx.insert(supplyReconciliations).values({
      id,
      studyId: study.id,
      siteId: site.id,
      expected: expected.length,
      counted: counted.length,
      countedText: canonicalize(counted),
      missingText: canonicalize(missing),
      unexpectedText: canonicalize(unexpected),
      actorUserId: userId,
      entryId: e.id,
    });
    await audit(tx, {
      action: "supply.reconciled",
      ...auditActor(principal),
      studyId: study.id,
      siteId: site.id,
      detail: {
        reconciliation: id,
        site: site.code,
        expected: expected.length,
        counted: counted.length,
        missing: missing.length,
        unexpected: unexpected.length,
        entry: e.id,
      },
    });
    return { reconciliationId: id, expected, returned, counted, missing, unexpected };
  });
}

export interface ReconciliationRow {
  id: string;
  site: string;
  at: Date;
  by: string;
  expected: number;
  counted: number;
  missing: string[];
  unexpected: string[];
  /** The row (and its site) against its entry: a row that differs is never shown as sealed. */
  seal: RowSeal;
}

const parseList = (text: string): string[] => {
  try {
    const v = JSON.parse(text) as unknown;
    return Array.isArray(v) ? v.map(String) : [];
  } catch {
    return [];
  }
};

/** Past reconciliations the principal may see (site-scoped), newest first, with their discrepancies. */
export async function reconciliationView(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
): Promise<ReconciliationRow[]> {
  const study = await getStudyOrThrow(ctx, studyCode);
  const rows = await ctx.db
    .select({
      id: supplyReconciliations.id,
      siteId: supplyReconciliations.siteId,
      site: sites.code,
      at: supplyReconciliations.createdAt,
      by: users.fullName,
      expected: supplyReconciliations.expected,
      counted: supplyReconciliations.counted,
      missingText: supplyReconciliations.missingText,
      unexpectedText: supplyReconciliations.unexpectedText,
    })
    .from(supplyReconciliations)
    .innerJoin(sites, eq(sites.id, supplyReconciliations.siteId))
    .leftJoin(users, eq(users.id, supplyReconciliations.actorUserId))
    .where(and(eq(supplyReconciliations.studyId, study.id)))
    .orderBy(desc(supplyReconciliations.createdAt));
  const visible = rows.filter((r) => can(principal, "supply.view", { studyId: study.id, siteId: r.siteId }));
  const siteOf = new Map(visible.map((r) => [r.id, r.site]));
  const seals = await supplyRowSeals(
    ctx,
    "supply_reconciliations",
    "supply.reconciled",
    visible.map((r) => r.id),
    (r, p) => (p.site === siteOf.get(String(r.id)) ? [] : ["site"]),
  );
  return visible.map((r) => ({
    id: r.id,
    site: r.site,
    at: r.at,
    by: r.by ?? "",
    expected: r.expected,
    counted: r.counted,
    missing: parseList(r.missingText),
    unexpected: parseList(r.unexpectedText),
    seal: seals.get(r.id) ?? {
      seal: { status: "missing", seq: null, batch: null, anchoredOn: [], matchesSeal: false },
      words: `${MISMATCH_TEXT}: row`,
      differs: ["row"],
    },
  }));
}
