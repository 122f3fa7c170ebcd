/**
 * Optional consent choices in force, and their changes after signing (issue 22, ADR 0066). The participant's latest
 * signed document names its optional items and the purposes each governs (`[optional:key for:CODE]`); the choice in
 * force is the signature's answer, then each partial withdrawal of the item ("no"), then each change
 * (consent_choice_changes, a `consent.choices_changed` ledger entry) in order. The participant changes choices
 * through their verified link; staff with consent.obtain at the participant's site record a change the participant
 * told them about. After a full withdrawal nothing can be granted again. Data-use deliveries read who a purpose may
 * be delivered for in their own transaction's snapshot (eligibilityForPurpose).
 */
import { randomUUID } from "node:crypto";
import { and, asc, eq, isNull } from "drizzle-orm";
import { z } from "zod";
import type { DbOrTx } from "../../db/client.ts";
import {
  consentChoiceChanges,
  consentDocuments,
  consentSignatures,
  consentWithdrawals,
  participants,
  studies,
} from "../../db/schema/index.ts";
import { audit } from "../audit-trail/record-event.server.ts";
import { optionalItems, parseConsentDocument } from "../consent/consent-document.ts";
import { openInvitation } from "../consent/invitation-state.server.ts";
import { appendEntry } from "../log/append-entry.server.ts";
import { participantBySubject } from "../participants/find-participant.server.ts";
import { auditActor, auditDetail, payloadActor, rowTokenColumns } from "../platform/attribution.ts";
import type { AppContext } from "../platform/context.server.ts";
import { ServiceError } from "../platform/errors.server.ts";
import type { Principal } from "../platform/permissions.server.ts";
import { requireSiteAction } from "../studies/delegations.server.ts";
import { getStudyOrThrow } from "../studies/studies.server.ts";
import { type PurposeCode, purposeInWords } from "./purposes.ts";

/** One optional consent item of the participant's signed document, with the choice in force and its history. */
export interface ChoiceItem {
  key: string;
  /** The item's text as the participant read it. */
  text: string;
  /** The purposes this item governs (`[optional:key for:CODE,CODE]` in the consent document). */
  purposes: PurposeCode[];
  agreed: boolean;
  /** When the choice in force was made (ISO). */
  since: string;
  document: { code: string; version: string };
  /** Oldest first: the signature's answer, then each change (a partial withdrawal of the item counts as "no"). */
  history: { at: string; agreed: boolean; by: "participant" | "staff"; entryId: string }[];
  /** When a later signature replaced these answers (ISO; absent for the signature in force). */
  until?: string;
}

type Signature = typeof consentSignatures.$inferSelect;
type Doc = typeof consentDocuments.$inferSelect;
type Withdrawal = typeof consentWithdrawals.$inferSelect;
type Change = typeof consentChoiceChanges.$inferSelect;

/** A participant's consent facts, as read from one snapshot. */
interface Facts {
  /** Primary signatures, oldest first, with their documents. */
  signed: { s: Signature; doc: Doc }[];
  signature: Signature | null;
  doc: Doc | null;
  withdrawals: Withdrawal[];
  changes: Change[];
}

/** The facts of every participant of a study (or of one participant), read in `db`'s snapshot. */
async function loadFacts(db: DbOrTx, where: { studyId: string } | { participantId: string }) {
  const sigWhere =
    "studyId" in where
      ? eq(consentSignatures.studyId, where.studyId)
      : eq(consentSignatures.participantId, where.participantId);
  const sigs = await db
    .select({ s: consentSignatures, doc: consentDocuments })
    .from(consentSignatures)
    .innerJoin(consentDocuments, eq(consentDocuments.id, consentSignatures.documentId))
    .where(and(sigWhere, isNull(consentSignatures.countersigns)))
    .orderBy(asc(consentSignatures.signedAt));
  const withdrawals = await db
    .select()
    .from(consentWithdrawals)
    .where(
      "studyId" in where
        ? eq(consentWithdrawals.studyId, where.studyId)
        : eq(consentWithdrawals.participantId, where.participantId),
    )
    .orderBy(asc(consentWithdrawals.withdrawnAt));
  const changes = await db
    .select()
    .from(consentChoiceChanges)
    .where(
      "studyId" in where
        ? eq(consentChoiceChanges.studyId, where.studyId)
        : eq(consentChoiceChanges.participantId, where.participantId),
    )
    .orderBy(asc(consentChoiceChanges.createdAt));
  const facts = new Map<string, Facts>();
  const of = (id: string) => {
    let f = facts.get(id);
    if (!f) {
      f = { signed: [], signature: null, doc: null, withdrawals: [], changes: [] };
      facts.set(id, f);
    }
    return f;
  };
  // The latest primary signature counts (a re-consent replaces the earlier answers).
  for (const { s, doc } of sigs) {
    const f = of(s.participantId);
    f.signed.push({ s, doc });
    Object.assign(f, { signature: s, doc });
  }
  for (const w of withdrawals) of(w.participantId).withdrawals.push(w);
  for (const c of changes) of(c.participantId).changes.push(c);
  return facts;
}

/** The choices in force from a participant's facts (empty when they signed no document with optional items). */
function choicesOf(f: Facts | undefined): ChoiceItem[] {
  return f?.signature && f.doc ? choicesOfSignature(f, f.signature, f.doc) : [];
}

/**
 * The items of one signature with their history: its answers, then the partial withdrawals and changes made after
 * it and before `until`, the next signature (whose items are answered afresh: a superseded signature's history
 * stops there).
 */
function choicesOfSignature(f: Facts, signature: Signature, doc: Doc, until: Date | null = null): ChoiceItem[] {
  const parsed = parseConsentDocument(doc.bodyMarkdown);
  if (!parsed.ok) return [];
  const signedAt = signature.signedAt;
  const options = signature.options as Record<string, boolean>;
  const items: ChoiceItem[] = optionalItems(parsed.doc).map((o) => {
    const agreed = options[o.key] === true;
    return {
      key: o.key,
      text: o.text,
      purposes: o.purposes,
      agreed,
      since: signedAt.toISOString(),
      document: { code: doc.code, version: doc.version },
      history: [{ at: signedAt.toISOString(), agreed, by: "participant" as const, entryId: signature.entryId }],
      ...(until ? { until: until.toISOString() } : {}),
    };
  });
  const byKey = new Map(items.map((i) => [i.key, i]));
  const events: { at: Date; choices: Record<string, boolean>; by: "participant" | "staff"; entryId: string }[] = [
    ...f.withdrawals
      .filter((w) => w.withdrawnAt >= signedAt && w.scope === "partial")
      .map((w) => ({
        at: w.withdrawnAt,
        choices: Object.fromEntries(
          (w.allows as { optionalWithdrawn: string[] }).optionalWithdrawn.map((k) => [k, false]),
        ),
        by: (w.byParticipant ? "participant" : "staff") as "participant" | "staff",
        entryId: w.entryId,
      })),
    ...f.changes
      .filter((c) => c.createdAt >= signedAt)
      .map((c) => ({
        at: c.createdAt,
        choices: c.choices,
        by: (c.byParticipant ? "participant" : "staff") as "participant" | "staff",
        entryId: c.entryId,
      })),
  ]
    .filter((e) => !until || e.at < until)
    .sort((a, b) => a.at.getTime() - b.at.getTime());
  for (const e of events)
    for (const [k, agreed] of Object.entries(e.choices)) {
      const item = byKey.get(k);
      if (!item) continue;
      item.history.push({ at: e.at.toISOString(), agreed, by: e.by, entryId: e.entryId });
      if (item.agreed !== agreed) {
        item.agreed = agreed;
        item.since = e.at.toISOString();
      }
    }
  return items;
}

/** The optional items of a participant's latest signed document with the choices in force (empty: none). */
export async function currentChoices(
  ctx: AppContext,
  participantId: string,
  db: DbOrTx = ctx.db,
): Promise<ChoiceItem[]> {
  return choicesOf((await loadFacts(db, { participantId })).get(participantId));
}

/** Who a purpose may be delivered for, read in `db`'s snapshot (a delivery's transaction). */
export interface PurposeEligibility {
  /** Participants whose choice in force allows the purpose (not fully withdrawn). */
  allowed: string[];
  /** Said no (at signing or since) to every item governing the purpose. */
  declined: string[];
  /** Withdrew fully. */
  withdrawn: string[];
  /** Signed no document with an item governing the purpose (or never signed). */
  notAsked: string[];
  /** Why the result is empty, in words a researcher understands (null when someone is allowed). */
  reason: string | null;
}

export async function eligibilityForPurpose(
  ctx: AppContext,
  studyId: string,
  purpose: PurposeCode,
  db: DbOrTx = ctx.db,
): Promise<PurposeEligibility> {
  const ps = await db
    .select({ id: participants.id, status: participants.status, erasedAt: participants.erasedAt })
    .from(participants)
    .where(eq(participants.studyId, studyId))
    .orderBy(asc(participants.id));
  const facts = await loadFacts(db, { studyId });
  const out: PurposeEligibility = { allowed: [], declined: [], withdrawn: [], notAsked: [], reason: null };
  for (const p of ps) {
    const f = facts.get(p.id);
    // An erased participant (GDPR Art. 17, crypto-shredding) counts as withdrawn from secondary use (ADR 0066;
    // attack: their data were still delivered).
    if (p.status === "withdrawn" || p.erasedAt !== null || f?.withdrawals.some((w) => w.scope === "full")) {
      out.withdrawn.push(p.id);
      continue;
    }
    const governing = choicesOf(f).filter((i) => i.purposes.includes(purpose));
    if (!governing.length) out.notAsked.push(p.id);
    else if (governing.some((i) => i.agreed)) out.allowed.push(p.id);
    else out.declined.push(p.id);
  }
  if (!out.allowed.length) {
    const words = purposeInWords(purpose);
    out.reason = !ps.length
      ? "the study has no participants yet"
      : out.declined.length === 0 && out.notAsked.length > 0
        ? `the consent document has no optional item for ${words}: no participant was asked` +
          (out.withdrawn.length ? ` (${out.withdrawn.length} withdrew)` : "")
        : `no participant agreed to ${words} (${out.declined.length} declined, ${out.withdrawn.length} withdrew, ` +
          `${out.notAsked.length} were not asked)`;
  }
  return out;
}

const ChangeInput = z.object({
  choices: z.record(
    z.string(),
    z.union([z.boolean(), z.enum(["yes", "no"]).transform((v) => v === "yes")], {
      error: "answer yes or no",
    }),
  ),
});

function invalid(message: string, field: string): never {
  throw new ServiceError("invalid", message, field);
}

async function writeChange(
  ctx: AppContext,
  participantId: string,
  input: unknown,
  by: { participant: true } | { principal: Principal },
) {
  const r = ChangeInput.safeParse(input);
  if (!r.success) invalid(`choices: ${r.error.issues[0].message}`, "choices");
  const asked = r.data.choices;
  const byParticipant = "participant" in by;
  // Staff record only a "no" the participant told them of (like a withdrawal); a "yes" is the participant's own.
  if (!byParticipant) {
    const yes = Object.entries(asked).filter(([, v]) => v);
    if (yes.length)
      invalid(
        `choices: staff can record only a "no" the participant told you of; "${yes[0][0]}" can be changed to "yes" ` +
          "only by the participant, on their own consent page (their link, after the one-time code)",
        "choices",
      );
  }
  const who = byParticipant
    ? { actor: null as string | null }
    : payloadActor((by as { principal: Principal }).principal);
  return ctx.db.transaction(async (tx) => {
    // Concurrent changes of one participant's choices serialize on the participant's row.
    const [p] = await tx.select().from(participants).where(eq(participants.id, participantId)).for("update");
    if (!p) throw new ServiceError("not_found", "no such participant");
    const facts = (await loadFacts(tx, { participantId })).get(participantId);
    const full = facts?.withdrawals.find((w) => w.scope === "full");
    if (full || p.status === "withdrawn")
      throw new ServiceError(
        "conflict",
        `consent was withdrawn in full${full ? ` on ${full.withdrawnAt.toISOString().slice(0, 10)}` : ""}: ` +
          "no choice can be changed or given again",
        "choices",
      );
    const items = choicesOf(facts);
    if (!facts?.signature)
      throw new ServiceError("conflict", "there is no signed consent whose choices to change", "choices");
    if (!items.length)
      throw new ServiceError("conflict", "the signed consent document has no optional items", "choices");
    const byKey = new Map(items.map((i) => [i.key, i]));
    const changed: Record<string, boolean> = {};
    for (const [k, agreed] of Object.entries(asked)) {
      const item = byKey.get(k);
      if (!item)
        invalid(
          `choices: "${k}" is not an optional item of the signed document (its items: ${[...byKey.keys()].join(", ")})`,
          "choices",
        );
      if (item.agreed !== agreed) changed[k] = agreed;
    }
    if (!Object.keys(changed).length) invalid("nothing changed: your choices are already as you chose them", "choices");
    const [study] = await tx.select().from(studies).where(eq(studies.id, p.studyId));
    const id = randomUUID();
    const e = await appendEntry(tx, ctx.crypto, study, "consent.choices_changed", () => ({
      change: id,
      subject: p.subjectCode,
      choices: changed,
      byParticipant,
      ...who,
    }));
    await tx.insert(consentChoiceChanges).values({
      id,
      studyId: p.studyId,
      participantId: p.id,
      choices: changed,
      byParticipant,
      actorUserId: who.actor,
      ...("principal" in by ? rowTokenColumns(by.principal) : { actorTokenId: null, actorTokenName: null }),
      entryId: e.id,
    });
    const detail = { change: id, choices: changed, byParticipant };
    await audit(tx, {
      action: "consent.choices_change",
      studyId: p.studyId,
      siteId: p.siteId,
      participantId: p.id,
      ...("principal" in by
        ? { ...auditActor(by.principal), actorUserId: who.actor, detail: auditDetail(by.principal, detail) }
        : { actorUserId: null, detail }),
    });
    return { id, entryId: e.id, changed };
  });
}

/** The participant changes their optional choices through their verified link. */
export async function changeChoicesByParticipant(
  ctx: AppContext,
  token: string,
  verifiedInvitationId: string | null,
  input: unknown,
) {
  const o = await openInvitation(ctx, token);
  if (!o) throw new ServiceError("not_found", "This link is not valid.");
  if (o.state === "withdrawn")
    throw new ServiceError("conflict", "You withdrew your consent in full: your choices can no longer be changed.");
  if (o.state !== "used") throw new ServiceError("conflict", o.message ?? "Sign the consent before changing choices.");
  if (verifiedInvitationId !== o.invitation.id)
    throw new ServiceError("unauthenticated", "Confirm your identity with the one-time code first.", "code");
  return writeChange(ctx, o.participant.id, input, { participant: true });
}

/** Site staff record a change of choices the participant told them about (delegated consent task). */
export async function recordChoiceChange(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  subject: string,
  input: unknown,
) {
  const study = await getStudyOrThrow(ctx, studyCode);
  const p = await participantBySubject(ctx, study.id, subject);
  if (!p) invalid(`subject: no subject ${subject}`, "subject");
  await requireSiteAction(ctx, principal, "consent.obtain", { studyId: study.id, siteId: p.siteId });
  return writeChange(ctx, p.id, input, { principal });
}

/** Each primary signature's items with their history, by signature id (one snapshot; the FHIR export). */
export async function choicesBySignature(ctx: AppContext, studyId: string, db: DbOrTx = ctx.db) {
  const out = new Map<string, ChoiceItem[]>();
  for (const f of (await loadFacts(db, { studyId })).values())
    for (const [i, { s, doc }] of f.signed.entries())
      out.set(s.id, choicesOfSignature(f, s, doc, f.signed[i + 1]?.s.signedAt ?? null));
  return out;
}
