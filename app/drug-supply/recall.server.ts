/**
 * Recall of a lot (issue 21, ADR 0063): the sponsor recalls a lot with a reason; every kit of it is blocked at once
 * (kit-state.ts reads `lotRecalled` from the recall row: no kit of it is dispensed or shipped again), the participants
 * who received one are listed, and each affected site is told through the outbox in the recall's transaction: its
 * blocked kits and its affected participants. The one place a participant is joined to a lot for blinded staff
 * (ADR 0057): a safety action. The payload holds counts and the reason's salted hash only.
 */
import { randomUUID } from "node:crypto";
import { asc, eq, sql } from "drizzle-orm";
import { z } from "zod";
import { saltedTextHash } from "../../anchoring/log/text-hash.ts";
import type { DbOrTx } from "../../db/client.ts";
import { participants, sites, supplyDispensings, supplyKits, supplyLotRecalls, users } from "../../db/schema/index.ts";
import { audit } from "../audit-trail/record-event.server.ts";
import { appendEntry } from "../log/append-entry.server.ts";
import { notifyStudyRoles } from "../notifications/notify.server.ts";
import { auditActor } from "../platform/attribution.ts";
import type { AppContext } from "../platform/context.server.ts";
import { isUniqueViolation, ServiceError } from "../platform/errors.server.ts";
import { can, type Principal } from "../platform/permissions.server.ts";
import { getStudyOrThrow } from "../studies/studies.server.ts";
import { kitFacts } from "./kit-facts.server.ts";
import { kitLocation } from "./kit-state.ts";
import { lotByNumber, parseSupplyInput, recalledRefusal } from "./lots.server.ts";

/** Who at an affected site is told of a recall. */
export const RECALL_SITE_ROLES = ["site_pharmacist", "unblinded_pharmacist", "investigator", "coordinator"] as const;
/** The sponsor's side, told of every recall (except the person who made it). */
export const RECALL_SPONSOR_ROLES = ["admin"] as const;

export interface AffectedSubject {
  subject: string;
  site: string;
  kit: string;
  /** When the kit was dispensed (ISO time). */
  dispensedAt: string;
}

const RecallInput = z.object({
  lotNumber: z.string().trim().min(1, "choose the lot to recall"),
  reason: z
    .string()
    .trim()
    .min(1, "give the reason for the recall (it is shown to the sites)")
    .max(2000, "keep the reason under 2000 characters"),
});

/** The participants who received a kit of the lot, by subject code (then kit number), with the site's id. */
async function dispensedOfLot(db: DbOrTx, lotId: string): Promise<(AffectedSubject & { siteId: string })[]> {
  const rows = await db
    .select({
      subject: participants.subjectCode,
      siteId: sites.id,
      site: sites.code,
      kit: supplyKits.number,
      at: supplyDispensings.createdAt,
    })
    .from(supplyDispensings)
    .innerJoin(supplyKits, eq(supplyKits.id, supplyDispensings.kitId))
    .innerJoin(participants, eq(participants.id, supplyDispensings.participantId))
    .innerJoin(sites, eq(sites.id, supplyDispensings.siteId))
    .where(eq(supplyKits.lotId, lotId))
    .orderBy(asc(participants.subjectCode), asc(supplyKits.number));
  return rows.map((r) => ({
    subject: r.subject,
    siteId: r.siteId,
    site: r.site,
    kit: r.kit,
    dispensedAt: r.at.toISOString(),
  }));
}

/**
 * May this principal see who received a lot at this site (the sponsor, or a role that sees kit types)? Without a
 * site: anywhere. A site-scoped role (the unblinded pharmacist) sees its own sites' participants only.
 */
const mayListAffected = (p: Principal, studyId: string, siteId?: string) =>
  can(p, "supply.release", { studyId, siteId }) || can(p, "supply.view_kit_types", { studyId, siteId });

/**
 * The participants who received a kit of lot `lotNumber` (ADR 0063): for the sponsor's recall page and
 * `trialseal lots affected` (principal null: the operator's CLI). Sorted by subject code.
 */
export async function affectedByLot(
  ctx: AppContext,
  principal: Principal | null,
  studyCode: string,
  lotNumber: string,
): Promise<AffectedSubject[]> {
  const study = await getStudyOrThrow(ctx, studyCode);
  if (principal && !mayListAffected(principal, study.id))
    throw new ServiceError("forbidden", "not permitted: only the sponsor lists the participants who received a lot");
  const lot = await lotByNumber(ctx.db, study, lotNumber);
  return (await dispensedOfLot(ctx.db, lot.id))
    .filter((r) => !principal || mayListAffected(principal, study.id, r.siteId))
    .map(({ siteId, ...r }) => r);
}

/**
 * Recall a lot (supply.release, the sponsor; a signed-in person): once. In one transaction: every kit row of the lot
 * locked (a dispensing of one of them either committed before, and its participant is listed, or waits and is then
 * refused as recalled), the recall row and its `supply.lot_recalled` entry, an audit event, a notice to each affected
 * site and to the sponsor. `kitsBlocked`: kits of the lot not dispensed nor destroyed (at the depot or at sites).
 */
export async function recallLot(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  input: unknown,
): Promise<{ recallId: string; kitsBlocked: number; subjects: AffectedSubject[]; sitesNotified: number }> {
  const study = await getStudyOrThrow(ctx, studyCode);
  if (!can(principal, "supply.release", { studyId: study.id }))
    throw new ServiceError("forbidden", "not permitted: supply.release (only the sponsor recalls lots)");
  if (principal.kind !== "user" || !principal.userId)
    throw new ServiceError("forbidden", "a lot is recalled by a signed-in person of the sponsor, not an API token");
  const v = parseSupplyInput(RecallInput, input);
  const lot = await lotByNumber(ctx.db, study, v.lotNumber);
  const already = async (db: DbOrTx) => {
    const [r] = await db.select().from(supplyLotRecalls).where(eq(supplyLotRecalls.lotId, lot.id));
    return r ? recalledRefusal(db, lot.lotNumber, r, "recalling it again") : null;
  };
  const before = await already(ctx.db);
  if (before) throw before;
  const [who] = await ctx.db
    .select({ name: users.fullName, email: users.email })
    .from(users)
    .where(eq(users.id, principal.userId));
  const by = who ? `${who.name} (${who.email})` : principal.label;
  try {
    return await ctx.db.transaction(async (tx) => {
      await tx.execute(sql`SELECT 1 FROM supply_lots WHERE id = ${lot.id} FOR UPDATE`);
      await tx.execute(sql`SELECT id FROM supply_kits WHERE lot_id = ${lot.id} ORDER BY id FOR UPDATE`);
      const again = await already(tx);
      if (again) throw again;
      const facts = await kitFacts(tx, study.id, { lotId: lot.id });
      const subjects = await dispensedOfLot(tx, lot.id);
      // Each affected site: the kits of the lot it holds (blocked) and its participants who received one.
      const perSite = new Map<string, { siteId: string; kits: string[]; subjects: AffectedSubject[] }>();
      const siteEntry = (siteId: string, code: string) => {
        const s = perSite.get(code) ?? { siteId, kits: [], subjects: [] };
        perSite.set(code, s);
        return s;
      };
      let kitsBlocked = 0;
      for (const f of facts) {
        const where = kitLocation(f);
        if (where === "destroyed" || where === "dispensed" || where === "returned") continue;
        kitsBlocked++;
        if (f.shipment) siteEntry(f.shipment.siteId, f.shipment.siteCode).kits.push(f.number);
      }
      const siteIds = new Map(
        (await tx.select({ id: sites.id, code: sites.code }).from(sites).where(eq(sites.studyId, study.id))).map(
          (s) => [s.code, s.id],
        ),
      );
      for (const s of subjects) siteEntry(siteIds.get(s.site) ?? "", s.site).subjects.push(s);
      const id = randomUUID();
      const e = await appendEntry(tx, ctx.crypto, study, "supply.lot_recalled", (salt) => ({
        recall: id,
        lot: lot.id,
        reasonHash: saltedTextHash(ctx.crypto, salt, v.reason),
        kitsBlocked,
        subjectsAffected: new Set(subjects.map((s) => s.subject)).size,
        sitesNotified: perSite.size,
        actor: principal.userId as string,
      }));
      await tx.insert(supplyLotRecalls).values({
        id,
        studyId: study.id,
        lotId: lot.id,
        reason: v.reason,
        kitsBlocked,
        subjectsAffected: new Set(subjects.map((s) => s.subject)).size,
        sitesNotified: perSite.size,
        actorUserId: principal.userId,
        entryId: e.id,
      });
      // The audit trail is read by blinded roles: counts, no participant, no kit.
      await audit(tx, {
        action: "supply.lot_recalled",
        ...auditActor(principal),
        studyId: study.id,
        detail: {
          recall: id,
          lot: lot.id,
          lotNumber: lot.lotNumber,
          kitsBlocked,
          subjectsAffected: new Set(subjects.map((s) => s.subject)).size,
          sites: [...perSite.keys()].sort(),
          entry: e.id,
        },
      });
      const when = e.at instanceof Date ? e.at : new Date(e.at);
      const at = `${when.toISOString().replace("T", " ").slice(0, 16)} UTC`;
      const subjectLine = (s: AffectedSubject) =>
        `- ${s.subject} (kit ${s.kit}, dispensed ${s.dispensedAt.slice(0, 10)})`;
      for (const [code, s] of [...perSite.entries()].sort(([a], [b]) => a.localeCompare(b))) {
        await notifyStudyRoles(tx, {
          studyId: study.id,
          siteId: s.siteId,
          roles: RECALL_SITE_ROLES,
          exceptUserId: principal.userId,
          kind: "lot_recalled",
          subject: `${study.code}: lot ${lot.lotNumber} recalled: action needed at site ${code}`,
          body: [
            `${by} recalled lot ${lot.lotNumber} of study ${study.code} on ${at}.`,
            `Reason: ${v.reason}`,
            "",
            s.kits.length
              ? `Kits of this lot at site ${code}: do not dispense them; keep them apart until they are destroyed:`
              : `Site ${code} holds no undispensed kit of this lot.`,
            ...s.kits.sort().map((k) => `- ${k}`),
            "",
            s.subjects.length
              ? `Participants at site ${code} who received a kit of this lot (contact them as the protocol says):`
              : `No participant at site ${code} received a kit of this lot.`,
            ...s.subjects.map(subjectLine),
          ].join("\n"),
        });
      }
      const uniqueSubjects = [...new Set(subjects.map((s) => s.subject))];
      await notifyStudyRoles(tx, {
        studyId: study.id,
        siteId: null,
        roles: RECALL_SPONSOR_ROLES,
        exceptUserId: principal.userId,
        kind: "lot_recalled",
        subject: `${study.code}: lot ${lot.lotNumber} recalled`,
        body: [
          `${by} recalled lot ${lot.lotNumber} of study ${study.code} on ${at}.`,
          `Reason: ${v.reason}`,
          "",
          `Kits blocked: ${kitsBlocked}. Participants who received a kit of it: ${uniqueSubjects.length}.`,
          `Sites notified: ${[...perSite.keys()].sort().join(", ") || "none"}.`,
          ...subjects.map((s) => `- ${s.subject} at ${s.site} (kit ${s.kit}, dispensed ${s.dispensedAt.slice(0, 10)})`),
        ].join("\n"),
      });
      // The recall's own answer follows affectedByLot's scope (a sponsor acting for some sites only sees theirs).
      const visible = subjects
        .filter((x) => mayListAffected(principal, study.id, x.siteId))
        .map(({ siteId, ...x }) => x);
      return { recallId: id, kitsBlocked, subjects: visible, sitesNotified: perSite.size };
    });
  } catch (err) {
    if (isUniqueViolation(err)) throw (await already(ctx.db)) ?? err;
    throw err;
  }
}
