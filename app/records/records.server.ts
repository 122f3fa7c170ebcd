/**
 * CRF records: entry and corrections. Each save writes the record version and its ledger entry
 * (`record.saved`) in one transaction. A correction needs a reason, keeps every prior version, and chains to
 * the previous version's entry through `prev` (its payload hash). Site staff need a current data-entry
 * delegation (requireSiteAction). An entry is checked against its form version (`checkEntry`: every problem at
 * once, branching, calculations, missing-data codes, soft limits) and its values stored and sealed exactly as
 * parsed (numbers are never rounded or converted); the payload (record.saved v3, ADR 0025) holds identifier and
 * free-text values only as salted hashes. A repeating form's rows are records of their own (ADR 0026).
 */
import { randomUUID } from "node:crypto";
import { and, asc, desc, eq, sql } from "drizzle-orm";
import { z } from "zod";
import { canonicalize } from "../../anchoring/log/canonical.ts";
import { toHex } from "../../anchoring/log/bytes.ts";
import {
  forms,
  ledgerEntries,
  participants,
  records,
  recordVersions,
  sites,
  studies,
  users,
} from "../../db/schema/index.ts";
import type { Db, DbOrTx, Tx } from "../../db/client.ts";
import { buildEntry } from "../../anchoring/log/entry.ts";
import { parseFormDefinition, storableText, type FormDefinition } from "../../anchoring/forms/definition.ts";
import { checkEntry, type CheckedEntry, type EntryInput } from "../../anchoring/forms/check-entry.ts";
import { hashedFieldsOf, sealRecordValues } from "../../anchoring/log/record-values.ts";
import type { AppContext } from "../platform/context.server.ts";
import { ServiceError, isUniqueViolation, type Problem } from "../platform/errors.server.ts";
import { appendEntry } from "../log/append-entry.server.ts";
import { saltedTextHash } from "../../anchoring/log/text-hash.ts";
import { requireSiteAction } from "../studies/delegations.server.ts";
import { can, type Principal } from "../platform/permissions.server.ts";
import { getStudyOrThrow } from "../studies/studies.server.ts";
import { replayIdempotent, storeIdempotent, storeIdempotentMany, type Idempotency } from "./idempotency.server.ts";
import { firstFinalAnchorsCovering } from "../../db/queries/anchors.ts";
import { assertUnlocked } from "../clinical-monitoring/clinical-monitoring.server.ts";
import { assertConsentAllowsNewData } from "../consent/status.server.ts";
import { assertConsentBeforeData } from "../consent/consent-gate.server.ts";
import { audit, auditPrincipalRead } from "../audit-trail/record-event.server.ts";
import { insertSealedEvents } from "../audit-trail/seal-event.server.ts";
import { auditActor, auditDetail, payloadActor, rowTokenColumns, tokenLabel } from "../platform/attribution.ts";
import { matchesSeal, sealFormColumns, studySealMismatches } from "./seal-match.server.ts";
import { storedDefinition } from "./stored-definition.server.ts";
import { openAutomaticQueries } from "../clinical-monitoring/automatic-queries.server.ts";
import { openWindowQuery } from "../visit-schedule/visit-windows.server.ts";
import { currentSchedule } from "../visit-schedule/schedule.server.ts";
import { GroupCommitter, GroupRolledBack, type GroupCommitStats, type Outcome } from "./group-commit.server.ts";
import { holdSubjectsForShare, subjectFacts } from "./bulk-checks.server.ts";
import { rowsOf } from "../../db/queries/rows.ts";

/** Missing-data codes by field name ({code, reason} each; checked against the form by checkEntry). */
const missingInput = z
  .record(z.string(), z.unknown(), { error: "missing must be an object of {code, reason} by field name" })
  .nullable()
  .optional();
/** Fields whose value outside the expected (soft) range the person has checked and confirmed. */
const confirmedInput = z
  .array(z.string().max(64), { error: "confirmed must be a list of field names" })
  .max(1000)
  .nullable()
  .optional();
const dataInput = z.record(z.string(), z.unknown(), { error: "data must be an object of field values" });

/**
 * A new record: `data` by field name (`null` or absent is no value), `missing` the missing-data codes with a
 * reason, `confirmed` the values outside their expected range that were checked. On a repeating form each save
 * adds the next row (instance), assigned by the server.
 */
export const NewRecordInput = z.strictObject({
  subject: z.string().trim().min(1, "subject is required").max(64),
  form: z.string().trim().min(1, "form is required").max(32),
  formVersion: z.number().int().positive().optional(),
  visit: z.string().trim().min(1, "visit is required").max(32),
  data: dataInput,
  missing: missingInput,
  confirmed: confirmedInput,
});

const REASON_NEEDED = "Give a reason for the change";
/** A correction's reason for change, refused in plain words (field "reason"). */
const correctionReason = z
  .string({ error: REASON_NEEDED })
  .trim()
  .min(1, REASON_NEEDED)
  .max(2000, "The reason for change is too long (up to 2000 characters)")
  .superRefine(storableText("The reason for change"));

/** A correction: every value of the new version (as for a new record) and the reason for change. */
export const CorrectionInput = z.strictObject({
  data: dataInput,
  missing: missingInput,
  confirmed: confirmedInput,
  reason: correctionReason,
});
/** A correction's body with the reason not yet checked: its problem is listed with the values' (see correctRecord). */
const CorrectionBody = CorrectionInput.extend({ reason: z.unknown().optional() });

/** The reason's problem, if any, in plain words: "Give a reason for the change". */
function reasonProblem(reason: unknown): Problem | null {
  const r = correctionReason.safeParse(reason);
  return r.success ? null : { field: "reason", message: r.error.issues[0].message };
}

/**
 * Run a check of a correction's values, refusing with every problem at once: the values' (checkEntry, or "nothing
 * changed") followed by the reason's; with only the reason's when the values pass.
 */
function checkCorrection<T>(check: () => T, reason: Problem | null): T {
  let out: T;
  try {
    out = check();
  } catch (err) {
    if (!reason || !(err instanceof ServiceError) || err.code !== "invalid") throw err;
    const problems = [...(err.problems ?? [{ field: err.field ?? "data", message: err.message }]), reason];
    throw new ServiceError("invalid", problems[0].message, problems[0].field, problems);
  }
  if (reason) throw new ServiceError("invalid", reason.message, reason.field, [reason]);
  return out;
}

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

/** Today's date (YYYY-MM-DD) in a time zone (the site's), UTC when it has none or an unknown one. */
export function todayIn(timeZone?: string | null, now = new Date()): string {
  try {
    return new Intl.DateTimeFormat("en-CA", {
      timeZone: timeZone || "UTC",
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
    }).format(now);
  } catch {
    return now.toISOString().slice(0, 10);
  }
}

/**
 * Check an entry against its form (anchoring/forms/check-entry.ts): every problem at once. Refused with all of
 * them (`problems`, each `data.<field>`), the first as the error's message and field; a field the form does not
 * have is named as an unknown field.
 */
export function checkedEntry(
  def: FormDefinition,
  input: { data: unknown; missing?: unknown; confirmed?: string[] | null },
  opts: { today: string },
): CheckedEntry {
  const c = checkEntry(
    def,
    {
      values: input.data as Record<string, unknown>,
      missing: (input.missing ?? undefined) as EntryInput["missing"],
      confirmed: input.confirmed ?? undefined,
    },
    { today: opts.today },
  );
  if (c.ok) return c;
  const known = new Set(def.fields.map((f) => f.name));
  const problems: Problem[] = c.problems.map((p) => ({
    field: p.field ? `data.${p.field}` : "data",
    message:
      p.field && !known.has(p.field)
        ? `data: unknown field ${p.field} (not in form ${def.code} v${def.version})`
        : p.message,
    kind: p.kind,
  }));
  throw new ServiceError("invalid", problems[0].message, problems[0].field, problems);
}

/**
 * Validate values against a form definition (all problems at once, see `checkedEntry`); returns the values kept
 * (blanks and hidden fields left out).
 */
export function validateValues(
  def: FormDefinition,
  data: unknown,
  opts: { today?: string; missing?: unknown; confirmed?: string[] } = {},
): Record<string, unknown> {
  if (typeof data !== "object" || data === null || Array.isArray(data))
    invalid("data must be an object of field values", "data");
  const today = opts.today ?? todayIn();
  return checkedEntry(def, { data, missing: opts.missing, confirmed: opts.confirmed }, { today }).values;
}

/**
 * The form version of a new record among the approved versions of its code (newest first): the latest, or the one
 * asked for.
 */
function pickForm<F extends typeof forms.$inferSelect>(rows: F[], code: string, version?: number) {
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
 * The pre-checks of a new record in one round trip (ADR 0041): the study by code, the subject by code, the site's
 * time zone and the approved versions of the form (newest first), one row per form version. Prepared once per
 * database handle (a named statement on PostgreSQL: parsed once per connection).
 */
function buildPrecheck(db: Db) {
  return db
    .select({ study: studies, participant: participants, timeZone: sites.timeZone, form: forms })
    .from(studies)
    .leftJoin(
      participants,
      and(eq(participants.studyId, studies.id), eq(participants.subjectCode, sql.placeholder("subject"))),
    )
    .leftJoin(sites, eq(sites.id, participants.siteId))
    .leftJoin(
      forms,
      and(eq(forms.studyId, studies.id), eq(forms.code, sql.placeholder("form")), eq(forms.status, "approved")),
    )
    .where(eq(studies.code, sql.placeholder("study")))
    .orderBy(desc(forms.version))
    .prepare("records_save_precheck");
}
const prechecks = new WeakMap<Db, ReturnType<typeof buildPrecheck>>();
function precheckOf(db: Db) {
  let q = prechecks.get(db);
  if (!q) {
    q = buildPrecheck(db);
    prechecks.set(db, q);
  }
  return q;
}

export { storedDefinition };

/** The date at a site, on its clock (`sites.time_zone`): a date that is `notFuture` may not be after it. */
async function siteToday(ctx: AppContext, siteId: string): Promise<string> {
  const [s] = await ctx.db.select({ timeZone: sites.timeZone }).from(sites).where(eq(sites.id, siteId));
  return todayIn(s?.timeZone);
}

export interface SavedRecord {
  id: string;
  version: number;
  /** The row of a repeating form (1 for any other form). */
  instance: number;
  entry: { id: string; status: "pending" };
  /** The automatic queries opened for values outside their expected range, confirmed at entry. */
  queries?: string[];
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

/** The record.saved v3 payload of a version (ADR 0025, 0026), as a function of the entry's salt. */
function recordPayload(
  ctx: AppContext,
  principal: Principal,
  def: FormDefinition,
  form: { version: number; definitionSha256: Uint8Array },
  x: {
    record: string;
    version: number;
    subject: string;
    visit: string;
    instance: number;
    reason: string | null;
    prev: string | null;
    entry: CheckedEntry;
  },
) {
  return (salt: string) => ({
    record: x.record,
    version: x.version,
    subject: x.subject,
    form: def.code,
    formVersion: form.version,
    formSha256: toHex(form.definitionSha256),
    visit: x.visit,
    instance: x.instance,
    ...payloadActor(principal),
    reasonHash: x.reason === null ? null : saltedTextHash(ctx.crypto, salt, x.reason),
    ...sealRecordValues(ctx.crypto, salt, hashedFieldsOf(def), x.entry),
    prev: x.prev,
  });
}

/** The columns of a version that hold what was entered: values, missing-data codes with reasons, calculations. */
function versionColumns(c: CheckedEntry) {
  return {
    dataText: canonicalize(c.values),
    missingText: canonicalize(c.missing),
    calculatedText: canonicalize(c.calculated),
  };
}

/** A new record checked and ready to write: everything its transaction needs, found before it (ADR 0041). */
interface PreparedSave {
  ctx: AppContext;
  principal: Principal;
  idem?: Idempotency;
  study: typeof studies.$inferSelect;
  p: typeof participants.$inferSelect;
  form: typeof forms.$inferSelect;
  def: FormDefinition;
  checked: CheckedEntry;
  visit: string;
}

/**
 * Enter a new record (version 1) for a subject, form and visit; on a repeating form, its next row. Concurrent saves
 * share one transaction (group commit, ADR 0041); the result is returned once that transaction has committed.
 */
export async function saveRecord(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  input: unknown,
  idem?: Idempotency,
): Promise<SavedRecord> {
  const item = await prepareSave(ctx, principal, studyCode, input, idem);
  return committerOf(ctx.db, ctx.database?.engine).submit(item);
}

/** Parse and check a new record, with the study, subject, form versions and site clock read in one round trip. */
async function prepareSave(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  input: unknown,
  idem?: Idempotency,
): Promise<PreparedSave> {
  const v = parseOr422(NewRecordInput, input);
  const rows = await precheckOf(ctx.db).execute({
    study: studyCode,
    subject: v.subject.toUpperCase(),
    form: v.form.toUpperCase(),
  });
  if (rows.length === 0) throw new ServiceError("not_found", `no study ${studyCode}`, "study");
  const study = rows[0].study;
  const p = rows[0].participant;
  if (!p) invalid(`subject: no subject ${v.subject} in ${study.code}`, "subject");
  await requireSiteAction(ctx, principal, "records.enter", { studyId: study.id, siteId: p.siteId });
  const versions = rows.flatMap((r) => (r.form ? [r.form] : []));
  const { row: form, def } = pickForm(versions, v.form, v.formVersion);
  if (!def.visits.includes(v.visit.toUpperCase()))
    invalid(`visit: ${v.visit} is not a visit of form ${def.code} (${def.visits.join(", ")})`, "visit");
  const checked = checkedEntry(def, v, { today: todayIn(rows[0].timeZone) });
  return { ctx, principal, idem, study, p, form, def, checked, visit: v.visit.toUpperCase() };
}

/** The record id of no record: a new record's lock check looks at study and subject locks only. */
const NO_RECORD = "00000000-0000-0000-0000-000000000000";

/** The advisory lock key of a repeating form's rows of one subject and visit (ADR 0026; the batch API's too). */
const slotKey = (x: PreparedSave) => `records:${x.p.id}:${x.def.code}:${x.visit}`;

/**
 * Take the slot locks of a group's repeating forms up front, in one statement and in the order of their lock ids
 * (the hash), as the batch API does: two writers taking several slots never wait for each other in a cycle.
 */
async function lockSlots(tx: DbOrTx, keys: string[]) {
  const distinct = [...new Set(keys)];
  if (distinct.length === 0) return;
  await tx.execute(
    sql`SELECT pg_advisory_xact_lock(h) FROM (SELECT hashtextextended(k, 0) AS h
        FROM (VALUES ${sql.join(
          distinct.map((k) => sql`(${k})`),
          sql`, `,
        )}) AS v(k) ORDER BY 1 OFFSET 0) AS o`,
  );
}

/** The next row of a repeating form, assigned under a lock held to the end of the transaction (ADR 0026). */
async function lastInstance(tx: DbOrTx, x: PreparedSave, opts: { locked?: boolean } = {}): Promise<number> {
  if (!opts.locked) await tx.execute(sql`SELECT pg_advisory_xact_lock(hashtextextended(${slotKey(x)}, 0))`);
  const [last] = await tx
    .select({ n: sql<number>`coalesce(max(${records.instance}), 0)` })
    .from(records)
    .where(and(eq(records.participantId, x.p.id), eq(records.formCode, x.def.code), eq(records.visit, x.visit)));
  return Number(last?.n ?? 0);
}

/** A new record that collided with an existing one: the stored response of its Idempotency-Key, else a 409. */
async function duplicateOutcome(x: PreparedSave): Promise<SavedRecord> {
  if (x.idem) {
    const replay = await replayIdempotent(x.ctx, x.idem);
    if (replay) return replay.body as SavedRecord;
  }
  throw new ServiceError(
    "conflict",
    `subject ${x.p.subjectCode} already has form ${x.def.code} at visit ${x.visit}; correct it instead`,
    "visit",
  );
}

/** The audit event of a new record (record.create). */
function createEvent(x: PreparedSave, recordId: string, instance: number, entryId: string) {
  return {
    action: "record.create",
    ...auditActor(x.principal),
    studyId: x.study.id,
    siteId: x.p.siteId,
    participantId: x.p.id,
    detail: auditDetail(x.principal, {
      record: recordId,
      version: 1,
      form: x.def.code,
      visit: x.visit,
      ...(x.def.repeating ? { instance } : {}),
      entry: entryId,
    }),
  };
}

/** A new record's version row. */
function firstVersion(x: PreparedSave, recordId: string, entryId: string) {
  return {
    recordId,
    studyId: x.study.id,
    version: 1,
    formId: x.form.id,
    formVersion: x.def.version,
    ...versionColumns(x.checked),
    reason: null,
    actorUserId: x.principal.userId,
    ...rowTokenColumns(x.principal),
    entryId,
  };
}

/** The automatic queries of a new record (soft limits, then its visit window: ADR 0032), inside its transaction. */
async function newRecordQueries(
  tx: DbOrTx,
  x: PreparedSave,
  r: { id: string; siteId: string; participantId: string; visit: string },
  windows: boolean,
) {
  const ids = x.checked.outsideSoftLimits.length
    ? await openAutomaticQueries(
        tx,
        x.ctx,
        x.principal,
        x.study,
        r,
        x.def,
        x.checked.outsideSoftLimits,
        x.checked.values,
      )
    : [];
  // Issue 18 (ADR 0032): a visit date outside its window opens an automatic query (soft: the save stands).
  const windowQuery = windows
    ? await openWindowQuery(tx, x.ctx, x.principal, x.study, r, x.def, x.checked.values)
    : null;
  if (windowQuery) ids.push(windowQuery);
  return ids;
}

/** The single-record path: one record in a transaction of its own (a group's items retried after its failure). */
async function writeOne(x: PreparedSave): Promise<SavedRecord> {
  const { ctx, principal, study, p, form, def, checked, visit } = x;
  try {
    return await ctx.db.transaction(async (tx) => {
      await guardSubjectWrite(ctx, tx, { id: NO_RECORD, studyId: study.id, participantId: p.id }, { newData: true });
      await assertConsentBeforeData(ctx, tx, {
        studyId: study.id,
        studyCode: study.code,
        participantId: p.id,
        subject: p.subjectCode,
        form: def.code,
      });
      const instance = def.repeating ? (await lastInstance(tx, x)) + 1 : 1;
      const [r] = await tx
        .insert(records)
        .values({ studyId: study.id, siteId: p.siteId, participantId: p.id, formCode: def.code, visit, instance })
        .returning();
      const e = await appendEntry(
        tx,
        ctx.crypto,
        study,
        "record.saved",
        recordPayload(ctx, principal, def, form, {
          record: r.id,
          version: 1,
          subject: p.subjectCode,
          visit: r.visit,
          instance,
          reason: null,
          prev: null,
          entry: checked,
        }),
      );
      await tx.insert(recordVersions).values(firstVersion(x, r.id, e.id));
      await audit(tx, createEvent(x, r.id, instance, e.id));
      const queryIds = await newRecordQueries(tx, x, r, true);
      const out: SavedRecord = {
        id: r.id,
        version: 1,
        instance,
        entry: { id: e.id, status: "pending" },
        ...(queryIds.length ? { queries: queryIds } : {}),
      };
      await storeIdempotent(tx, x.idem, 201, out);
      return out;
    });
  } catch (err) {
    if (isUniqueViolation(err)) return duplicateOutcome(x);
    throw err;
  }
}

/**
 * A group of new records in one transaction (ADR 0041): the subjects held FOR SHARE, locks and consent checked for
 * all in one statement each (an item they flag is checked again on its own, and refused with today's error), then
 * multi-row INSERTs of the records, their ledger entries, versions, audit events and idempotency rows. A record that
 * collides with an existing one (same subject, form, visit) is left out and answered as on its own (a replay of its
 * Idempotency-Key, else a 409) after the commit.
 */
async function writeGroup(items: PreparedSave[], limits: GroupLimits): Promise<Outcome<SavedRecord>[]> {
  const db = items[0].ctx.db;
  const outcomes: (Outcome<SavedRecord> | "duplicate" | undefined)[] = new Array(items.length);
  // Set when the transaction's callback has returned: from then on COMMIT is sent, and a failure (of COMMIT, or its
  // reply lost on a dropped connection) leaves the group's fate unknown. Before that, any failure rolled it back.
  let committing = false;
  try {
    await db.transaction(async (tx) => {
      await groupTransaction(tx, items, outcomes, limits);
      for (let k = 0; k < items.length; k++)
        if (outcomes[k] === undefined) throw new Error("group commit: an item got no outcome");
      committing = true;
    });
  } catch (err) {
    if (!committing) throw new GroupRolledBack(err);
    throw err;
  }
  // After the commit: the duplicates answered as on their own (an error there is that item's alone).
  const out: Outcome<SavedRecord>[] = [];
  for (let k = 0; k < items.length; k++) {
    const o = outcomes[k] as Outcome<SavedRecord> | "duplicate";
    if (o !== "duplicate") out.push(o);
    else
      out.push(
        await duplicateOutcome(items[k]).then(
          (value): Outcome<SavedRecord> => ({ ok: true, value }),
          (error): Outcome<SavedRecord> => ({ ok: false, error }),
        ),
      );
  }
  return out;
}

/** A group transaction's own limits (ADR 0041): how long it may wait on a lock, and run one statement. */
interface GroupLimits {
  lockTimeoutMs: number;
  statementTimeoutMs: number;
}

/** The body of a group's transaction (see writeGroup): fills one outcome per item. */
async function groupTransaction(
  tx: Tx,
  items: PreparedSave[],
  outcomes: (Outcome<SavedRecord> | "duplicate" | undefined)[],
  limits: GroupLimits,
) {
  outcomes.fill(undefined);
  // A group never waits long on a lock (a study's row held FOR UPDATE by a settings, schedule or lock change, a
  // slot held by a batch) nor on a statement: it gives up and its items are written one by one, each waiting as
  // a lone write does, while the queue moves on (ADR 0041).
  await tx.execute(
    sql`SELECT set_config('lock_timeout', ${`${limits.lockTimeoutMs}ms`}, true),
      set_config('statement_timeout', ${`${limits.statementTimeoutMs}ms`}, true)`,
  );
  await holdSubjectsForShare(
    tx,
    items.map((x) => x.p.id),
  );
  const facts = await subjectFacts(
    tx,
    items.map((x) => x.p.id),
  );
  await lockSlots(tx, items.filter((x) => x.def.repeating).map(slotKey));
  const live: { k: number; recordId: string; instance: number }[] = [];
  const taken = new Set<string>();
  const lastOf = new Map<string, number>();
  for (let k = 0; k < items.length; k++) {
    const x = items[k];
    const c = facts.get(x.p.id);
    const plain = c && !c.locked && !c.withdrawn && (c.consented || c.formsBeforeConsent.includes(x.def.code));
    if (!plain) {
      // Flagged by a bulk check: the per-record checks decide, with today's errors.
      try {
        await assertUnlocked(x.ctx, { id: NO_RECORD, studyId: x.study.id, participantId: x.p.id }, tx);
        await assertConsentAllowsNewData(x.ctx, x.p.id, tx);
        await assertConsentBeforeData(x.ctx, tx, {
          studyId: x.study.id,
          studyCode: x.study.code,
          participantId: x.p.id,
          subject: x.p.subjectCode,
          form: x.def.code,
        });
      } catch (err) {
        if (!(err instanceof ServiceError)) throw err;
        outcomes[k] = { ok: false, error: err };
        continue;
      }
    }
    const slot = `${x.p.id}:${x.def.code}:${x.visit}`;
    let instance = 1;
    if (x.def.repeating) {
      instance = (lastOf.get(slot) ?? (await lastInstance(tx, x, { locked: true }))) + 1;
      lastOf.set(slot, instance);
    } else if (taken.has(slot)) {
      outcomes[k] = "duplicate"; // the same subject, form and visit earlier in this group
      continue;
    }
    taken.add(slot);
    live.push({ k, recordId: randomUUID(), instance });
  }
  if (live.length === 0) return;
  // The records, their ledger entries and versions in one statement; a record colliding with one already there
  // (or committed meanwhile by another writer) is left out with its entry and version.
  const rows = live.map(({ k, recordId, instance }) => {
    const x = items[k];
    const built = buildEntry(
      x.ctx.crypto,
      "record.saved",
      recordPayload(x.ctx, x.principal, x.def, x.form, {
        record: recordId,
        version: 1,
        subject: x.p.subjectCode,
        visit: x.visit,
        instance,
        reason: null,
        prev: null,
        entry: x.checked,
      }),
    );
    return { ...newRecordRow(x, recordId, instance, randomUUID()), ...entryColumns(built) };
  });
  const inserted = new Set(
    rowsOf<{ id: string }>(await tx.execute(insertNewRecords(rows, new Date()))).map((r) => r.id),
  );
  const written = live.flatMap((w, i) => {
    if (inserted.has(w.recordId)) return [{ ...w, entryId: rows[i].eid }];
    outcomes[w.k] = "duplicate"; // a record already there (or committed meanwhile by another writer)
    return [];
  });
  if (written.length === 0) return;
  await insertSealedEvents(
    tx,
    written.map((w) => createEvent(items[w.k], w.recordId, w.instance, w.entryId)),
  );
  // Visit windows: the schedule of a study that has one read once per group; openWindowQuery only where it can
  // open a query.
  const schedules = new Map<string, Awaited<ReturnType<typeof currentSchedule>>>();
  for (const w of written) {
    const x = items[w.k];
    if (!schedules.has(x.study.id) && facts.get(x.p.id)?.scheduled)
      schedules.set(x.study.id, await currentSchedule(tx, x.study.id));
  }
  const stored: { idem: Idempotency; status: number; body: SavedRecord }[] = [];
  for (let i = 0; i < written.length; i++) {
    const { k, recordId, instance, entryId } = written[i];
    const x = items[k];
    const r = { id: recordId, siteId: x.p.siteId, participantId: x.p.id, visit: x.visit };
    const queryIds = await newRecordQueries(tx, x, r, windowMayApply(schedules.get(x.study.id) ?? null, x));
    const out: SavedRecord = {
      id: recordId,
      version: 1,
      instance,
      entry: { id: entryId, status: "pending" },
      ...(queryIds.length ? { queries: queryIds } : {}),
    };
    if (x.idem) stored.push({ idem: x.idem, status: 201, body: out });
    outcomes[k] = { ok: true, value: out };
  }
  await storeIdempotentMany(tx, stored);
}

/** A new record's row, its version's columns and its entry's id, as the group's INSERT takes them. */
function newRecordRow(x: PreparedSave, rid: string, instance: number, eid: string) {
  const cols = versionColumns(x.checked);
  const token = rowTokenColumns(x.principal);
  return {
    rid,
    study: x.study.id,
    study_code: x.study.code,
    site: x.p.siteId,
    participant: x.p.id,
    form_code: x.def.code,
    visit: x.visit,
    instance,
    eid,
    form_id: x.form.id,
    form_version: x.def.version,
    data_text: cols.dataText,
    missing_text: cols.missingText,
    calculated_text: cols.calculatedText,
    actor_user_id: x.principal.userId,
    actor_token_id: token.actorTokenId,
    actor_token_name: token.actorTokenName,
  };
}

/** A built entry's columns (the hash as hex, for JSON). */
function entryColumns(built: { payloadText: string; payloadHash: Uint8Array }) {
  return { payload_text: built.payloadText, payload_hash: toHex(built.payloadHash) };
}

/**
 * One statement for a group's new records (ADR 0041): the rows as one JSON parameter; the records inserted unless
 * they collide (same subject, form, visit and instance); for each inserted one its pending `record.saved` ledger
 * entry and its version 1 (the same columns as the single-record path writes). Returns the inserted records' ids.
 */
function insertNewRecords(rows: ReturnType<typeof newRecordRow>[], at: Date) {
  return sql`
    WITH x AS (
      SELECT * FROM json_to_recordset(${JSON.stringify(rows)}::json) AS x(
        rid uuid, study uuid, study_code text, site uuid, participant uuid, form_code text, visit text, instance int,
        eid uuid, payload_text text, payload_hash text, form_id uuid, form_version int, data_text text,
        missing_text text, calculated_text text, actor_user_id uuid, actor_token_id uuid, actor_token_name text)),
    r AS (
      INSERT INTO records (id, study_id, site_id, participant_id, form_code, visit, instance)
      SELECT rid, study, site, participant, form_code, visit, instance FROM x
      ON CONFLICT DO NOTHING RETURNING id),
    e AS (
      INSERT INTO ledger_entries (id, study_id, study_code, kind, payload_text, payload_hash, at)
      SELECT x.eid, x.study, x.study_code, 'record.saved', x.payload_text, decode(x.payload_hash, 'hex'),
        ${at.toISOString()}::timestamptz
      FROM x JOIN r ON r.id = x.rid),
    v AS (
      INSERT INTO record_versions (record_id, study_id, version, form_id, form_version, data_text, missing_text,
        calculated_text, reason, actor_user_id, actor_token_id, actor_token_name, entry_id)
      SELECT x.rid, x.study, 1, x.form_id, x.form_version, x.data_text, x.missing_text, x.calculated_text, NULL,
        x.actor_user_id, x.actor_token_id, x.actor_token_name, x.eid
      FROM x JOIN r ON r.id = x.rid)
    SELECT id FROM r`;
}

/** Whether openWindowQuery can open a query for this record (its own first test, on the schedule read once). */
function windowMayApply(s: Awaited<ReturnType<typeof currentSchedule>>, x: PreparedSave): boolean {
  if (!s || s.sealMismatch) return false;
  const v = s.definition.visits.find((y) => y.code.toUpperCase() === x.visit.toUpperCase());
  return !!v?.dateField && v.dateField.form.toUpperCase() === x.def.code.toUpperCase();
}

/** The settings of a database's record group committer (ADR 0041). */
export interface RecordGroupCommitOptions {
  /** Items per group at most (default 200). */
  maxGroup?: number;
  /** Group transactions in flight at once (default 1). */
  maxInFlight?: number;
  /** A group's wait on any one lock before it gives up and its items go one by one (default 1 s). */
  lockTimeoutMs?: number;
  /** A group statement's running time before it is cancelled and its items go one by one (default 10 s). */
  statementTimeoutMs?: number;
  /** A group still in flight after this long gives its slot to the next group (default 15 s: a hung connection). */
  stallMs?: number;
}

/** One group committer per database handle. */
const committers = new WeakMap<Db, GroupCommitter<PreparedSave, SavedRecord>>();
function makeCommitter(o: RecordGroupCommitOptions) {
  const limits = { lockTimeoutMs: o.lockTimeoutMs ?? 1_000, statementTimeoutMs: o.statementTimeoutMs ?? 10_000 };
  return new GroupCommitter<PreparedSave, SavedRecord>({
    maxGroup: o.maxGroup ?? 200,
    maxInFlight: o.maxInFlight ?? 1,
    stallMs: o.stallMs ?? 15_000,
    commitGroup: (items) => writeGroup(items, limits),
    commitOne: writeOne,
  });
}
/**
 * Two groups in flight on PostgreSQL (a pool: while one group commits, the next is checked and written; measured
 * 1.36x the records/s of one in flight with 16 writers), one on PGlite (one connection: a second would only wait).
 */
function committerOf(db: Db, engine?: "postgres" | "pglite") {
  let c = committers.get(db);
  if (!c) {
    c = makeCommitter({ maxInFlight: engine === "postgres" ? 2 : 1 });
    committers.set(db, c);
  }
  return c;
}

/**
 * Change the settings of a database's record group committer (the bench and tests; the defaults are the
 * portal's). Saves already queued finish on the committer they joined; the counters carry over.
 */
export function configureRecordGroupCommit(db: Db, opts: RecordGroupCommitOptions) {
  const c = makeCommitter(opts);
  const old = committers.get(db);
  if (old) Object.assign(c.stats, old.stats);
  committers.set(db, c);
}

/** Counters of the record group committer of a database (groups, items, largest group, fallbacks, ...). */
export function recordGroupCommitStats(db: Db): GroupCommitStats & { queued: number } {
  const c = committers.get(db);
  const none = { groups: 0, items: 0, largest: 0, fallbacks: 0, uncertain: 0, stalled: 0 };
  return { ...(c?.stats ?? none), queued: c?.queued ?? 0 };
}

/**
 * Correct a record: new version with a reason; the previous versions stay, chained by `prev`. The new version
 * holds every value (a value left out, or hidden by the new values' branching, is cleared with the same reason).
 * A value that is unchanged needs no new confirmation of its expected range; a changed one outside it does, and
 * opens an automatic query.
 */
export async function correctRecord(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  recordId: string,
  input: unknown,
): Promise<SavedRecord> {
  const body = parseOr422(CorrectionBody, input);
  const reason = reasonProblem(body.reason);
  const study = await getStudyOrThrow(ctx, studyCode);
  if (!/^[0-9a-f-]{36}$/.test(recordId)) throw new ServiceError("not_found", `no record ${recordId}`, "id");
  const [r] = await ctx.db
    .select()
    .from(records)
    .where(and(eq(records.id, recordId), eq(records.studyId, study.id)));
  if (!r || !can(principal, "records.read", { studyId: study.id, siteId: r.siteId }))
    throw new ServiceError("not_found", `no record ${recordId}`, "id");
  await requireSiteAction(ctx, principal, "records.enter", { studyId: study.id, siteId: r.siteId });
  const today = await siteToday(ctx, r.siteId);
  return ctx.db.transaction(async (tx) => {
    // Serialize corrections of one record: the row lock makes version numbers and the prev chain gapless.
    await tx.execute(sql`SELECT 1 FROM records WHERE id = ${r.id} FOR UPDATE`);
    await guardSubjectWrite(ctx, tx, r, { newData: false });
    const [cur] = await tx
      .select({
        version: recordVersions.version,
        formId: recordVersions.formId,
        dataText: recordVersions.dataText,
        missingText: recordVersions.missingText,
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
    const def = storedDefinition(form);
    const before = JSON.parse(cur.dataText) as Record<string, unknown>;
    const data = body.data as Record<string, unknown>;
    const same = (n: string) =>
      Object.hasOwn(before, n) && Object.hasOwn(data, n) && canonicalize(before[n]) === canonicalize(data[n]);
    const unchanged = def.fields.map((f) => f.name).filter(same);
    // Every problem at once: the values' and the reason's.
    const { checked, cols } = checkCorrection(() => {
      const checked = checkedEntry(def, { ...body, confirmed: [...(body.confirmed ?? []), ...unchanged] }, { today });
      const cols = versionColumns(checked);
      if (cols.dataText === cur.dataText && cols.missingText === (cur.missingText ?? "{}"))
        invalid("data: nothing changed; a correction must change at least one value", "data");
      return { checked, cols };
    }, reason);
    const v = CorrectionInput.parse(body); // the reason was checked above
    const version = cur.version + 1;
    const e = await appendEntry(
      tx,
      ctx.crypto,
      study,
      "record.saved",
      recordPayload(ctx, principal, def, form, {
        record: r.id,
        version,
        subject: cur.subject,
        visit: r.visit,
        instance: r.instance,
        reason: v.reason,
        prev: toHex(cur.payloadHash),
        entry: checked,
      }),
    );
    await tx.insert(recordVersions).values({
      recordId: r.id,
      studyId: study.id,
      version,
      formId: form.id,
      formVersion: form.version,
      ...cols,
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
    const queryIds = await openAutomaticQueries(
      tx,
      ctx,
      principal,
      study,
      r,
      def,
      checked.outsideSoftLimits.filter((n) => !unchanged.includes(n)),
      checked.values,
    );
    const windowQuery = await openWindowQuery(tx, ctx, principal, study, r, def, checked.values, unchanged);
    if (windowQuery) queryIds.push(windowQuery);
    return {
      id: r.id,
      version,
      instance: r.instance,
      entry: { id: e.id, status: "pending" as const },
      ...(queryIds.length ? { queries: queryIds } : {}),
    };
  });
}

/**
 * What a version holds: the entered values, the missing-data codes with their reasons and the calculated values
 * (the last two empty on versions written before them).
 */
export function versionContent(v: { dataText: string; missingText: string | null; calculatedText: string | null }) {
  return {
    data: JSON.parse(v.dataText) as Record<string, unknown>,
    missing: JSON.parse(v.missingText ?? "{}") as Record<string, { code: string; reason: string }>,
    calculated: JSON.parse(v.calculatedText ?? "{}") as Record<string, number | null>,
  };
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
  // The record page and the API's GET: a read of CRF data, coalesced per reader, participant and hour (ADR 0067).
  await auditPrincipalRead(ctx.db, principal, {
    action: "record.view",
    studyId: study.id,
    siteId: r.r.siteId,
    participantId: r.r.participantId,
  });
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
      formRow: sealFormColumns,
    })
    .from(recordVersions)
    .innerJoin(ledgerEntries, eq(ledgerEntries.id, recordVersions.entryId))
    .innerJoin(forms, eq(forms.id, recordVersions.formId))
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
  const history = versions.map(({ v, actor, entryStatus, seq, batch, at, payloadText, payloadHash, formRow }) => {
    // The cheap check of the row against its sealed entry: a value altered behind the log is never shown as sealed.
    const sealMatches = matchesSeal(ctx.crypto, {
      ...v,
      subject: r.subject,
      form: r.r.formCode,
      visit: r.r.visit,
      instance: r.r.instance,
      formRow,
      payloadText,
      payloadHash,
    });
    const { data, missing, calculated } = versionContent(v);
    // What each field held: its value, else its missing-data code (with the reason), else null.
    const held: Record<string, unknown> = { ...data };
    for (const [f, m] of Object.entries(missing)) held[f] = { missing: m.code, reason: m.reason };
    const fields = [...new Set([...Object.keys(prev), ...Object.keys(held)])];
    const changes =
      v.version === 1
        ? []
        : fields
            .filter((f) => canonicalize(prev[f] ?? null) !== canonicalize(held[f] ?? null))
            .map((f) => ({ field: f, old: prev[f] ?? null, new: held[f] ?? null }));
    prev = held;
    return {
      version: v.version,
      formVersion: v.formVersion,
      data,
      missing,
      calculated,
      reason: v.reason,
      actor: actor ?? tokenActor(v),
      at: at.toISOString(),
      /** An imported version's source (ADR 0037: JCS {job, fileSha256, row, claims}); null when entered here. */
      source: v.sourceText ?? null,
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
    /** The row of a repeating form (1 for any other form). */
    instance: r.r.instance,
    status: r.r.status,
    version: current.version,
    data: current.data,
    missing: current.missing,
    calculated: current.calculated,
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
/**
 * `opts.read`: the read it records (ADR 0067): `participant.view` (the subject page), `consent.view` (the consent
 * pages), or null where the caller only handles a form POST (the page's loader runs again to show the result and
 * records the read then).
 */
export async function subjectCasebook(
  ctx: AppContext,
  principal: Principal,
  studyId: string,
  subject: string,
  opts: { read?: "participant.view" | "consent.view" | null } = {},
) {
  const [p] = await ctx.db
    .select({ p: participants, site: sites.code })
    .from(participants)
    .innerJoin(sites, eq(sites.id, participants.siteId))
    .where(and(eq(participants.studyId, studyId), eq(participants.subjectCode, subject.toUpperCase())));
  if (!p || !can(principal, "records.read", { studyId, siteId: p.p.siteId })) return null;
  // A read of the participant's data: one sealed event per user or token, participant and hour (ADR 0016, 0067).
  const read = opts.read === undefined ? "participant.view" : opts.read;
  if (read)
    await auditPrincipalRead(ctx.db, principal, { action: read, studyId, siteId: p.p.siteId, participantId: p.p.id });
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
      instance: r.instance,
      version: r.currentVersion,
      status: r.status,
      /** False when a version of the record no longer matches its sealed entry. */
      matchesSeal: !mismatched.has(r.id),
    })),
  };
}
