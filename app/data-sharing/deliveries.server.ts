/**
 * Deliveries of approved data-use requests (issue 22, ADR 0070). The data access committee makes a delivery; in ONE
 * transaction at REPEATABLE READ (one snapshot: a choice changed while it runs applies to the next delivery) it reads
 * who may be delivered for the purpose (eligibilityForPurpose), then the current values of the requested fields of
 * those participants' records first entered in the period, pseudonymises them with a random key of the delivery's own
 * ("P-" + the first 10 hex digits of HMAC-SHA-256(key, participant id): two deliveries cannot be linked), writes the
 * manifest (whose SHA-256 alone is sealed: no subject codes, sites, seqs, leaf hashes, entry ids or bundles leave),
 * packs a ZIP (manifest.json, data.csv, README.txt), keeps the key only encrypted under DATA_KEY, records who the
 * delivery holds (membersHash in the entry) and the export's audit event. Nobody allowed: refused with the reason.
 * The researcher who asked downloads the package until it expires (each download an audit event), then 410.
 */
import { createHmac, randomBytes, randomUUID } from "node:crypto";
import { and, asc, eq, gte, inArray, lt } from "drizzle-orm";
import { unzipSync, zipSync } from "fflate";
import { toHex, utf8 } from "../../anchoring/log/bytes.ts";
import { canonicalize } from "../../anchoring/log/canonical.ts";
import type { DbOrTx } from "../../db/client.ts";
import {
  consentChoiceChanges,
  consentDocuments,
  consentSignatures,
  consentWithdrawals,
  dataUseDeliveries,
  dataUseDeliveryParticipants,
  ledgerEntries,
  participants,
  records,
  recordVersions,
} from "../../db/schema/index.ts";
import { audit } from "../audit-trail/record-event.server.ts";
import { parseConsentDocument } from "../consent/consent-document.ts";
import { appendEntry } from "../log/append-entry.server.ts";
import { notifyUser } from "../notifications/notify.server.ts";
import { encryptField } from "../participants/personal-data.server.ts";
import { auditActor } from "../platform/attribution.ts";
import type { AppContext } from "../platform/context.server.ts";
import { csvCell, csvValue } from "../platform/csv.ts";
import { ServiceError } from "../platform/errors.server.ts";
import type { Principal } from "../platform/permissions.server.ts";
import { studySealMismatches } from "../records/seal-match.server.ts";
import { getStudyOrThrow } from "../studies/studies.server.ts";
import { eligibilityForPurpose } from "./choices.server.ts";
import { membersHash } from "./members-hash.ts";
import { isPurposeCode, PURPOSE_SYSTEM, PURPOSES, type PurposeCode } from "./purposes.ts";
import { holdsRole, requestDetail, requestableFields } from "./requests.server.ts";

const DAY = 86_400_000;
/** The rule a delivery honours, as its manifest and README state it. */
export const CHOICES_RULE = "participants who said yes and have not withdrawn";

/** "P-" and the first 10 hex digits (upper case) of HMAC-SHA-256(key, participant id). */
export function pseudonymOf(key: Uint8Array, participantId: string): string {
  return `P-${createHmac("sha256", key).update(participantId, "utf8").digest("hex").slice(0, 10).toUpperCase()}`;
}

export interface DeliveryManifest {
  format: "trialseal-data-use-delivery/1";
  delivery: string;
  study: string;
  purpose: { code: string; system: string; display: string; words: string };
  fields: string[];
  period: { from: string; to: string; of: string };
  choicesHonoured: { items: string[]; rule: string };
  counts: {
    included: number;
    agreedWithoutDataInPeriod: number;
    excluded: { declined: number; withdrawn: number; notAsked: number };
  };
  files: { "data.csv": { sha256: string; rows: number } };
  pseudonyms: string;
  createdAt: string;
  expiresAt: string;
}

export interface DeliveryHooks {
  /** Test hook: runs inside the delivery's transaction right after eligibility was read (the race test). */
  afterEligibility?: () => Promise<void>;
  now?: Date;
}

interface Row {
  recordId: string;
  participantId: string;
  form: string;
  visit: string;
  instance: number;
  /** The date the record was first entered (UTC), column entered_on. */
  enteredOn: string;
  values: Record<string, unknown>;
}

/** Current values of the requested fields of the allowed participants' records first entered in the period. */
async function readRows(
  db: DbOrTx,
  studyId: string,
  allowed: string[],
  fields: string[],
  period: { from: string; to: string },
): Promise<Row[]> {
  const formsAsked = [...new Set(fields.map((f) => f.slice(0, f.lastIndexOf("."))))];
  if (!allowed.length || !formsAsked.length) return [];
  const from = new Date(`${period.from}T00:00:00.000Z`);
  const to = new Date(new Date(`${period.to}T00:00:00.000Z`).getTime() + DAY);
  const out: Row[] = [];
  for (let i = 0; i < allowed.length; i += 1000) {
    const rows = await db
      .select({
        recordId: records.id,
        participantId: records.participantId,
        form: records.formCode,
        visit: records.visit,
        instance: records.instance,
        createdAt: records.createdAt,
        data: recordVersions.dataText,
        calculated: recordVersions.calculatedText,
      })
      .from(records)
      .innerJoin(
        recordVersions,
        and(eq(recordVersions.recordId, records.id), eq(recordVersions.version, records.currentVersion)),
      )
      .where(
        and(
          eq(records.studyId, studyId),
          inArray(records.participantId, allowed.slice(i, i + 1000)),
          inArray(records.formCode, formsAsked),
          gte(records.createdAt, from),
          lt(records.createdAt, to),
        ),
      );
    for (const r of rows)
      out.push({
        recordId: r.recordId,
        participantId: r.participantId,
        form: r.form,
        visit: r.visit,
        instance: r.instance,
        enteredOn: r.createdAt.toISOString().slice(0, 10),
        values: { ...(JSON.parse(r.data) as Record<string, unknown>), ...JSON.parse(r.calculated ?? "{}") },
      });
  }
  return out;
}

/** The keys of the optional items of the study's approved consent documents that govern the purpose, sorted. */
async function itemsGoverning(db: DbOrTx, studyId: string, purpose: PurposeCode): Promise<string[]> {
  const docs = await db
    .select({ body: consentDocuments.bodyMarkdown })
    .from(consentDocuments)
    .where(and(eq(consentDocuments.studyId, studyId), eq(consentDocuments.status, "approved")));
  const keys = new Set<string>();
  for (const d of docs) {
    const parsed = parseConsentDocument(d.body);
    if (!parsed.ok) continue;
    for (const section of parsed.doc.sections)
      for (const item of section.optional) if (item.purposes.includes(purpose)) keys.add(item.key);
  }
  return [...keys].sort();
}

/** data.csv: one row per record, participant by pseudonym, one column per requested field (FORM.field). */
function dataCsv(rows: (Row & { pseudonym: string })[], fields: string[]): string {
  const head = ["participant", "form", "visit", "instance", "entered_on", ...fields];
  const lines = rows.map((r) =>
    [
      csvCell(r.pseudonym),
      csvCell(r.form),
      csvCell(r.visit),
      csvValue(r.instance),
      csvCell(r.enteredOn),
      ...fields.map((f) => {
        const dot = f.lastIndexOf(".");
        if (f.slice(0, dot) !== r.form) return "";
        const v = r.values[f.slice(dot + 1)];
        return Array.isArray(v) ? csvCell(JSON.stringify(v)) : csvValue((v ?? null) as never);
      }),
    ].join(","),
  );
  return `${[head.map(csvCell).join(","), ...lines].join("\r\n")}\r\n`;
}

function readme(m: DeliveryManifest, manifestSha256: string): string {
  const ex = m.counts.excluded;
  return [
    `Data-use delivery ${m.delivery} of study ${m.study}`,
    "",
    `Purpose: ${m.purpose.words} (${m.purpose.code}, ${m.purpose.display}).`,
    `Fields: ${m.fields.join(", ")}.`,
    `Period: records first entered from ${m.period.from} to ${m.period.to} (UTC dates).`,
    "",
    `Whose data: only ${CHOICES_RULE} (consent items: ${m.choicesHonoured.items.join(", ") || "none"}).`,
    `Included: ${m.counts.included} participants. Left out: ${ex.declined} said no, ${ex.withdrawn} withdrew, ` +
      `${ex.notAsked} were never asked about this purpose` +
      (m.counts.agreedWithoutDataInPeriod
        ? `; ${m.counts.agreedWithoutDataInPeriod} agreed but have no data in the period.`
        : "."),
    "",
    "Participants are named by pseudonyms (P-...) made with a key of this delivery's own: the same person has a",
    "different pseudonym in any other delivery, and no subject code, site or ledger reference is included.",
    "Do not try to identify anyone.",
    "",
    "data.csv: one row per form filled, current values; entered_on is the date the record was first entered (UTC),",
    "not the date of the visit or of collection. Its SHA-256 is in manifest.json; the SHA-256 of",
    `manifest.json (${manifestSha256}) is sealed in the study's ledger (data_use.delivered).`,
    `Available until ${m.expiresAt}.`,
    "",
  ].join("\n");
}

/** A choice or record row that does not match its sealed entry: the subject code and the table, never a value. */
export interface SealProblem {
  subject: string;
  table: "consent_signatures" | "consent_withdrawals" | "consent_choice_changes" | "record_versions";
}

const payloadOf = (text: string): Record<string, unknown> => {
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch {
    return {};
  }
};
const hex = (v: Uint8Array | string) =>
  typeof v === "string" ? (v.startsWith("\\x") ? v.slice(2) : v).toLowerCase() : toHex(v);
/** The entry's payload text hashes to its payload hash (an altered payload text fails). */
function payloadIntact(ctx: AppContext, text: string, hash: Uint8Array | string): boolean {
  try {
    return toHex(ctx.crypto.sha256(utf8(canonicalize(JSON.parse(text))))) === hex(hash);
  } catch {
    return false;
  }
}
const same = (a: unknown, b: unknown) => {
  try {
    return canonicalize(a ?? null) === canonicalize(b ?? null);
  } catch {
    return false;
  }
};

/**
 * The rows a delivery's choices come from (consent_signatures' options, consent_withdrawals, consent_choice_changes)
 * against their sealed entries, as the integrity audit compares them, read in `db`'s snapshot: a row changed behind
 * the log, a row without its entry, and an entry of these kinds whose row is gone are each named (subject, table).
 */
export async function choiceSealProblems(ctx: AppContext, db: DbOrTx, studyId: string): Promise<SealProblem[]> {
  const out: SealProblem[] = [];
  const entryCols = { text: ledgerEntries.payloadText, hash: ledgerEntries.payloadHash, kind: ledgerEntries.kind };
  const sigs = await db
    .select({ s: consentSignatures, subject: participants.subjectCode, e: entryCols })
    .from(consentSignatures)
    .innerJoin(participants, eq(participants.id, consentSignatures.participantId))
    .leftJoin(ledgerEntries, eq(ledgerEntries.id, consentSignatures.entryId))
    .where(eq(consentSignatures.studyId, studyId));
  for (const { s, subject, e } of sigs) {
    const p = e ? payloadOf(e.text) : {};
    const ok =
      e?.kind === "consent.signed" &&
      payloadIntact(ctx, e.text, e.hash) &&
      p.signature === s.id &&
      p.subject === subject &&
      same(s.options, p.options) &&
      (s.countersigns ?? null) === (p.countersigns ?? null);
    if (!ok) out.push({ subject, table: "consent_signatures" });
  }
  const wds = await db
    .select({ w: consentWithdrawals, subject: participants.subjectCode, e: entryCols })
    .from(consentWithdrawals)
    .innerJoin(participants, eq(participants.id, consentWithdrawals.participantId))
    .leftJoin(ledgerEntries, eq(ledgerEntries.id, consentWithdrawals.entryId))
    .where(eq(consentWithdrawals.studyId, studyId));
  for (const { w, subject, e } of wds) {
    const p = e ? payloadOf(e.text) : {};
    const allows = (w.allows ?? {}) as { optionalWithdrawn?: string[] };
    const ok =
      e?.kind === "consent.withdrawn" &&
      payloadIntact(ctx, e.text, e.hash) &&
      p.withdrawal === w.id &&
      p.subject === subject &&
      p.scope === w.scope &&
      same(allows.optionalWithdrawn ?? [], p.optionalWithdrawn ?? []);
    if (!ok) out.push({ subject, table: "consent_withdrawals" });
  }
  const changes = await db
    .select({ c: consentChoiceChanges, subject: participants.subjectCode, e: entryCols })
    .from(consentChoiceChanges)
    .innerJoin(participants, eq(participants.id, consentChoiceChanges.participantId))
    .leftJoin(ledgerEntries, eq(ledgerEntries.id, consentChoiceChanges.entryId))
    .where(eq(consentChoiceChanges.studyId, studyId));
  for (const { c, subject, e } of changes) {
    const p = e ? payloadOf(e.text) : {};
    const ok =
      e?.kind === "consent.choices_changed" &&
      payloadIntact(ctx, e.text, e.hash) &&
      p.change === c.id &&
      p.subject === subject &&
      same(c.choices, p.choices);
    if (!ok) out.push({ subject, table: "consent_choice_changes" });
  }
  // Entries whose row is gone (a withdrawal or a "no" deleted behind the log would let data leave).
  const KINDS = {
    "consent.signed": { table: "consent_signatures", id: "signature", rows: sigs.map((x) => x.s.id) },
    "consent.withdrawn": { table: "consent_withdrawals", id: "withdrawal", rows: wds.map((x) => x.w.id) },
    "consent.choices_changed": { table: "consent_choice_changes", id: "change", rows: changes.map((x) => x.c.id) },
  } as const;
  const entries = await db
    .select({ kind: ledgerEntries.kind, text: ledgerEntries.payloadText })
    .from(ledgerEntries)
    .where(and(eq(ledgerEntries.studyId, studyId), inArray(ledgerEntries.kind, Object.keys(KINDS))));
  const present = Object.fromEntries(Object.entries(KINDS).map(([k, v]) => [k, new Set<string>(v.rows)]));
  for (const e of entries) {
    const k = KINDS[e.kind as keyof typeof KINDS];
    const p = payloadOf(e.text);
    if (!present[e.kind].has(String(p[k.id]))) out.push({ subject: String(p.subject ?? "?"), table: k.table });
  }
  const seen = new Set<string>();
  return out
    .filter((x) => !seen.has(`${x.subject}/${x.table}`) && !!seen.add(`${x.subject}/${x.table}`))
    .sort((a, b) => a.subject.localeCompare(b.subject) || a.table.localeCompare(b.table));
}

/** "Nothing was delivered: the rows of subject S (table), ... do not match their sealed entries; ..." */
function sealRefusal(problems: SealProblem[]): DeliveryRefused {
  const named = problems
    .slice(0, 10)
    .map((p) => `subject ${p.subject} (${p.table})`)
    .join(", ");
  const more = problems.length > 10 ? ` and ${problems.length - 10} more` : "";
  return new DeliveryRefused(
    "seal_mismatch",
    `Nothing was delivered: the rows of ${named}${more} do not match their sealed entries. ` +
      "Run the integrity audit (trialseal audit) and resolve it before making a delivery.",
  );
}

/** Why a delivery was refused, as the audit event's detail.code (no free text). */
export type DeliveryRefusalCode =
  | "no_participants"
  | "purpose_not_asked"
  | "nobody_agreed"
  | "no_data_in_period"
  | "field_not_deliverable"
  | "seal_mismatch";

class DeliveryRefused extends ServiceError {
  constructor(
    readonly refusal: DeliveryRefusalCode,
    message: string,
  ) {
    super("conflict", message, "delivery");
  }
}

/**
 * Make a delivery for an approved request (a signed-in member of the data access committee). Refused (409) when the
 * request is not approved, when nobody may be delivered for the purpose or nobody who may has data in the period (the
 * error says why: the eligibility's reason), or when a choice row or a delivered record version does not match its
 * sealed entry (the subject and table named; nothing is delivered). Each refusal of an approved request is an audit
 * event `data_use.delivery_refused` with the reason's code.
 */
export async function makeDelivery(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  requestId: string,
  hooks: DeliveryHooks = {},
): Promise<{ id: string; entryId: string; manifestSha256: string; participantCount: number; expiresAt: string }> {
  const study = await getStudyOrThrow(ctx, studyCode);
  if (!holdsRole(principal, study.id, "data_access_committee"))
    throw new ServiceError("forbidden", "not permitted: data_use.decide (only the study's data access committee)");
  const { request, decision } = await requestDetail(ctx.db, principal, study, requestId);
  if (decision?.outcome !== "approved" || !decision.expiresInDays)
    throw new ServiceError(
      "conflict",
      decision ? "this request was declined: nothing is delivered" : "decide the request before making a delivery",
      "delivery",
    );
  if (!isPurposeCode(request.purpose)) throw new ServiceError("invalid", `unknown purpose ${request.purpose}`);
  const purpose: PurposeCode = request.purpose;
  const expiresInDays = decision.expiresInDays;
  try {
    return await deliverInOneSnapshot(ctx, principal, study, request, purpose, expiresInDays, hooks);
  } catch (err) {
    if (err instanceof DeliveryRefused)
      await audit(ctx.db, {
        action: "data_use.delivery_refused",
        ...auditActor(principal),
        studyId: study.id,
        detail: { request: request.id, purpose, code: err.refusal },
      });
    throw err;
  }
}

async function deliverInOneSnapshot(
  ctx: AppContext,
  principal: Principal,
  study: Awaited<ReturnType<typeof getStudyOrThrow>>,
  request: Awaited<ReturnType<typeof requestDetail>>["request"],
  purpose: PurposeCode,
  expiresInDays: number,
  hooks: DeliveryHooks,
) {
  const userId = principal.userId as string;
  return ctx.db.transaction(
    async (tx) => {
      const eligibility = await eligibilityForPurpose(ctx, study.id, purpose, tx);
      await hooks.afterEligibility?.();
      if (!eligibility.allowed.length)
        throw new DeliveryRefused(
          eligibility.withdrawn.length + eligibility.declined.length + eligibility.notAsked.length === 0
            ? "no_participants"
            : eligibility.declined.length === 0 && eligibility.notAsked.length > 0
              ? "purpose_not_asked"
              : "nobody_agreed",
          `Nothing can be delivered: ${eligibility.reason ?? "nobody agreed"}`,
        );
      // Who may be delivered comes from these rows: each must match its sealed entry (ADR 0070).
      const choiceProblems = await choiceSealProblems(ctx, tx, study.id);
      if (choiceProblems.length) throw sealRefusal(choiceProblems);
      // The fields asked for must still be deliverable now (a form version approved since may class one as an
      // identifier or free text; attack: such a field was delivered because only the request's time was checked).
      const deliverable = await requestableFields(tx, study.id);
      const notDeliverable = request.fields.filter((f) => !deliverable.get(f)?.deliverable);
      if (notDeliverable.length)
        throw new DeliveryRefused(
          "field_not_deliverable",
          `Nothing can be delivered: ${notDeliverable.join(", ")} ${notDeliverable.length === 1 ? "is" : "are"} ` +
            "now an identifier or free text in an approved form version; ask for a request without them",
        );
      const period = { from: request.periodFrom, to: request.periodTo };
      const rows = await readRows(tx, study.id, eligibility.allowed, request.fields, period);
      const included = [...new Set(rows.map((r) => r.participantId))];
      if (!included.length)
        throw new DeliveryRefused(
          "no_data_in_period",
          `Nothing can be delivered: none of the ${eligibility.allowed.length} participants who agreed to ` +
            `${PURPOSES[purpose].words} has data of these forms first entered from ${period.from} to ${period.to}`,
        );
      // Every version of the records delivered, against its record.saved entry (as exportStudy does).
      const recordProblems = await studySealMismatches(
        { ...ctx, db: tx },
        study.id,
        rows.map((r) => r.recordId),
      );
      if (recordProblems.length)
        throw sealRefusal(recordProblems.map((m) => ({ subject: m.subject, table: "record_versions" as const })));
      // A key of this delivery's own (re-drawn in the unlikely case two pseudonyms collide).
      let key = randomBytes(32);
      let pseudonyms = new Map(included.map((id) => [id, pseudonymOf(key, id)]));
      while (new Set(pseudonyms.values()).size !== included.length) {
        key = randomBytes(32);
        pseudonyms = new Map(included.map((id) => [id, pseudonymOf(key, id)]));
      }
      const ordered = rows
        .map((r) => ({ ...r, pseudonym: pseudonyms.get(r.participantId) as string }))
        .sort(
          (a, b) =>
            a.pseudonym.localeCompare(b.pseudonym) ||
            a.form.localeCompare(b.form) ||
            a.visit.localeCompare(b.visit) ||
            a.instance - b.instance,
        );
      const csv = dataCsv(ordered, request.fields);
      const items = await itemsGoverning(tx, study.id, purpose);
      const id = randomUUID();
      const createdAt = hooks.now ?? new Date();
      const expiresAt = new Date(createdAt.getTime() + expiresInDays * DAY);
      const manifest: DeliveryManifest = {
        format: "trialseal-data-use-delivery/1",
        delivery: id,
        study: study.code,
        purpose: {
          code: purpose,
          system: PURPOSE_SYSTEM,
          display: PURPOSES[purpose].display,
          words: PURPOSES[purpose].words,
        },
        fields: request.fields,
        period: { ...period, of: "the date each record was first entered (UTC)" },
        choicesHonoured: { items, rule: CHOICES_RULE },
        counts: {
          included: included.length,
          agreedWithoutDataInPeriod: eligibility.allowed.length - included.length,
          excluded: {
            declined: eligibility.declined.length,
            withdrawn: eligibility.withdrawn.length,
            notAsked: eligibility.notAsked.length,
          },
        },
        files: { "data.csv": { sha256: toHex(ctx.crypto.sha256(utf8(csv))), rows: ordered.length } },
        pseudonyms: "P- and the first 10 hex digits of HMAC-SHA-256 under a random key of this delivery only",
        createdAt: createdAt.toISOString(),
        expiresAt: expiresAt.toISOString(),
      };
      const manifestText = `${JSON.stringify(manifest, null, 2)}\n`;
      const manifestSha = ctx.crypto.sha256(utf8(manifestText));
      const content = zipSync(
        {
          "manifest.json": utf8(manifestText),
          "data.csv": utf8(csv),
          "README.txt": utf8(readme(manifest, toHex(manifestSha))),
        },
        { level: 6, mtime: createdAt },
      );
      const excluded = manifest.counts.excluded;
      const e = await appendEntry(tx, ctx.crypto, study, "data_use.delivered", (salt) => ({
        delivery: id,
        request: request.id,
        purpose,
        manifestSha256: toHex(manifestSha),
        participants: included.length,
        excluded,
        membersHash: membersHash(ctx.crypto, salt, included),
        expiresAt: expiresAt.toISOString(),
        actor: userId,
      }));
      await tx.insert(dataUseDeliveries).values({
        id,
        studyId: study.id,
        requestId: request.id,
        manifest: manifestText,
        manifestSha256: manifestSha,
        content,
        pseudonymKeyEnc: encryptField(
          ctx.env.dataKey,
          Buffer.from(key).toString("base64"),
          `data_use_deliveries.pseudonym_key:${id}`,
        ),
        participantCount: included.length,
        excluded,
        expiresAt,
        actorUserId: userId,
        createdAt,
        entryId: e.id,
      });
      const sorted = [...included].sort();
      for (let i = 0; i < sorted.length; i += 1000)
        await tx
          .insert(dataUseDeliveryParticipants)
          .values(
            sorted.slice(i, i + 1000).map((participantId) => ({ deliveryId: id, studyId: study.id, participantId })),
          );
      await audit(tx, {
        action: "export.data_use",
        ...auditActor(principal),
        studyId: study.id,
        detail: {
          delivery: id,
          request: request.id,
          purpose,
          manifestSha256: toHex(manifestSha),
          participants: sorted,
          entry: e.id,
        },
      });
      await notifyUser(tx, request.requester.id, {
        studyId: study.id,
        kind: "data_use_delivered",
        subject: `${study.code}: your data-use delivery is ready`,
        body: [
          `A delivery for your request for ${request.purposeWords} is ready on the request's page.`,
          `It holds the data of ${included.length} participants and can be downloaded until ` +
            `${expiresAt.toISOString()}.`,
        ].join("\n"),
      });
      return {
        id,
        entryId: e.id,
        manifestSha256: toHex(manifestSha),
        participantCount: included.length,
        expiresAt: expiresAt.toISOString(),
      };
    },
    { isolationLevel: "repeatable read" },
  );
}

/** A delivery's row as verifyDeliveryPackage needs it (select these columns of data_use_deliveries). */
export interface DeliveryPackageRow {
  id: string;
  entryId: string;
  content: Uint8Array;
  manifestSha256: Uint8Array;
}

/**
 * Is a delivery's stored package the one sealed? Unzips the package: manifest.json's SHA-256 must be the sealed
 * entry's manifestSha256 (data_use.delivered) and the row's, data.csv's SHA-256 and row count the manifest's. Returns
 * what differs in words (no values), or null when the package matches. Reads the entry through `db`.
 */
export async function verifyDeliveryPackage(
  ctx: AppContext,
  row: DeliveryPackageRow,
  db: DbOrTx = ctx.db,
): Promise<string | null> {
  const [e] = await db
    .select({ kind: ledgerEntries.kind, text: ledgerEntries.payloadText, hash: ledgerEntries.payloadHash })
    .from(ledgerEntries)
    .where(eq(ledgerEntries.id, row.entryId));
  if (e?.kind !== "data_use.delivered" || !payloadIntact(ctx, e.text, e.hash))
    return `delivery ${row.id}: its sealed entry (data_use.delivered) is missing or altered`;
  const sealed = payloadOf(e.text);
  if (sealed.delivery !== row.id) return `delivery ${row.id}: its sealed entry names another delivery`;
  let files: Record<string, Uint8Array>;
  try {
    files = unzipSync(row.content);
  } catch {
    return `delivery ${row.id}: the stored package is not a readable ZIP`;
  }
  const manifestBytes = files["manifest.json"];
  const csv = files["data.csv"];
  if (!manifestBytes || !csv) return `delivery ${row.id}: the package lacks manifest.json or data.csv`;
  const manifestSha = toHex(ctx.crypto.sha256(manifestBytes));
  if (manifestSha !== sealed.manifestSha256 || manifestSha !== toHex(row.manifestSha256))
    return `delivery ${row.id}: manifest.json does not match the manifest SHA-256 sealed in its entry`;
  let listed: { sha256?: string; rows?: number } | undefined;
  try {
    listed = (JSON.parse(new TextDecoder().decode(manifestBytes)) as DeliveryManifest).files?.["data.csv"];
  } catch {
    return `delivery ${row.id}: manifest.json is not readable`;
  }
  if (!listed || toHex(ctx.crypto.sha256(csv)) !== listed.sha256)
    return `delivery ${row.id}: data.csv does not match the SHA-256 in manifest.json`;
  return null;
}

/**
 * The package of a delivery, for the researcher who asked (each download an audit event). Another researcher gets
 * "not found"; after `expiresAt`, 410 with the date and what to do. Refused (409, an audit event
 * `data_use.download_refused` with the code) when the stored package does not match its sealed manifest, or when
 * anyone in it has since withdrawn or said no to the purpose (the count only: a new delivery leaves them out).
 */
export async function downloadDelivery(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  requestId: string,
  deliveryId: string,
  now = new Date(),
): Promise<{ filename: string; bytes: Uint8Array; manifestSha256: string }> {
  const study = await getStudyOrThrow(ctx, studyCode);
  if (!holdsRole(principal, study.id, "external_researcher"))
    throw new ServiceError("forbidden", "only the researcher who asked for the data downloads a delivery");
  const { request, deliveries } = await requestDetail(ctx.db, principal, study, requestId, now);
  if (request.requester.id !== principal.userId)
    throw new ServiceError("not_found", "no such data-use request in this study", "request");
  const d = deliveries.find((x) => x.id === deliveryId);
  if (!d) throw new ServiceError("not_found", "no such delivery for this request", "delivery");
  if (d.expired)
    throw new ServiceError(
      "gone",
      `This delivery expired on ${d.expiresAt.slice(0, 10)} (${d.expiresAt}) and can no longer be downloaded. ` +
        "Ask the data access committee for a new delivery.",
      "delivery",
    );
  const [row] = await ctx.db
    .select({
      id: dataUseDeliveries.id,
      entryId: dataUseDeliveries.entryId,
      content: dataUseDeliveries.content,
      manifestSha256: dataUseDeliveries.manifestSha256,
    })
    .from(dataUseDeliveries)
    .where(and(eq(dataUseDeliveries.id, d.id), eq(dataUseDeliveries.requestId, request.id)))
    .orderBy(asc(dataUseDeliveries.id));
  const refuse = async (code: "package_mismatch" | "choices_changed", message: string, extra = {}) => {
    await audit(ctx.db, {
      action: "data_use.download_refused",
      ...auditActor(principal),
      studyId: study.id,
      detail: { delivery: d.id, request: request.id, code, ...extra },
    });
    return new ServiceError("conflict", message, "delivery");
  };
  const problem = await verifyDeliveryPackage(ctx, row);
  if (problem)
    throw await refuse(
      "package_mismatch",
      `This package does not match its sealed manifest and is not served (${problem}). ` +
        "Ask the data access committee for a new delivery.",
    );
  // Data leave only while everyone in the package still allows the purpose (ADR 0070).
  const members = await ctx.db
    .select({ id: dataUseDeliveryParticipants.participantId })
    .from(dataUseDeliveryParticipants)
    .where(eq(dataUseDeliveryParticipants.deliveryId, d.id));
  const purpose = request.purpose;
  const allowed = isPurposeCode(purpose)
    ? new Set((await eligibilityForPurpose(ctx, study.id, purpose)).allowed)
    : new Set<string>();
  const changed = members.filter((m) => !allowed.has(m.id)).length;
  if (changed)
    throw await refuse(
      "choices_changed",
      `${changed} participant${changed === 1 ? "" : "s"} changed their choices since this package was made: ` +
        "ask the data access committee for a new delivery",
      { participants: changed },
    );
  await audit(ctx.db, {
    action: "data_use.downloaded",
    ...auditActor(principal),
    studyId: study.id,
    detail: { delivery: d.id, request: request.id, manifestSha256: d.manifestSha256 },
  });
  return {
    filename: `${study.code}-data-use-${d.id.slice(0, 8)}.zip`,
    bytes: row.content,
    manifestSha256: d.manifestSha256,
  };
}
