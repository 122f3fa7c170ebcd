/**
 * The batch API's service (issue 19, ADR 0040): up to 1,000 new records in one call, with per-item results. Every
 * item is checked as `saveRecord` checks one (its shape, subject, permission at the subject's site, form and visit,
 * values, locks, the consent gate, a duplicate in the batch or in the database, its own idempotency key); the items
 * that pass are written in ONE transaction through the import's bulk path (import-writer.server.ts
 * `buildVersions` + `writeSealedVersions`): each its own record.saved v3 entry, records and record_versions rows,
 * sealed `record.create` audit event, idempotency row, and automatic queries, exactly as `saveRecord` writes them.
 * Reads are a handful of round trips for the whole batch (participants, forms, sites, stored keys, locks, records).
 */
import { randomUUID } from "node:crypto";
import { and, desc, eq, inArray, isNull, sql } from "drizzle-orm";
import { z } from "zod";
import { CanonicalizationError, canonicalize } from "../../anchoring/log/canonical.ts";
import { toHex, utf8 } from "../../anchoring/log/bytes.ts";
import type { CheckedEntry } from "../../anchoring/forms/check-entry.ts";
import type { NewAuditEvent } from "../../db/queries/audit.ts";
import { rowsOf } from "../../db/queries/rows.ts";
import { apiRateBuckets, forms, locks, participants, sites } from "../../db/schema/index.ts";
import { buildVersions, writeSealedVersions, type SealedPlan } from "../data-import/import-writer.server.ts";
import { insertSealedEvents } from "../audit-trail/seal-event.server.ts";
import { openAutomaticQueries } from "../clinical-monitoring/automatic-queries.server.ts";
import { consentGateReason } from "../consent/consent-gate.server.ts";
import { assertConsentAllowsNewData, consentStatus } from "../consent/status.server.ts";
import { auditActor, auditDetail } from "../platform/attribution.ts";
import type { AppContext } from "../platform/context.server.ts";
import { ServiceError, isUniqueViolation, type Problem } from "../platform/errors.server.ts";
import type { Principal } from "../platform/permissions.server.ts";
import { requireSiteAction } from "../studies/delegations.server.ts";
import { studySettingsOf } from "../studies/settings.server.ts";
import { getStudyOrThrow } from "../studies/studies.server.ts";
import { currentSchedule } from "../visit-schedule/schedule.server.ts";
import { openWindowQuery } from "../visit-schedule/visit-windows.server.ts";
import { storedIdempotent, storeIdempotentMany, type Idempotency } from "./idempotency.server.ts";
import { NewRecordInput, checkedEntry, storedDefinition, todayIn, type SavedRecord } from "./records.server.ts";

/** Items per call (more: 413 naming `records`). */
export const MAX_BATCH_RECORDS = 1000;
/** The body limit of a batch (a single POST /records allows 64 KiB; a batch about 4 KiB per item on average). */
export const MAX_BATCH_BYTES = 4 * 1024 * 1024;
/** The limit of one item's JSON (as POST /records limits a record's body): more is that item's 413. */
export const MAX_BATCH_ITEM_BYTES = 64 * 1024;
/** Attempts of the write when it meets a unique violation, a deadlock or a serialization failure. */
export const MAX_WRITE_ATTEMPTS = 4;

/** An item: a new record as POST /records takes it, and its own optional idempotency key. */
export const BatchItemInput = NewRecordInput.extend({
  idempotencyKey: z
    .string({ error: "idempotencyKey must be a string" })
    .regex(/^[\x21-\x7e]{1,200}$/, "idempotencyKey must be 1-200 visible ASCII characters")
    .optional(),
});
const BatchBody = z.strictObject({
  records: z.array(z.unknown(), { error: "records must be a list of new records" }),
});

export interface BatchItemError {
  code: string;
  message: string;
  field?: string;
  problems?: Problem[];
}

export interface BatchItemResult {
  index: number;
  status: number;
  record?: SavedRecord;
  error?: BatchItemError;
  /** True when the item's idempotency key had already written it: its stored result, nothing written now. */
  replayed?: true;
}

export interface BatchOutcome {
  results: BatchItemResult[];
  /** Items with a record (status 201), replays included. */
  written: number;
  /** Of those, the replays (written by an earlier call). */
  replayed: number;
  failed: number;
}

/** More than MAX_BATCH_RECORDS items: the route answers 413 naming `records`. */
export class BatchTooLargeError extends ServiceError {
  constructor(n: number) {
    super("invalid", `records: ${n} records; a batch holds at most ${MAX_BATCH_RECORDS}`, "records");
  }
}

/** The idempotency scope of a principal's batch items in a study (apart from the Idempotency-Key header's). */
export function batchIdempotencyScope(principal: Principal, studyCode: string): string {
  return `${principal.label}:${studyCode.toUpperCase()}:batch`;
}

function fail(index: number, err: unknown): BatchItemResult {
  if (!(err instanceof ServiceError)) throw err;
  return {
    index,
    status: err.status,
    error: {
      code: err.code,
      message: err.message,
      ...(err.field ? { field: err.field } : {}),
      ...(err.problems && err.problems.length > 1 ? { problems: err.problems } : {}),
    },
  };
}

/** A deadlock (40P01) or a serialization failure (40001): the transaction is worth retrying as a whole. */
export function isTransientConflict(err: unknown): boolean {
  let e: unknown = err;
  for (let i = 0; i < 4 && e; i++) {
    const code = (e as { code?: string }).code;
    if (code === "40P01" || code === "40001") return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

/** An item whose key holds a stored result: that result (a replay), or its 409 when its body is another one. */
function replayOf(
  index: number,
  s: { requestHash: Uint8Array; status: number; body: unknown },
  idem: Idempotency,
): BatchItemResult {
  if (toHex(s.requestHash) !== toHex(idem.requestHash))
    return fail(
      index,
      new ServiceError(
        "conflict",
        "idempotencyKey: this key was already used for a different record",
        "idempotencyKey",
      ),
    );
  return { index, status: s.status, record: s.body as SavedRecord, replayed: true };
}

/** Parse an item; an unknown field is refused by name, as POST /records refuses it. */
function parseItem(input: unknown): z.infer<typeof BatchItemInput> {
  const r = BatchItemInput.safeParse(input);
  if (r.success) return r.data;
  const i = r.error.issues[0];
  if (i.code === "unrecognized_keys") {
    const key = [...i.path.map(String), i.keys[0]].join(".");
    throw new ServiceError(
      "invalid",
      `unknown field ${key} (known fields: ${Object.keys(BatchItemInput.shape).join(", ")})`,
      key,
    );
  }
  const field = i.path.map(String).join(".") || "body";
  throw new ServiceError("invalid", `${i.path.join(".") || "record"}: ${i.message}`, field);
}

/** The body's items: 422 for a body that is not {records: [...]} or an empty list, 413 beyond the limit. */
export function batchItems(input: unknown): unknown[] {
  const r = BatchBody.safeParse(input);
  if (!r.success) {
    const i = r.error.issues[0];
    if (i.code === "unrecognized_keys")
      throw new ServiceError("invalid", `unknown field ${i.keys[0]} (known fields: records)`, i.keys[0]);
    throw new ServiceError("invalid", `records: ${i.message}`, "records");
  }
  if (r.data.records.length === 0) throw new ServiceError("invalid", "records: give at least one record", "records");
  if (r.data.records.length > MAX_BATCH_RECORDS) throw new BatchTooLargeError(r.data.records.length);
  return r.data.records;
}

/**
 * The API rate for a batch: it costs one request per item. A call is admitted when the principal's bucket holds at
 * least one request, and takes all of its items (the bucket may go below zero: the next call waits until it has
 * refilled at API_RATE_PER_SECOND), so a batch larger than the burst is still possible and the average stays at
 * the rate. The same bucket as `rateLimited` (app/platform/api.server.ts).
 */
export async function takeBatchRate(
  ctx: AppContext,
  principal: Principal,
  perSecond: number,
  items: number,
): Promise<{ retryAfter: number } | null> {
  const key = principal.token
    ? `token:${principal.token.id}`
    : `${principal.kind}:${principal.userId ?? principal.label}`;
  const b = apiRateBuckets;
  const burst = perSecond * 2;
  const refilled = sql`least(${burst}::float8, ${b.tokens} + extract(epoch from (clock_timestamp() - ${b.at}))::float8
    * ${perSecond}::float8)`;
  const taken = await ctx.db
    .insert(b)
    .values({ key, tokens: burst - items, at: sql`clock_timestamp()` })
    .onConflictDoUpdate({
      target: b.key,
      set: { tokens: sql`${refilled} - ${items}::float8`, at: sql`clock_timestamp()` },
      setWhere: sql`${refilled} >= 1`,
    })
    .returning({ tokens: b.tokens });
  if (taken.length === 1) return null;
  const [row] = await ctx.db
    .select({ tokens: sql<number>`${refilled}` })
    .from(b)
    .where(eq(b.key, key));
  return { retryAfter: Math.max(1, Math.ceil((1 - Number(row?.tokens ?? 0)) / perSecond)) };
}

/** An item that passed every check made without the write's transaction. */
interface Candidate {
  index: number;
  idem?: Idempotency;
  participant: { id: string; siteId: string; subjectCode: string; status: string };
  form: { row: typeof forms.$inferSelect; def: ReturnType<typeof storedDefinition> };
  visit: string;
  checked: CheckedEntry;
}

type Plan = SealedPlan & { candidate: Candidate };

/**
 * Save up to MAX_BATCH_RECORDS new records: per-item results in item order (201 with the record, or the item's
 * 4xx: 422 invalid, 403 not permitted at that site, 409 consent / duplicate / key reused, 413 an item over 64 KiB,
 * 423 locked); an item whose key holds a stored result gets it back before any check; the valid items written in
 * one transaction. Throws (the whole call refused) only for a body that is not a batch or a study
 * that does not exist.
 */
export async function saveRecordBatch(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  input: unknown,
): Promise<BatchOutcome> {
  const items = batchItems(input);
  const study = await getStudyOrThrow(ctx, studyCode);
  const scope = batchIdempotencyScope(principal, study.code);
  const results: (BatchItemResult | undefined)[] = new Array(items.length);
  // Keys first, as POST /records replays before any check: an item whose key already holds a stored result gets
  // it back whatever changed since (delegation, form version, limits); the same key with another body is its 409.
  const keyed: (Idempotency | undefined)[] = new Array(items.length);
  const keyOwner = new Map<string, number>();
  for (let index = 0; index < items.length; index++) {
    const item = items[index];
    if (typeof item !== "object" || item === null || Array.isArray(item)) continue;
    const { idempotencyKey, ...rest } = item as Record<string, unknown>;
    if (typeof idempotencyKey !== "string" || !/^[\x21-\x7e]{1,200}$/.test(idempotencyKey)) continue;
    const first = keyOwner.get(idempotencyKey);
    if (first !== undefined) {
      results[index] = fail(
        index,
        new ServiceError(
          "invalid",
          `idempotencyKey: item ${first} of this batch has the same key; each item needs its own`,
          "idempotencyKey",
        ),
      );
      continue;
    }
    let text: string;
    try {
      text = canonicalize(rest);
    } catch (err) {
      // Not JSON the key's hash can be taken of (a lone surrogate, nested too deeply): that item's 422.
      if (!(err instanceof CanonicalizationError)) throw err;
      const field = /^\$\.?([^:]*):/.exec(err.message)?.[1] || "body";
      results[index] = fail(index, new ServiceError("invalid", err.message.replace(/^\$\.?/, ""), field));
      continue;
    }
    keyOwner.set(idempotencyKey, index);
    keyed[index] = { scope, key: idempotencyKey, requestHash: ctx.crypto.sha256(utf8(text)) };
  }
  if (keyOwner.size) {
    const stored = await storedIdempotent(ctx.db, scope, [...keyOwner.keys()]);
    for (const [key, index] of keyOwner) {
      const s = stored.get(key);
      if (s) results[index] = replayOf(index, s, keyed[index] as Idempotency);
    }
  }
  const parsed: { index: number; v: z.infer<typeof BatchItemInput>; idem?: Idempotency }[] = [];
  for (let index = 0; index < items.length; index++) {
    if (results[index]) continue;
    try {
      const bytes = Buffer.byteLength(JSON.stringify(items[index]) ?? "", "utf8");
      if (bytes > MAX_BATCH_ITEM_BYTES) {
        results[index] = {
          index,
          status: 413,
          error: {
            code: "too_large",
            message:
              `records[${index}]: this record is ${bytes} bytes of JSON; a record holds at most ` +
              `${MAX_BATCH_ITEM_BYTES} bytes (as POST /records)`,
            field: `records[${index}]`,
          },
        };
        continue;
      }
      parsed.push({ index, v: parseItem(items[index]), idem: keyed[index] });
    } catch (err) {
      results[index] = fail(index, err);
    }
  }

  // Subjects, forms and sites of the whole batch: three round trips.
  const codes = [...new Set(parsed.map((x) => x.v.subject.toUpperCase()))];
  const subjects = new Map<string, Candidate["participant"]>();
  for (let i = 0; i < codes.length; i += 1000)
    for (const p of await ctx.db
      .select({
        id: participants.id,
        siteId: participants.siteId,
        subjectCode: participants.subjectCode,
        status: participants.status,
      })
      .from(participants)
      .where(and(eq(participants.studyId, study.id), inArray(participants.subjectCode, codes.slice(i, i + 1000)))))
      subjects.set(p.subjectCode.toUpperCase(), p);
  const approved = new Map<string, Candidate["form"][]>();
  for (const row of await ctx.db
    .select()
    .from(forms)
    .where(and(eq(forms.studyId, study.id), eq(forms.status, "approved")))
    .orderBy(desc(forms.version))) {
    const list = approved.get(row.code) ?? [];
    list.push({ row, def: storedDefinition(row) });
    approved.set(row.code, list);
  }
  const siteZones = new Map(
    (await ctx.db.select({ id: sites.id, tz: sites.timeZone }).from(sites).where(eq(sites.studyId, study.id))).map(
      (s) => [s.id, todayIn(s.tz)],
    ),
  );
  // Permission (role and current delegation) once per site.
  const siteRefusal = new Map<string, unknown>();
  for (const siteId of new Set([...subjects.values()].map((p) => p.siteId))) {
    try {
      await requireSiteAction(ctx, principal, "records.enter", { studyId: study.id, siteId });
      siteRefusal.set(siteId, null);
    } catch (err) {
      if (!(err instanceof ServiceError)) throw err;
      siteRefusal.set(siteId, err);
    }
  }

  const candidates: Candidate[] = [];
  for (const { index, v, idem } of parsed) {
    try {
      const p = subjects.get(v.subject.toUpperCase());
      if (!p) throw new ServiceError("invalid", `subject: no subject ${v.subject} in ${study.code}`, "subject");
      const refused = siteRefusal.get(p.siteId);
      if (refused) throw refused;
      const versions = approved.get(v.form.toUpperCase());
      if (!versions) throw new ServiceError("invalid", `form: ${v.form} has no approved version in this study`, "form");
      const form = v.formVersion === undefined ? versions[0] : versions.find((f) => f.row.version === v.formVersion);
      if (!form)
        throw new ServiceError(
          "invalid",
          `formVersion: ${v.form} version ${v.formVersion} is not an approved version ` +
            `(approved: ${versions.map((f) => f.row.version).join(", ")})`,
          "formVersion",
        );
      const def = form.def;
      if (!def.visits.includes(v.visit.toUpperCase()))
        throw new ServiceError(
          "invalid",
          `visit: ${v.visit} is not a visit of form ${def.code} (${def.visits.join(", ")})`,
          "visit",
        );
      const checked = checkedEntry(def, v, { today: siteZones.get(p.siteId) ?? todayIn() });
      candidates.push({ index, idem, participant: p, form, visit: v.visit.toUpperCase(), checked });
    } catch (err) {
      results[index] = fail(index, err);
    }
  }

  // The write, again from the replay check when a concurrent write took a key or a record first (unique
  // violation), or when the transaction was chosen as a deadlock's victim or failed to serialize (40P01, 40001):
  // at most MAX_WRITE_ATTEMPTS attempts, after a short random pause that grows with each attempt.
  for (let attempt = 1; ; attempt++) {
    try {
      const inTx = await writeCandidates(ctx, principal, study, scope, candidates);
      for (const r of inTx) results[r.index] = r;
      break;
    } catch (err) {
      if (attempt >= MAX_WRITE_ATTEMPTS || !(isUniqueViolation(err) || isTransientConflict(err))) throw err;
      if (isTransientConflict(err)) await new Promise((r) => setTimeout(r, Math.random() * 20 * attempt));
    }
  }
  const out = results as BatchItemResult[];
  const written = out.filter((r) => r.status === 201).length;
  return {
    results: out,
    written,
    replayed: out.filter((r) => r.replayed).length,
    failed: out.length - written,
  };
}

/** Inside one transaction: replays, locks, consent, duplicates, instances; then the bulk write. */
async function writeCandidates(
  ctx: AppContext,
  principal: Principal,
  study: { id: string; code: string },
  scope: string,
  candidates: Candidate[],
): Promise<BatchItemResult[]> {
  if (candidates.length === 0) return [];
  return ctx.db.transaction(async (tx) => {
    const results: BatchItemResult[] = [];
    // Replays again, in the transaction: a key a concurrent call stored since the look-up before the checks.
    const keyed = candidates.filter((c) => c.idem).map((c) => (c.idem as Idempotency).key);
    const stored = keyed.length ? await storedIdempotent(tx, scope, keyed) : new Map();
    const fresh: Candidate[] = [];
    for (const c of candidates) {
      const s = c.idem && stored.get(c.idem.key);
      if (!s) fresh.push(c);
      else results.push(replayOf(c.index, s, c.idem as Idempotency));
    }
    if (fresh.length === 0) return results;
    const pids = [...new Set(fresh.map((c) => c.participant.id))];
    const idList = sql.join(
      pids.map((id) => sql`${id}::uuid`),
      sql`, `,
    );
    // As saveRecord: the study's and the subjects' rows held FOR SHARE, so a lock or a full withdrawal either
    // committed before (and is seen below) or waits for this write.
    await tx.execute(
      sql`SELECT 1 FROM studies s JOIN participants p ON p.study_id = s.id
          WHERE s.id = ${study.id} AND p.id IN (${idList}) FOR SHARE OF s, p`,
    );
    const active = await tx
      .select({ scope: locks.scope, targetId: locks.targetId, reason: locks.reason })
      .from(locks)
      .where(and(eq(locks.studyId, study.id), isNull(locks.releasedAt)));
    const studyLock = active.find((l) => l.scope === "study");
    const subjectLocks = new Map(active.filter((l) => l.scope === "subject").map((l) => [l.targetId, l]));
    const settings = await studySettingsOf(ctx, study.id, tx);
    // Per subject: a full withdrawal (refuses any new data), and the consent gate's reason (read only for a form
    // that is not allowed before consent).
    const withdrawn = new Map<string, unknown>();
    const gates = new Map<string, string | null>();
    // The next row of each repeating form, under the same advisory lock as saveRecord takes (ADR 0026), in a fixed
    // order (no deadlock between two batches).
    const repeatKeys = [
      ...new Set(
        fresh
          .filter((c) => c.form.def.repeating)
          .map((c) => `records:${c.participant.id}:${c.form.def.code}:${c.visit}`),
      ),
    ].sort();
    if (repeatKeys.length)
      await tx.execute(
        sql`SELECT pg_advisory_xact_lock(h) FROM (SELECT hashtextextended(k, 0) AS h
            FROM (VALUES ${sql.join(
              repeatKeys.map((k) => sql`(${k})`),
              sql`, `,
            )}) AS v(k) ORDER BY 1 OFFSET 0) AS o`,
      );
    const last = new Map<string, number>();
    for (const r of rowsOf<{ participant_id: string; form_code: string; visit: string; n: number | string }>(
      await tx.execute(
        sql`SELECT participant_id, form_code, visit, max(instance) AS n FROM records
            WHERE participant_id IN (${idList}) GROUP BY 1, 2, 3`,
      ),
    ))
      last.set(`${r.participant_id}|${r.form_code}|${r.visit}`, Number(r.n));
    const inBatch = new Map<string, number>();
    const plans: Plan[] = [];
    for (const c of fresh) {
      try {
        const p = c.participant;
        const def = c.form.def;
        const lock = studyLock ?? subjectLocks.get(p.id);
        if (lock)
          throw new ServiceError(
            "locked",
            `this ${lock.scope === "study" ? "study" : "subject's casebook"} is locked (${lock.reason}); ` +
              "it cannot be edited until an authorized role unlocks it",
          );
        if (!withdrawn.has(p.id))
          withdrawn.set(
            p.id,
            await assertConsentAllowsNewData(ctx, p.id, tx).then(
              () => null,
              (err) => {
                if (!(err instanceof ServiceError)) throw err;
                return err;
              },
            ),
          );
        if (withdrawn.get(p.id)) throw withdrawn.get(p.id);
        if (!settings.formsBeforeConsent.includes(def.code)) {
          if (!gates.has(p.id))
            gates.set(p.id, consentGateReason(p.subjectCode, await consentStatus(ctx, p.id, { db: tx })));
          const gate = gates.get(p.id);
          if (gate)
            throw new ServiceError(
              "conflict",
              `${gate}: no CRF data may be recorded before a complete consent ` +
                `(form ${def.code} is not allowed before consent in ${study.code})`,
              "subject",
            );
        }
        const key = `${p.id}|${def.code}|${c.visit}`;
        let instance = 1;
        if (def.repeating) instance = (last.get(key) ?? 0) + 1;
        else if (inBatch.has(key))
          throw new ServiceError(
            "conflict",
            `subject ${p.subjectCode} has form ${def.code} at visit ${c.visit} in item ${inBatch.get(key)} ` +
              "of this batch already",
            "visit",
          );
        else if (last.has(key))
          throw new ServiceError(
            "conflict",
            `subject ${p.subjectCode} already has form ${def.code} at visit ${c.visit}; correct it instead`,
            "visit",
          );
        last.set(key, instance);
        inBatch.set(key, c.index);
        plans.push({
          candidate: c,
          participant: p,
          form: c.form,
          visit: c.visit,
          instance,
          recordId: randomUUID(),
          isNewRecord: true,
          version: 1,
          prev: null,
          reason: null,
          checked: c.checked,
        });
      } catch (err) {
        results.push(fail(c.index, err));
      }
    }
    if (plans.length === 0) return results;
    const built = await buildVersions(ctx, principal, plans, null);
    await writeSealedVersions(tx, principal, study, built);
    const events: NewAuditEvent[] = built.map((b) => ({
      action: "record.create",
      ...auditActor(principal),
      studyId: study.id,
      siteId: b.plan.participant.siteId,
      participantId: b.plan.participant.id,
      detail: auditDetail(principal, {
        record: b.plan.recordId,
        version: 1,
        form: b.plan.form.def.code,
        visit: b.plan.visit,
        ...(b.plan.form.def.repeating ? { instance: b.plan.instance } : {}),
        entry: b.entryId,
      }),
    }));
    await insertSealedEvents(tx, events);
    // Automatic queries as saveRecord opens them: soft limits confirmed at entry, and a visit date outside its
    // window (only for the visits whose date field is on the item's form: the others open none).
    const schedule = await currentSchedule(tx, study.id);
    const dated = new Set(
      (schedule && !schedule.sealMismatch ? schedule.definition.visits : [])
        .filter((v) => v.dateField)
        .map((v) => `${v.code.toUpperCase()}|${v.dateField?.form.toUpperCase()}`),
    );
    const stores: { idem: Idempotency; status: number; body: unknown }[] = [];
    for (const b of built) {
      const x = b.plan;
      const rec = { id: x.recordId, siteId: x.participant.siteId, participantId: x.participant.id, visit: x.visit };
      const queryIds = x.checked.outsideSoftLimits.length
        ? await openAutomaticQueries(
            tx,
            ctx,
            principal,
            study,
            rec,
            x.form.def,
            x.checked.outsideSoftLimits,
            x.checked.values,
          )
        : [];
      if (dated.has(`${x.visit}|${x.form.def.code}`)) {
        const w = await openWindowQuery(tx, ctx, principal, study, rec, x.form.def, x.checked.values);
        if (w) queryIds.push(w);
      }
      const record: SavedRecord = {
        id: x.recordId,
        version: 1,
        instance: x.instance,
        entry: { id: b.entryId, status: "pending" },
        ...(queryIds.length ? { queries: queryIds } : {}),
      };
      results.push({ index: x.candidate.index, status: 201, record });
      if (x.candidate.idem) stores.push({ idem: x.candidate.idem, status: 201, body: record });
    }
    await storeIdempotentMany(tx, stores);
    return results;
  });
}
