/**
 * CRF records: entry and corrections. Each save writes the record version and its ledger entry
 * (`record.saved`) in one transaction. A correction needs a reason, keeps every prior version, and chains to
 * the previous version's entry through `prev` (its payload hash). Site staff need a current data-entry
 * delegation (requireSiteAction). Values are validated by the runtime schema derived from the form definition
 * and stored and hashed exactly as parsed (numbers are never rounded or converted).
 */
import { and, asc, desc, eq, sql } from "drizzle-orm";
import { z } from "zod";
import { canonicalize } from "../../anchoring/log/canonical.ts";
import { toHex } from "../../anchoring/log/bytes.ts";
import { forms, ledgerEntries, participants, records, recordVersions, sites, users } from "../../db/schema/index.ts";
import type { DbOrTx } from "../../db/client.ts";
import {
  parseFormDefinition,
  recordSchema,
  storableText,
  type FormDefinition,
} from "../../anchoring/forms/definition.ts";
import type { AppContext } from "../platform/context.server.ts";
import { ServiceError, isUniqueViolation } from "../platform/errors.server.ts";
import { appendEntry } from "../log/append-entry.server.ts";
import { saltedTextHash } from "../../anchoring/log/text-hash.ts";
import { requireSiteAction } from "../studies/delegations.server.ts";
import { can, type Principal } from "../platform/permissions.server.ts";
import { getStudyOrThrow } from "../studies/studies.server.ts";
import { replayIdempotent, storeIdempotent, type Idempotency } from "./idempotency.server.ts";
import { firstFinalAnchorsCovering } from "../../db/queries/anchors.ts";
import { assertUnlocked } from "../clinical-monitoring/clinical-monitoring.server.ts";
import { assertConsentAllowsNewData } from "../consent/status.server.ts";
import { assertConsentBeforeData } from "../consent/consent-gate.server.ts";
import { audit, auditRead } from "../audit-trail/record-event.server.ts";
import { auditActor, auditDetail, payloadActor, rowTokenColumns, tokenLabel } from "../platform/attribution.ts";
import { matchesSeal, studySealMismatches } from "./seal-match.server.ts";

export const NewRecordInput = z.strictObject({
  subject: z.string().trim().min(1, "subject is required").max(64),
  form: z.string().trim().min(1, "form is required").max(32),
  formVersion: z.number().int().positive().optional(),
  visit: z.string().trim().min(1, "visit is required").max(32),
  data: z.record(z.string(), z.unknown(), { error: "data must be an object of field values" }),
});

export const CorrectionInput = z.strictObject({
  data: z.record(z.string(), z.unknown(), { error: "data must be an object of field values" }),
  reason: z
    .string({ error: "a correction needs a reason for change" })
    .trim()
    .min(1, "a correction needs a reason for change")
    .max(2000)
    .superRefine(storableText("The reason for change")),
});

function invalid(message: string, field: string): never {
  throw new ServiceError("invalid", message, field);
}

/** Parse a body; an unknown field is refused by name (never silently dropped: issue 16 item 10). */
function parseOr422<T extends z.ZodType>(schema: T, input: unknown): z.infer<T> {
  const r = schema.safeParse(input);
  if (!r.success) {
    const i = r.error.issues[0];
    if (i.code === "unrecognized_keys") {
      const known = schema instanceof z.ZodObject ? ` (known fields: ${Object.keys(schema.shape).join(", ")})` : "";
      const key = i.keys[0];
      invalid(
        `unknown field ${[...i.path.map(String), key].join(".")}${known}`,
        [...i.path.map(String), key].join("."),
      );
    }
    invalid(`${i.path.join(".") || "body"}: ${i.message}`, i.path.map(String).join(".") || "body");
  }
  return r.data;
}

/** Validate values against a form definition; the field path of the first problem is `data.<name>`. */
export function validateValues(def: FormDefinition, data: unknown): Record<string, unknown> {
  const r = recordSchema(def).safeParse(data);
  if (!r.success) {
    const i = r.error.issues[0];
    const field = i.path.length ? `data.${i.path.map(String).join(".")}` : "data";
    const message =
      i.code === "unrecognized_keys"
        ? `data: unknown field ${(i as { keys?: string[] }).keys?.join(", ")} (not in form ${def.code} v${def.version})`
        : `${field}: ${i.message}`;
    invalid(message, i.code === "unrecognized_keys" ? `data.${(i as { keys?: string[] }).keys?.[0]}` : field);
  }
  return data as Record<string, unknown>;
}

async function formFor(ctx: AppContext, studyId: string, code: string, version?: number) {
  const rows = await ctx.db
    .select()
    .from(forms)
    .where(and(eq(forms.studyId, studyId), eq(forms.code, code.toUpperCase()), eq(forms.status, "approved")))
    .orderBy(desc(forms.version));
  if (rows.length === 0) invalid(`form: ${code} has no approved version in this study`, "form");
  const f = version === undefined ? rows[0] : rows.find((r) => r.version === version);
  if (!f)
    invalid(
      `formVersion: ${code} version ${version} is not an approved version ` +
        `(approved: ${rows.map((r) => r.version).join(", ")})`,
      "formVersion",
    );
  return { row: f, def: storedDefinition(f) };
}

/**
 * A stored form version's parsed definition, parsed once per process: an approved version's text never changes
 * (forms are append-only); it is cached by row id and used only while the stored text is the same.
 */
const definitions = new Map<string, { text: string; def: FormDefinition }>();
export function storedDefinition(f: {
  id: string;
  code: string;
  version: number;
  definitionText: string;
}): FormDefinition {
  const hit = definitions.get(f.id);
  if (hit && hit.text === f.definitionText) return hit.def;
  const parsed = parseFormDefinition(JSON.parse(f.definitionText));
  if (!parsed.ok) throw new Error(`stored form ${f.code} v${f.version} no longer parses`);
  if (definitions.size > 1000) definitions.clear();
  definitions.set(f.id, { text: f.definitionText, def: parsed.definition });
  return parsed.definition;
}

export interface SavedRecord {
  id: string;
  version: number;
  entry: { id: string; status: "pending" };
}

/**
 * Inside a data write's transaction: hold the study's and the subject's rows FOR SHARE, then check for locks (and,
 * for new data, a full consent withdrawal). Setting a lock takes the locked row FOR UPDATE and a full withdrawal
 * updates the participant's row, so each either committed before (and is seen here) or waits for this write.
 */
async function guardSubjectWrite(
  ctx: AppContext,
  tx: DbOrTx,
  rec: { id: string; studyId: string; participantId: string },
  opts: { newData: boolean },
) {
  await tx.execute(
    sql`SELECT 1 FROM studies s JOIN participants p ON p.study_id = s.id
        WHERE s.id = ${rec.studyId} AND p.id = ${rec.participantId} FOR SHARE`,
  );
  await assertUnlocked(ctx, rec, tx);
  if (opts.newData) await assertConsentAllowsNewData(ctx, rec.participantId, tx);
}

/** Enter a new record (version 1) for a subject, form and visit. */
export async function saveRecord(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  input: unknown,
  idem?: Idempotency,
): Promise<SavedRecord> {
  const v = parseOr422(NewRecordInput, input);
  const study = await getStudyOrThrow(ctx, studyCode);
  const [p] = await ctx.db
    .select()
    .from(participants)
    .where(and(eq(participants.studyId, study.id), eq(participants.subjectCode, v.subject.toUpperCase())));
  if (!p) invalid(`subject: no subject ${v.subject} in ${study.code}`, "subject");
  await requireSiteAction(ctx, principal, "records.enter", { studyId: study.id, siteId: p.siteId });
  const { row: form, def } = await formFor(ctx, study.id, v.form, v.formVersion);
  if (!def.visits.includes(v.visit.toUpperCase()))
    invalid(`visit: ${v.visit} is not a visit of form ${def.code} (${def.visits.join(", ")})`, "visit");
  const data = validateValues(def, v.data);
  const dataText = canonicalize(data);
  try {
    return await ctx.db.transaction(async (tx) => {
      await guardSubjectWrite(
        ctx,
        tx,
        { id: "00000000-0000-0000-0000-000000000000", studyId: study.id, participantId: p.id },
        { newData: true },
      );
      await assertConsentBeforeData(ctx, tx, {
        studyId: study.id,
        studyCode: study.code,
        participantId: p.id,
        subject: p.subjectCode,
        form: def.code,
      });
      const [r] = await tx
        .insert(records)
        .values({
          studyId: study.id,
          siteId: p.siteId,
          participantId: p.id,
          formCode: def.code,
          visit: v.visit.toUpperCase(),
        })
        .returning();
      const e = await appendEntry(tx, ctx.crypto, study, "record.saved", {
        record: r.id,
        version: 1,
        subject: p.subjectCode,
        form: def.code,
        formVersion: def.version,
        visit: r.visit,
        ...payloadActor(principal),
        reasonHash: null,
        values: data,
        prev: null,
      });
      await tx.insert(recordVersions).values({
        recordId: r.id,
        studyId: study.id,
        version: 1,
        formId: form.id,
        formVersion: def.version,
        dataText,
        reason: null,
        actorUserId: principal.userId,
        ...rowTokenColumns(principal),
        entryId: e.id,
      });
      await audit(tx, {
        action: "record.create",
        ...auditActor(principal),
        studyId: study.id,
        siteId: p.siteId,
        participantId: p.id,
        detail: auditDetail(principal, { record: r.id, version: 1, form: def.code, visit: r.visit, entry: e.id }),
      });
      const out: SavedRecord = { id: r.id, version: 1, entry: { id: e.id, status: "pending" } };
      await storeIdempotent(tx, idem, 201, out);
      return out;
    });
  } catch (err) {
    if (isUniqueViolation(err)) {
      if (idem) {
        const replay = await replayIdempotent(ctx, idem);
        if (replay) return replay.body as SavedRecord;
      }
      throw new ServiceError(
        "conflict",
        `subject ${p.subjectCode} already has form ${def.code} at visit ${v.visit.toUpperCase()}; correct it instead`,
        "visit",
      );
    }
    throw err;
  }
}

/** Correct a record: new version with a reason; the previous versions stay, chained by `prev`. */
export async function correctRecord(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  recordId: string,
  input: unknown,
): Promise<SavedRecord> {
  const v = parseOr422(CorrectionInput, input);
  const study = await getStudyOrThrow(ctx, studyCode);
  if (!/^[0-9a-f-]{36}$/.test(recordId)) throw new ServiceError("not_found", `no record ${recordId}`, "id");
  const [r] = await ctx.db
    .select()
    .from(records)
    .where(and(eq(records.id, recordId), eq(records.studyId, study.id)));
  if (!r || !can(principal, "records.read", { studyId: study.id, siteId: r.siteId }))
    throw new ServiceError("not_found", `no record ${recordId}`, "id");
  await requireSiteAction(ctx, principal, "records.enter", { studyId: study.id, siteId: r.siteId });
  return ctx.db.transaction(async (tx) => {
    // Serialize corrections of one record: the row lock makes version numbers and the prev chain gapless.
    await tx.execute(sql`SELECT 1 FROM records WHERE id = ${r.id} FOR UPDATE`);
    await guardSubjectWrite(ctx, tx, r, { newData: false });
    const [cur] = await tx
      .select({
        version: recordVersions.version,
        formId: recordVersions.formId,
        dataText: recordVersions.dataText,
        payloadHash: ledgerEntries.payloadHash,
        subject: participants.subjectCode,
      })
      .from(recordVersions)
      .innerJoin(ledgerEntries, eq(ledgerEntries.id, recordVersions.entryId))
      .innerJoin(records, eq(records.id, recordVersions.recordId))
      .innerJoin(participants, eq(participants.id, records.participantId))
      .where(eq(recordVersions.recordId, r.id))
      .orderBy(desc(recordVersions.version))
      .limit(1);
    const [form] = await tx.select().from(forms).where(eq(forms.id, cur.formId));
    const data = validateValues(storedDefinition(form), v.data);
    const dataText = canonicalize(data);
    if (dataText === cur.dataText)
      invalid("data: nothing changed; a correction must change at least one value", "data");
    const version = cur.version + 1;
    const e = await appendEntry(tx, ctx.crypto, study, "record.saved", (salt) => ({
      record: r.id,
      version,
      subject: cur.subject,
      form: form.code,
      formVersion: form.version,
      visit: r.visit,
      ...payloadActor(principal),
      reasonHash: saltedTextHash(ctx.crypto, salt, v.reason),
      values: data,
      prev: toHex(cur.payloadHash),
    }));
    await tx.insert(recordVersions).values({
      recordId: r.id,
      studyId: study.id,
      version,
      formId: form.id,
      formVersion: form.version,
      dataText,
      reason: v.reason,
      actorUserId: principal.userId,
      ...rowTokenColumns(principal),
      entryId: e.id,
    });
    await audit(tx, {
      action: "record.correct",
      ...auditActor(principal),
      studyId: study.id,
      siteId: r.siteId,
      participantId: r.participantId,
      detail: auditDetail(principal, { record: r.id, version, form: form.code, visit: r.visit, entry: e.id }),
    });
    await tx.update(records).set({ currentVersion: version, updatedAt: new Date() }).where(eq(records.id, r.id));
    return { id: r.id, version, entry: { id: e.id, status: "pending" as const } };
  });
}

/** Who wrote a version without a user: its API token, or "integration" (token writes from before attribution). */
function tokenActor(v: { actorTokenId: string | null; actorTokenName: string | null }): string {
  return v.actorTokenId ? tokenLabel({ id: v.actorTokenId, name: v.actorTokenName ?? "" }) : "integration";
}

/** A record with every version: who, when, what changed (old -> new), why, and each version's seal status. */
export async function recordHistory(ctx: AppContext, principal: Principal, studyCode: string, recordId: string) {
  const study = await getStudyOrThrow(ctx, studyCode);
  if (!/^[0-9a-f-]{36}$/.test(recordId)) throw new ServiceError("not_found", `no record ${recordId}`, "id");
  const [r] = await ctx.db
    .select({ r: records, subject: participants.subjectCode, site: sites.code })
    .from(records)
    .innerJoin(participants, eq(participants.id, records.participantId))
    .innerJoin(sites, eq(sites.id, records.siteId))
    .where(and(eq(records.id, recordId), eq(records.studyId, study.id)));
  if (!r || !can(principal, "records.read", { studyId: study.id, siteId: r.r.siteId }))
    throw new ServiceError("not_found", `no record ${recordId}`, "id");
  const versions = await ctx.db
    .select({
      v: recordVersions,
      actor: users.fullName,
      entryStatus: ledgerEntries.status,
      seq: ledgerEntries.seq,
      batch: ledgerEntries.batchNo,
      at: ledgerEntries.at,
      payloadText: ledgerEntries.payloadText,
      payloadHash: ledgerEntries.payloadHash,
    })
    .from(recordVersions)
    .innerJoin(ledgerEntries, eq(ledgerEntries.id, recordVersions.entryId))
    .leftJoin(users, eq(users.id, recordVersions.actorUserId))
    .where(eq(recordVersions.recordId, recordId))
    .orderBy(asc(recordVersions.version));
  const anchoredOn = new Map<number, string[]>();
  for (const b of new Set(versions.map((x) => x.batch).filter((x): x is number => x !== null))) {
    anchoredOn.set(
      b,
      (await firstFinalAnchorsCovering(ctx.db, b)).map((a) => a.ledger),
    );
  }
  let prev: Record<string, unknown> = {};
  const history = versions.map(({ v, actor, entryStatus, seq, batch, at, payloadText, payloadHash }) => {
    // The cheap check of the row against its sealed entry: a value altered behind the log is never shown as sealed.
    const sealMatches = matchesSeal(ctx.crypto, {
      ...v,
      subject: r.subject,
      form: r.r.formCode,
      visit: r.r.visit,
      payloadText,
      payloadHash,
    });
    const data = JSON.parse(v.dataText) as Record<string, unknown>;
    const fields = [...new Set([...Object.keys(prev), ...Object.keys(data)])];
    const changes =
      v.version === 1
        ? []
        : fields
            .filter((f) => canonicalize(prev[f] ?? null) !== canonicalize(data[f] ?? null))
            .map((f) => ({ field: f, old: prev[f] ?? null, new: data[f] ?? null }));
    prev = data;
    return {
      version: v.version,
      formVersion: v.formVersion,
      data,
      reason: v.reason,
      actor: actor ?? tokenActor(v),
      at: at.toISOString(),
      changes,
      /** False when this version's rows no longer match its sealed entry (altered behind the log). */
      matchesSeal: sealMatches,
      entry: {
        id: v.entryId,
        status: entryStatus,
        seq,
        batch,
        anchoredOn: batch === null ? [] : (anchoredOn.get(batch) ?? []),
        matchesSeal: sealMatches,
      },
    };
  });
  const current = history[history.length - 1];
  return {
    id: r.r.id,
    subject: r.subject,
    site: r.site,
    form: r.r.formCode,
    visit: r.r.visit,
    status: r.r.status,
    version: current.version,
    data: current.data,
    /** False when any version no longer matches its sealed entry. */
    matchesSeal: history.every((h) => h.matchesSeal),
    history,
  };
}

/** A record's row by id (its site and participant): the record page's permission scope and lock. */
export async function findRecord(ctx: AppContext, recordId: string) {
  const [row] = await ctx.db.select().from(records).where(eq(records.id, recordId));
  return row;
}

/** The current form definition of a record (the form version of its latest version). */
export async function recordDefinition(ctx: AppContext, recordId: string) {
  const [row] = await ctx.db
    .select({ text: forms.definitionText })
    .from(recordVersions)
    .innerJoin(forms, eq(forms.id, recordVersions.formId))
    .where(eq(recordVersions.recordId, recordId))
    .orderBy(desc(recordVersions.version))
    .limit(1);
  const parsed = row ? parseFormDefinition(JSON.parse(row.text)) : null;
  return parsed?.ok ? parsed.definition : null;
}

/** The approved forms of a study (latest version of each) and a subject's records, for the subject page. */
export async function subjectCasebook(ctx: AppContext, principal: Principal, studyId: string, subject: string) {
  const [p] = await ctx.db
    .select({ p: participants, site: sites.code })
    .from(participants)
    .innerJoin(sites, eq(sites.id, participants.siteId))
    .where(and(eq(participants.studyId, studyId), eq(participants.subjectCode, subject.toUpperCase())));
  if (!p || !can(principal, "records.read", { studyId, siteId: p.p.siteId })) return null;
  // A read of the participant's data: one sealed event per user, participant and hour (ADR 0016).
  if (principal.userId)
    await auditRead(ctx.db, {
      action: "participant.view",
      actorUserId: principal.userId,
      studyId,
      siteId: p.p.siteId,
      participantId: p.p.id,
    });
  const approved = await ctx.db
    .select()
    .from(forms)
    .where(and(eq(forms.studyId, studyId), eq(forms.status, "approved")))
    .orderBy(asc(forms.code), desc(forms.version));
  const latest = new Map<string, FormDefinition>();
  for (const f of approved) {
    if (latest.has(f.code)) continue;
    const parsed = parseFormDefinition(JSON.parse(f.definitionText));
    if (parsed.ok) latest.set(f.code, parsed.definition);
  }
  const recs = await ctx.db.select().from(records).where(eq(records.participantId, p.p.id));
  const mismatched = new Set(
    (
      await studySealMismatches(
        ctx,
        studyId,
        recs.map((r) => r.id),
      )
    ).map((m) => m.record),
  );
  return {
    participant: { id: p.p.id, subject: p.p.subjectCode, site: p.site, siteId: p.p.siteId, status: p.p.status },
    forms: [...latest.values()],
    records: recs.map((r) => ({
      id: r.id,
      form: r.formCode,
      visit: r.visit,
      version: r.currentVersion,
      status: r.status,
      /** False when a version of the record no longer matches its sealed entry. */
      matchesSeal: !mismatched.has(r.id),
    })),
  };
}
