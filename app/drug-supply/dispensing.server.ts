/**
 * Dispensing by allocation and returns (issue 21, ADR 0059). The system proposes a kit of the participant's allocated
 * kit type (their randomization slot's), on hand at their site, dispensable, first expiry first; the pharmacist scans
 * the kit's label or types its number (inventory.server.ts resolveKitNumber) and the service refuses a wrong kit with
 * the reason in words (kit-state.ts dispenseRefusal), never naming a kit type. Dispensing takes the kit's row FOR
 * UPDATE and re-reads its facts inside the transaction, so of two pharmacists dispensing one kit at once one wins and
 * the other is told it was already dispensed (the unique kit of supply_dispensings guards as well). Dispensings and
 * returns are trial data: refused under a database lock. A return's compliance: units taken against the days since
 * dispensing times the lot's daily units.
 */
import { randomInt, randomUUID } from "node:crypto";
import { and, asc, eq, inArray, sql } from "drizzle-orm";
import type { DbOrTx } from "../../db/client.ts";
import {
  participants,
  randomizationAllocations,
  randomizationSlots,
  sites,
  supplyDispensings,
  supplyKitAssignments,
  supplyKits,
  supplyLots,
  supplyReturns,
  supplyShipmentKits,
  supplyShipments,
  users,
} from "../../db/schema/index.ts";
import { audit } from "../audit-trail/record-event.server.ts";
import { refuseUnderDatabaseLock } from "../database-lock/refuse-under-lock.server.ts";
import { appendEntry } from "../log/append-entry.server.ts";
import { auditActor, auditDetail, payloadActor, rowTokenColumns } from "../platform/attribution.ts";
import type { AppContext } from "../platform/context.server.ts";
import { isUniqueViolation, ServiceError } from "../platform/errors.server.ts";
import { type Action, can, type Principal } from "../platform/permissions.server.ts";
import { todayIn } from "../records/records.server.ts";
import { getStudyOrThrow } from "../studies/studies.server.ts";
import { currentSchedule } from "../visit-schedule/schedule.server.ts";
import { kitFacts } from "./kit-facts.server.ts";
import { dispenseRefusal, type KitFacts, kitState } from "./kit-state.ts";
import { type RowSeal, resolveKitNumber, rowSeals, siteByCode } from "./inventory.server.ts";

export interface SupplyParticipant {
  id: string;
  subjectCode: string;
  siteId: string;
  siteCode: string;
  timeZone: string;
}

/**
 * The participant `subject` of the study for a supply action: not found unless the principal may see the supply of
 * the participant's site (no hint that the subject exists), forbidden without `action` there.
 */
export async function supplyParticipant(
  ctx: AppContext,
  principal: Principal,
  studyId: string,
  subject: unknown,
  action: Action,
): Promise<SupplyParticipant> {
  const code = String(subject ?? "")
    .trim()
    .toUpperCase();
  if (!code) throw new ServiceError("invalid", "subject: choose a participant", "subject");
  const [p] = await ctx.db
    .select({
      id: participants.id,
      subjectCode: participants.subjectCode,
      siteId: participants.siteId,
      siteCode: sites.code,
      timeZone: sites.timeZone,
    })
    .from(participants)
    .innerJoin(sites, eq(sites.id, participants.siteId))
    .where(and(eq(participants.studyId, studyId), eq(participants.subjectCode, code)));
  if (!p || !can(principal, "supply.view", { studyId, siteId: p.siteId }))
    throw new ServiceError("not_found", `subject: there is no participant ${code} at your sites`, "subject");
  if (!can(principal, action, { studyId, siteId: p.siteId }))
    throw new ServiceError("forbidden", `not permitted: ${action} at site ${p.siteCode}`, "subject");
  return p;
}

/** The participant's allocation and its slot's kit type (server only: never sent to a blinded role). */
async function allocationOf(db: DbOrTx, participantId: string) {
  const [a] = await db
    .select({ id: randomizationAllocations.id, kitType: randomizationSlots.kitType })
    .from(randomizationAllocations)
    .innerJoin(randomizationSlots, eq(randomizationSlots.id, randomizationAllocations.slotId))
    .where(eq(randomizationAllocations.participantId, participantId));
  return a ?? null;
}

const notRandomized = (subject: string) =>
  new ServiceError(
    "conflict",
    `subject: ${subject} is not randomized yet: a kit is dispensed by the participant's allocation`,
    "subject",
  );

/** The randomized participants of a site (subject codes), for the pharmacy's participant choice. */
export async function randomizedSubjects(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  siteCode: string,
): Promise<string[]> {
  const study = await getStudyOrThrow(ctx, studyCode);
  const site = await siteByCode(ctx.db, study.id, siteCode);
  if (!can(principal, "supply.view", { studyId: study.id, siteId: site.id })) return [];
  const rows = await ctx.db
    .select({ subject: participants.subjectCode })
    .from(randomizationAllocations)
    .innerJoin(participants, eq(participants.id, randomizationAllocations.participantId))
    .where(and(eq(participants.studyId, study.id), eq(participants.siteId, site.id)))
    .orderBy(asc(participants.subjectCode));
  return rows.map((r) => r.subject);
}

/** The visits of the study's schedule in force (code and name), empty when it has none. */
export async function scheduleVisits(ctx: AppContext, studyId: string): Promise<{ code: string; name: string }[]> {
  const s = await currentSchedule(ctx.db, studyId);
  return s ? s.definition.visits.map((v) => ({ code: v.code, name: v.name })) : [];
}

/** The schedule's visit `raw` (null when empty), or a refusal naming the visit field. */
async function visitOf(ctx: AppContext, studyId: string, raw: unknown): Promise<string | null> {
  const code = String(raw ?? "").trim();
  if (!code) return null;
  const visits = await scheduleVisits(ctx, studyId);
  if (!visits.some((v) => v.code === code))
    throw new ServiceError("invalid", `visit: ${JSON.stringify(code)} is not a visit of the schedule`, "visit");
  return code;
}

export interface OpenAssignment {
  id: string;
  participantId: string;
  kitId: string;
  kit: string;
}

/**
 * The open assignments of a site's participants, by participant: their latest assignment whose kit is still on hand
 * at the site and dispensable today (not dispensed, not destroyed, not recalled, not expired), the participant not
 * dispensed another kit since. Server only: read inside the caller's transaction after its locks.
 */
export async function openAssignments(
  db: DbOrTx,
  studyId: string,
  siteId: string,
  today: string,
): Promise<Map<string, OpenAssignment>> {
  const rows = await db
    .select({
      id: supplyKitAssignments.id,
      participantId: supplyKitAssignments.participantId,
      kitId: supplyKitAssignments.kitId,
      at: supplyKitAssignments.createdAt,
    })
    .from(supplyKitAssignments)
    .where(and(eq(supplyKitAssignments.studyId, studyId), eq(supplyKitAssignments.siteId, siteId)))
    .orderBy(asc(supplyKitAssignments.createdAt), asc(supplyKitAssignments.id));
  const latest = new Map<string, (typeof rows)[number]>();
  for (const r of rows) latest.set(r.participantId, r);
  if (!latest.size) return new Map();
  const facts = new Map(
    (await kitFacts(db, studyId, { kitIds: [...latest.values()].map((r) => r.kitId) })).map((f) => [f.id, f]),
  );
  const given = await db
    .select({ participantId: supplyDispensings.participantId, at: supplyDispensings.createdAt })
    .from(supplyDispensings)
    .where(and(eq(supplyDispensings.studyId, studyId), inArray(supplyDispensings.participantId, [...latest.keys()])));
  const out = new Map<string, OpenAssignment>();
  for (const r of latest.values()) {
    const f = facts.get(r.kitId);
    if (!f || f.shipment?.siteId !== siteId || !kitState(f, today).dispensable) continue;
    if (given.some((g) => g.participantId === r.participantId && g.at >= r.at)) continue;
    out.set(r.participantId, { id: r.id, participantId: r.participantId, kitId: r.kitId, kit: f.number });
  }
  return out;
}

/** The participant's row locked for the rest of the transaction: their assignments and dispensings go one by one. */
const lockParticipant = (tx: DbOrTx, participantId: string) =>
  tx.execute(sql`SELECT id FROM participants WHERE id = ${participantId} FOR NO KEY UPDATE`);

/**
 * The kit assigned to `subject` for their next dispensing (site-scoped supply.dispense): their open assignment if
 * they have one (no new row), else a kit drawn with a CSPRNG among their site's dispensable kits of their allocated
 * kit type that no other participant's open assignment holds, sealed (`supply.kit_assigned`) and audited. Drawn at
 * random, so which kit a participant is offered says nothing of who shares their kit type. Only the kit's number.
 */
export async function assignKit(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  subject: string,
  input: { visit?: unknown } = {},
): Promise<{ assignmentId: string; kit: string }> {
  const study = await getStudyOrThrow(ctx, studyCode);
  const p = await supplyParticipant(ctx, principal, study.id, subject, "supply.dispense");
  const visit = await visitOf(ctx, study.id, input.visit);
  const today = todayIn(p.timeZone);
  const noKit = () =>
    new ServiceError(
      "conflict",
      `subject: no kit for ${p.subjectCode} is on hand at site ${p.siteCode} ` +
        "(in date, released, not quarantined or recalled, not assigned to someone else): ask the depot for a shipment",
      "subject",
    );
  return ctx.db.transaction(async (tx) => {
    await refuseUnderDatabaseLock(tx, study.id, "assigning a kit");
    await lockParticipant(tx, p.id);
    const a = await allocationOf(tx, p.id);
    if (!a) throw notRandomized(p.subjectCode);
    const mine = (await openAssignments(tx, study.id, p.siteId, today)).get(p.id);
    if (mine) return { assignmentId: mine.id, kit: mine.kit };
    const usable = (f: KitFacts & { kitType: string }) =>
      f.kitType === a.kitType && f.shipment?.siteId === p.siteId && kitState(f, today).dispensable;
    const ids = (await kitFacts(tx, study.id, { siteId: p.siteId }))
      .filter(usable)
      .map((f) => f.id)
      .sort();
    if (!ids.length) throw noKit();
    // The candidates locked (by id: no deadlock with another assignment), then re-read with the open assignments.
    await tx.execute(
      sql`SELECT id FROM supply_kits WHERE id IN (${sql.join(
        ids.map((i) => sql`${i}`),
        sql`, `,
      )}) ORDER BY id FOR UPDATE`,
    );
    const held = new Set([...(await openAssignments(tx, study.id, p.siteId, today)).values()].map((o) => o.kitId));
    const free = (await kitFacts(tx, study.id, { kitIds: ids })).filter((f) => usable(f) && !held.has(f.id));
    if (!free.length) throw noKit();
    const f = free[randomInt(free.length)];
    const id = randomUUID();
    const e = await appendEntry(tx, ctx.crypto, study, "supply.kit_assigned", {
      assignment: id,
      kit: f.id,
      number: f.number,
      subject: p.subjectCode,
      site: p.siteCode,
      visit,
      ...payloadActor(principal),
    });
    await tx.insert(supplyKitAssignments).values({
      id,
      studyId: study.id,
      kitId: f.id,
      participantId: p.id,
      siteId: p.siteId,
      visit,
      actorUserId: principal.userId,
      ...rowTokenColumns(principal),
      entryId: e.id,
    });
    await audit(tx, {
      action: "supply.kit_assigned",
      ...auditActor(principal),
      studyId: study.id,
      siteId: p.siteId,
      participantId: p.id,
      detail: auditDetail(principal, { assignment: id, kit: f.number, visit, entry: e.id }),
    });
    return { assignmentId: id, kit: f.number };
  });
}

/**
 * The kit assigned to `subject` and not dispensed yet (read only: assignKit draws one), or null with `why` in words.
 * Only the kit's number, never its type.
 */
export async function proposeKit(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  subject: string,
): Promise<{ kit: string | null; why?: string }> {
  const study = await getStudyOrThrow(ctx, studyCode);
  const p = await supplyParticipant(ctx, principal, study.id, subject, "supply.dispense");
  if (!(await allocationOf(ctx.db, p.id))) return { kit: null, why: `${p.subjectCode} is not randomized yet` };
  const mine = (await openAssignments(ctx.db, study.id, p.siteId, todayIn(p.timeZone))).get(p.id);
  if (mine) return { kit: mine.kit };
  return { kit: null, why: `no kit is assigned to ${p.subjectCode} yet: assign one` };
}

/**
 * Dispense kit `input.kit` to `subject` (site-scoped supply.dispense), at `input.visit` of the schedule if given. The
 * kit must be the one assigned to them (assignKit); a kit not at their site is refused as such before any other
 * reason, then its state, then the assignment, then (defence in depth) the allocation's kit type. Every refused
 * attempt is written to the audit trail (`supply.dispense_refused`, the reason in words) so probing shows.
 */
export async function dispenseKit(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  subject: string,
  input: { kit: unknown; visit?: unknown },
): Promise<{ dispensingId: string; kit: string }> {
  const study = await getStudyOrThrow(ctx, studyCode);
  const p = await supplyParticipant(ctx, principal, study.id, subject, "supply.dispense");
  // A scanned label not of this study is audited as such (a counterfeit label shows), never with its token; a typed
  // number either resolves or is refused as invalid (not audited).
  let number = "(a scanned label)";
  try {
    number = await resolveKitNumber(ctx.db, study, input.kit);
    const visit = await visitOf(ctx, study.id, input.visit);
    const today = todayIn(p.timeZone);
    return await ctx.db.transaction(async (tx) => {
      await refuseUnderDatabaseLock(tx, study.id, "dispensing a kit");
      await lockParticipant(tx, p.id);
      const a = await allocationOf(tx, p.id);
      if (!a) throw notRandomized(p.subjectCode);
      const [k] = await tx
        .select({ id: supplyKits.id })
        .from(supplyKits)
        .where(and(eq(supplyKits.studyId, study.id), eq(supplyKits.number, number)));
      if (!k) throw new ServiceError("not_found", `kit: there is no kit ${number} in ${study.code}`, "kit");
      // The kit's row locked, then its facts re-read: a concurrent dispensing of it has committed or waits for us.
      await tx.execute(sql`SELECT id FROM supply_kits WHERE id = ${k.id} FOR UPDATE`);
      const [f] = await kitFacts(tx, study.id, { kitIds: [k.id] });
      const at = { siteId: p.siteId, siteCode: p.siteCode, today };
      const refusal = dispenseRefusal(f, { ...at, matches: true });
      if (refusal) throw new ServiceError("conflict", refusal, "kit");
      const assigned = (await openAssignments(tx, study.id, p.siteId, today)).get(p.id);
      if (!assigned)
        throw new ServiceError(
          "conflict",
          `kit ${number} is not the kit assigned to ${p.subjectCode} (no kit is assigned yet): assign a kit first`,
          "kit",
        );
      if (assigned.kitId !== f.id)
        throw new ServiceError(
          "conflict",
          `kit ${number} is not the kit assigned to ${p.subjectCode} (kit ${assigned.kit}): ` +
            `dispense kit ${assigned.kit}`,
          "kit",
        );
      const wrongType = dispenseRefusal(f, { ...at, matches: f.kitType === a.kitType });
      if (wrongType) throw new ServiceError("conflict", wrongType, "kit");
      const id = randomUUID();
      const e = await appendEntry(tx, ctx.crypto, study, "supply.kit_dispensed", {
        dispensing: id,
        kit: f.id,
        number: f.number,
        subject: p.subjectCode,
        site: p.siteCode,
        visit,
        ...payloadActor(principal),
      });
      await tx.insert(supplyDispensings).values({
        id,
        studyId: study.id,
        kitId: f.id,
        participantId: p.id,
        allocationId: a.id,
        siteId: p.siteId,
        visit,
        actorUserId: principal.userId,
        ...rowTokenColumns(principal),
        entryId: e.id,
      });
      await audit(tx, {
        action: "supply.kit_dispensed",
        ...auditActor(principal),
        studyId: study.id,
        siteId: p.siteId,
        participantId: p.id,
        detail: auditDetail(principal, { dispensing: id, kit: f.number, visit, entry: e.id }),
      });
      return { dispensingId: id, kit: f.number };
    });
  } catch (err) {
    // The unique kit of supply_dispensings: a dispensing that slipped past the row lock still loses.
    const refused = isUniqueViolation(err)
      ? new ServiceError("conflict", `kit ${number} has already been dispensed`, "kit")
      : err;
    if (refused instanceof ServiceError && (refused.code === "conflict" || refused.code === "not_found"))
      await audit(ctx.db, {
        action: "supply.dispense_refused",
        outcome: "failure",
        ...auditActor(principal),
        studyId: study.id,
        siteId: p.siteId,
        participantId: p.id,
        detail: auditDetail(principal, { subject: p.subjectCode, kit: number, reason: refused.message }),
      });
    throw refused;
  }
}

const DAY_MS = 86_400_000;

/** A real day of the calendar as YYYY-MM-DD (2026-11-31 is not one). */
export function isCalendarDate(text: string): boolean {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text);
  if (!m) return false;
  const d = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])));
  return d.toISOString().slice(0, 10) === text;
}
const dayNumber = (d: string) => Math.round(Date.parse(`${d}T00:00:00Z`) / DAY_MS);

/**
 * Compliance in percent: units taken (dispensed - returned) against days x daily units; null when the lot has no
 * daily units or the kit came back the day it was dispensed. Capped at 1000 (the payload's bound).
 */
export function compliancePercent(u: {
  unitsDispensed: number;
  unitsReturned: number;
  days: number;
  dailyUnits: number;
}): number | null {
  if (u.dailyUnits <= 0 || u.days <= 0) return null;
  const pct = Math.round((100 * (u.unitsDispensed - u.unitsReturned)) / (u.days * u.dailyUnits));
  return Math.min(1000, Math.max(0, pct));
}

/**
 * Record a dispensed kit's return: units counted back on `returnedOn` (site-scoped supply.return); the kit typed or
 * its label scanned (resolveKitNumber); its number is returned.
 */
export async function returnKit(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  input: { kit: unknown; unitsReturned: unknown; returnedOn: unknown },
): Promise<{ returnId: string; kit: string; compliancePercent: number | null }> {
  const study = await getStudyOrThrow(ctx, studyCode);
  const number = await resolveKitNumber(ctx.db, study, input.kit);
  const unitsText = String(input.unitsReturned ?? "").trim();
  if (!/^\d{1,5}$/.test(unitsText))
    throw new ServiceError("invalid", "units returned: give the number of units counted back (0 or more)", "units");
  const unitsReturned = Number(unitsText);
  const returnedOn = String(input.returnedOn ?? "").trim();
  if (!isCalendarDate(returnedOn))
    throw new ServiceError("invalid", "date returned: give a date of the calendar as YYYY-MM-DD", "returnedOn");
  const [d] = await ctx.db
    .select({
      kitId: supplyKits.id,
      dispensingId: supplyDispensings.id,
      dispensedAt: supplyDispensings.createdAt,
      subject: participants.subjectCode,
      participantId: participants.id,
      siteId: sites.id,
      siteCode: sites.code,
      timeZone: sites.timeZone,
      dailyUnits: supplyLots.dailyUnits,
      shippedTo: supplyShipments.siteId,
    })
    .from(supplyKits)
    .innerJoin(supplyLots, eq(supplyLots.id, supplyKits.lotId))
    .leftJoin(supplyShipmentKits, eq(supplyShipmentKits.kitId, supplyKits.id))
    .leftJoin(supplyShipments, eq(supplyShipments.id, supplyShipmentKits.shipmentId))
    .leftJoin(supplyDispensings, eq(supplyDispensings.kitId, supplyKits.id))
    .leftJoin(participants, eq(participants.id, supplyDispensings.participantId))
    .leftJoin(sites, eq(sites.id, supplyDispensings.siteId))
    .where(and(eq(supplyKits.studyId, study.id), eq(supplyKits.number, number)));
  if (!d) throw new ServiceError("not_found", `kit: there is no kit ${number} in ${study.code}`, "kit");
  // Where the kit is first (permission and site), then its state: nothing is said of a kit outside your sites.
  const kitSite = d.siteId ?? d.shippedTo ?? null;
  const studyWide =
    principal.platformAdmin || principal.memberships.some((m) => m.studyId === study.id && m.siteId === null);
  if (!can(principal, "supply.view", { studyId: study.id, siteId: kitSite }) || (kitSite === null && !studyWide))
    throw new ServiceError("not_found", `kit: there is no kit ${number} at your sites`, "kit");
  if (!can(principal, "supply.return", { studyId: study.id, siteId: kitSite }))
    throw new ServiceError(
      "forbidden",
      `not permitted: supply.return${d.siteCode ? ` at site ${d.siteCode}` : ""}`,
      "kit",
    );
  if (!d.dispensingId || !d.siteId || !d.subject || !d.participantId)
    throw new ServiceError(
      "conflict",
      `kit ${number} has not been dispensed: only a dispensed kit can be returned`,
      "kit",
    );
  const tz = d.timeZone ?? "UTC";
  const dispensedOn = todayIn(tz, d.dispensedAt ?? new Date());
  const today = todayIn(tz);
  if (returnedOn < dispensedOn)
    throw new ServiceError(
      "invalid",
      `date returned: ${returnedOn} is before the kit was dispensed (${dispensedOn})`,
      "returnedOn",
    );
  if (returnedOn > today)
    throw new ServiceError(
      "invalid",
      `date returned: ${returnedOn} is in the future (today is ${today})`,
      "returnedOn",
    );
  const { dispensingId, siteId, subject, participantId } = d;
  return ctx.db.transaction(async (tx) => {
    await refuseUnderDatabaseLock(tx, study.id, "recording a returned kit");
    await tx.execute(sql`SELECT id FROM supply_kits WHERE id = ${d.kitId} FOR UPDATE`);
    const [f] = await kitFacts(tx, study.id, { kitIds: [d.kitId] });
    const [prev] = await tx
      .select({ on: supplyReturns.returnedOn, by: users.fullName })
      .from(supplyReturns)
      .leftJoin(users, eq(users.id, supplyReturns.actorUserId))
      .where(eq(supplyReturns.kitId, d.kitId));
    if (prev)
      throw new ServiceError(
        "conflict",
        `kit ${number} was already returned on ${prev.on}${prev.by ? ` (recorded by ${prev.by})` : ""}`,
        "kit",
      );
    if (f.destroyed) throw new ServiceError("conflict", `kit ${number} has been destroyed`, "kit");
    if (unitsReturned > f.units)
      throw new ServiceError(
        "invalid",
        `units returned: ${unitsReturned} is more than the ${f.units} units dispensed in kit ${number}`,
        "units",
      );
    const compliance = compliancePercent({
      unitsDispensed: f.units,
      unitsReturned,
      days: dayNumber(returnedOn) - dayNumber(dispensedOn),
      dailyUnits: d.dailyUnits,
    });
    const id = randomUUID();
    const e = await appendEntry(tx, ctx.crypto, study, "supply.kit_returned", {
      return: id,
      kit: f.id,
      number: f.number,
      subject,
      unitsReturned,
      unitsDispensed: f.units,
      compliancePercent: compliance,
      returnedOn,
      ...payloadActor(principal),
    });
    await tx.insert(supplyReturns).values({
      id,
      studyId: study.id,
      kitId: f.id,
      dispensingId,
      unitsReturned,
      unitsDispensed: f.units,
      compliancePercent: compliance,
      returnedOn,
      actorUserId: principal.userId,
      ...rowTokenColumns(principal),
      entryId: e.id,
    });
    await audit(tx, {
      action: "supply.kit_returned",
      ...auditActor(principal),
      studyId: study.id,
      siteId,
      participantId,
      detail: auditDetail(principal, {
        return: id,
        kit: f.number,
        unitsReturned,
        compliancePercent: compliance,
        entry: e.id,
      }),
    });
    return { returnId: id, kit: f.number, compliancePercent: compliance };
  });
}

export interface ParticipantKit {
  kit: string;
  visit: string | null;
  dispensedAt: Date;
  dispensedBy: string | null;
  units: number;
  returned: { on: string; units: number; compliancePercent: number | null; seal: string; matches: boolean } | null;
  /** The dispensing row against its entry, in words ("does not match its sealed entry: ..." when it differs). */
  seal: string;
  matches: boolean;
}

/** The kits dispensed to a participant and their returns (never a kit type), for the participant page. */
export async function participantSupply(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  subject: string,
): Promise<ParticipantKit[]> {
  const study = await getStudyOrThrow(ctx, studyCode);
  const p = await supplyParticipant(ctx, principal, study.id, subject, "supply.view");
  const rows = await ctx.db
    .select({
      id: supplyDispensings.id,
      returnId: supplyReturns.id,
      site: sites.code,
      kit: supplyKits.number,
      units: supplyKits.units,
      visit: supplyDispensings.visit,
      at: supplyDispensings.createdAt,
      by: users.fullName,
      tokenName: supplyDispensings.actorTokenName,
      on: supplyReturns.returnedOn,
      unitsReturned: supplyReturns.unitsReturned,
      compliance: supplyReturns.compliancePercent,
    })
    .from(supplyDispensings)
    .innerJoin(supplyKits, eq(supplyKits.id, supplyDispensings.kitId))
    .leftJoin(users, eq(users.id, supplyDispensings.actorUserId))
    .leftJoin(supplyReturns, eq(supplyReturns.dispensingId, supplyDispensings.id))
    .leftJoin(sites, eq(sites.id, supplyDispensings.siteId))
    .where(eq(supplyDispensings.participantId, p.id))
    .orderBy(asc(supplyDispensings.createdAt));
  const number = new Map(rows.flatMap((r) => [[r.id, r.kit] as const, [r.returnId ?? "", r.kit] as const]));
  const site = new Map(rows.map((r) => [r.id, r.site]));
  const same = (field: string, a: unknown, b: unknown) => (a === b ? [] : [field]);
  const seals = await rowSeals(
    ctx.db,
    ctx,
    "supply_dispensings",
    rows.map((r) => r.id),
    (row, pl) => [
      ...same("number", pl.number, number.get(String(row.id))),
      ...same("subject", pl.subject, p.subjectCode),
      ...same("site", pl.site, site.get(String(row.id))),
    ],
  );
  const returnSeals = await rowSeals(
    ctx.db,
    ctx,
    "supply_returns",
    rows.flatMap((r) => (r.returnId ? [r.returnId] : [])),
    (row, pl) => [
      ...same("number", pl.number, number.get(String(row.id))),
      ...same("subject", pl.subject, p.subjectCode),
    ],
  );
  const gone = { words: "does not match its sealed entry: row", matches: false };
  const sealOf = (m: Map<string, RowSeal>, id: string) => {
    const x = m.get(id);
    return x ? { words: x.words, matches: x.matches } : gone;
  };
  return rows.map((r) => ({
    kit: r.kit,
    visit: r.visit,
    dispensedAt: r.at,
    dispensedBy: r.by ?? (r.tokenName ? `API token ${r.tokenName}` : null),
    units: r.units,
    returned:
      r.on === null || !r.returnId
        ? null
        : {
            on: r.on,
            units: r.unitsReturned ?? 0,
            compliancePercent: r.compliance ?? null,
            seal: sealOf(returnSeals, r.returnId).words,
            matches: sealOf(returnSeals, r.returnId).matches,
          },
    seal: sealOf(seals, r.id).words,
    matches: sealOf(seals, r.id).matches,
  }));
}
