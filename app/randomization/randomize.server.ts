/**
 * Randomizing a participant (issue 20, ADR 0052): the stratum is the participant's site and the factor levels given;
 * under the stratum row's lock (`FOR UPDATE`) the next slot is the number of allocations already in it, so two
 * randomizations at once take consecutive slots and none is reused or skipped. The allocation row, its
 * `randomization.allocated` entry (the randomization number and the slot's leaf; never the arm), the participant's
 * disposition (randomized) and the audit events commit together.
 */
import { randomUUID } from "node:crypto";
import { and, eq, sql } from "drizzle-orm";
import { toHex } from "../../anchoring/log/bytes.ts";
import { randomizationNumber, stratumKey } from "../../anchoring/randomization/slots.ts";
import { rowsOf } from "../../db/queries/rows.ts";
import { participants, randomizationAllocations, randomizationSlots, sites } from "../../db/schema/index.ts";
import { audit } from "../audit-trail/record-event.server.ts";
import { isStudyUnblinded } from "./unblinding-state.server.ts";
import { refuseUnderDatabaseLock } from "../database-lock/refuse-under-lock.server.ts";
import { consentGateReason } from "../consent/consent-gate.server.ts";
import { consentStatus } from "../consent/status.server.ts";
import { appendEntry } from "../log/append-entry.server.ts";
import { writeDisposition } from "../participants/disposition.server.ts";
import { auditActor, auditDetail, payloadActor, rowTokenColumns } from "../platform/attribution.ts";
import type { AppContext } from "../platform/context.server.ts";
import { type Problem, ServiceError } from "../platform/errors.server.ts";
import { can, type Principal } from "../platform/permissions.server.ts";
import { todayIn } from "../records/records.server.ts";
import { requireSiteAction } from "../studies/delegations.server.ts";
import { getStudyOrThrow } from "../studies/studies.server.ts";
import { committedList, designOf } from "./list-state.server.ts";

/** The participant of a study a principal may see (else not found, never a hint that it exists). */
export async function visibleParticipant(ctx: AppContext, principal: Principal, studyId: string, subject: string) {
  const [p] = await ctx.db
    .select({
      id: participants.id,
      siteId: participants.siteId,
      subjectCode: participants.subjectCode,
      disposition: participants.disposition,
      siteCode: sites.code,
      timeZone: sites.timeZone,
    })
    .from(participants)
    .innerJoin(sites, eq(sites.id, participants.siteId))
    .where(and(eq(participants.studyId, studyId), eq(participants.subjectCode, String(subject ?? "").toUpperCase())));
  if (
    !p ||
    !(
      can(principal, "records.read", { studyId, siteId: p.siteId }) ||
      can(principal, "randomization.randomize", { studyId, siteId: p.siteId })
    )
  )
    throw new ServiceError("not_found", `no subject ${subject}`, "subject");
  return p;
}

/** Randomize one participant into the next slot of their stratum. */
export async function randomizeParticipant(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  subjectCode: string,
  input: { factors: Record<string, string> },
): Promise<{ allocationId: string; number: string; stratum: string }> {
  const study = await getStudyOrThrow(ctx, studyCode);
  const p = await visibleParticipant(ctx, principal, study.id, subjectCode);
  await requireSiteAction(ctx, principal, "randomization.randomize", { studyId: study.id, siteId: p.siteId });
  const list = await committedList(ctx.db, study.id);
  if (!list)
    throw new ServiceError(
      "conflict",
      `no randomization list has been committed for ${study.code} yet; the unblinded statistician commits one first`,
    );
  const design = designOf(list.designText);
  if (!design.sites.includes(p.siteCode))
    throw new ServiceError("conflict", `site ${p.siteCode} is not in ${study.code}'s randomization list`, "subject");
  // Each factor required, its level one of the design's; factors the design does not have are refused.
  const given = input.factors ?? {};
  const problems: Problem[] = [];
  for (const name of Object.keys(given))
    if (!design.factors.some((f) => f.name === name))
      problems.push({ field: `factors.${name}`, message: `${name} is not a stratification factor of this study` });
  const levels = design.factors.map((f) => {
    const level = String(given[f.name] ?? "").trim();
    if (!level)
      problems.push({ field: `factors.${f.name}`, message: `${f.label}: choose one of ${f.levels.join(", ")}` });
    else if (!f.levels.includes(level))
      problems.push({
        field: `factors.${f.name}`,
        message: `${f.label}: ${JSON.stringify(level)} is not one of ${f.levels.join(", ")}`,
      });
    return { name: f.name, level };
  });
  if (problems.length) throw new ServiceError("invalid", problems[0].message, problems[0].field, problems);
  const key = stratumKey(p.siteCode, levels);
  const today = todayIn(p.timeZone);

  return ctx.db.transaction(async (tx) => {
    // The study's row first (FOR SHARE): a database lock either committed before (refused) or waits for this.
    await refuseUnderDatabaseLock(tx, study.id, "randomizing a participant");
    // Once unblinded, every slot (the untaken ones too) is public in the allocations file: the next arm could be
    // read before randomizing (selection bias), so the list is closed for good.
    if (await isStudyUnblinded(tx, study.id))
      throw new ServiceError(
        "conflict",
        `${study.code} is unblinded: its randomization list is revealed and closed; no participant can be randomized`,
        "subject",
      );
    // The participant, then the stratum, locked: one randomization of a participant, one slot at a time.
    await tx.execute(sql`SELECT 1 FROM participants WHERE id = ${p.id} FOR UPDATE`);
    const [cur] = await tx
      .select({ disposition: participants.disposition })
      .from(participants)
      .where(eq(participants.id, p.id));
    const [already] = await tx
      .select({ number: randomizationAllocations.number })
      .from(randomizationAllocations)
      .where(eq(randomizationAllocations.participantId, p.id));
    if (already)
      throw new ServiceError("conflict", `${p.subjectCode} is already randomized (${already.number})`, "subject");
    if (cur.disposition !== "enrolled")
      throw new ServiceError(
        "conflict",
        `${p.subjectCode} is ${cur.disposition.replace("_", " ")}; only an enrolled participant can be randomized`,
        "subject",
      );
    const consent = await consentStatus(ctx, p.id, { db: tx });
    const reason =
      consent.state === "partially_withdrawn"
        ? `subject ${p.subjectCode} has withdrawn from part of the study (${consent.summary})`
        : consentGateReason(p.subjectCode, consent);
    if (reason) throw new ServiceError("conflict", `${reason}: randomization needs a complete consent`, "subject");
    const [stratum] = rowsOf<{ id: string; position: number; size: number }>(
      await tx.execute(
        sql`SELECT id, position, size FROM randomization_strata WHERE list_id = ${list.id} AND key = ${key} FOR UPDATE`,
      ),
    );
    if (!stratum) throw new ServiceError("conflict", `stratum ${key} is not in the committed list`, "factors");
    const [{ n }] = rowsOf<{ n: number }>(
      await tx.execute(sql`SELECT count(*)::int AS n FROM randomization_allocations WHERE stratum_id = ${stratum.id}`),
    );
    const seq = Number(n);
    if (seq >= Number(stratum.size))
      throw new ServiceError(
        "conflict",
        `stratum ${key} has no slot left (all ${stratum.size} are taken); ask the unblinded statistician`,
        "factors",
      );
    const [slot] = await tx
      .select({ id: randomizationSlots.id, leaf: randomizationSlots.leaf })
      .from(randomizationSlots)
      .where(and(eq(randomizationSlots.stratumId, stratum.id), eq(randomizationSlots.seq, seq)));
    if (!slot) throw new ServiceError("conflict", `stratum ${key} has no slot ${seq + 1}`, "factors");
    const number = randomizationNumber(Number(stratum.position), seq);
    const allocationId = randomUUID();
    const e = await appendEntry(tx, ctx.crypto, study, "randomization.allocated", {
      allocation: allocationId,
      list: list.id,
      subject: p.subjectCode,
      stratum: key,
      seq,
      number,
      leaf: toHex(slot.leaf),
      ...payloadActor(principal),
    });
    await tx.insert(randomizationAllocations).values({
      id: allocationId,
      studyId: study.id,
      listId: list.id,
      stratumId: stratum.id,
      slotId: slot.id,
      participantId: p.id,
      seq,
      number,
      actorUserId: principal.userId,
      ...rowTokenColumns(principal),
      entryId: e.id,
    });
    await writeDisposition(tx, ctx, principal, study, p, {
      status: "randomized",
      previous: "enrolled",
      date: today,
      reason: null,
    });
    await audit(tx, {
      action: "randomization.allocated",
      ...auditActor(principal),
      studyId: study.id,
      siteId: p.siteId,
      participantId: p.id,
      detail: auditDetail(principal, { allocation: allocationId, number, stratum: key, seq, entry: e.id }),
    });
    return { allocationId, number, stratum: key };
  });
}
