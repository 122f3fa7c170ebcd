/**
 * Data-use requests (issue 22, ADR 0068): an external researcher, a member of the study with that role only (outside
 * the study team, ADR 0069), asks for data with a purpose from the code list (purposes.ts), CRF fields (FORM.field of
 * the study's approved forms, never an identifier or free text: the package is pseudonymised, ADR 0070), a period of
 * data collection, their institution and a justification. The request row and its `data_use.requested` entry commit
 * together; the institution and justification reach the payload only as salted hashes. A researcher sees their own
 * requests only (another's is "not found"); the data access committee and data_use.view see them all.
 */
import { randomUUID } from "node:crypto";
import { and, asc, desc, eq, inArray, sql } from "drizzle-orm";
import { z } from "zod";
import { fieldClass, parseFormDefinition, xmlUnsafeCharacter } from "../../anchoring/forms/definition.ts";
import { toHex } from "../../anchoring/log/bytes.ts";
import { saltedTextHash } from "../../anchoring/log/text-hash.ts";
import type { DbOrTx } from "../../db/client.ts";
import {
  dataUseDecisions,
  dataUseDeliveries,
  dataUseRequests,
  forms,
  ledgerEntries,
  users,
} from "../../db/schema/index.ts";
import { audit } from "../audit-trail/record-event.server.ts";
import { appendEntry } from "../log/append-entry.server.ts";
import { auditActor } from "../platform/attribution.ts";
import type { AppContext } from "../platform/context.server.ts";
import { ServiceError } from "../platform/errors.server.ts";
import { can, type Principal } from "../platform/permissions.server.ts";
import { getStudyOrThrow } from "../studies/studies.server.ts";
import { eligibilityForPurpose } from "./choices.server.ts";
import { isPurposeCode, PURPOSE_CODES, purposeInWords } from "./purposes.ts";

type Study = { id: string; code: string };

/** Does the principal hold `role` in the study by a current membership of their own (not as a platform admin)? */
export function holdsRole(p: Principal, studyId: string, role: "external_researcher" | "data_access_committee") {
  return p.kind === "user" && !!p.userId && p.memberships.some((m) => m.studyId === studyId && m.role === role);
}

/** May the principal read every request of the study (the committee, data_use.view)? */
export function seesAllRequests(p: Principal, studyId: string): boolean {
  return holdsRole(p, studyId, "data_access_committee") || can(p, "data_use.view", { studyId });
}

const isoDate = (what: string) =>
  z
    .string()
    .trim()
    .regex(/^\d{4}-\d{2}-\d{2}$/, `give the ${what} as a date (YYYY-MM-DD)`)
    .refine(
      (s) => !Number.isNaN(Date.parse(`${s}T00:00:00Z`)) && new Date(`${s}T00:00:00Z`).toISOString().startsWith(s),
      {
        message: `the ${what} is not a real date`,
      },
    )
    // Year 0000 is a date to JavaScript but not to PostgreSQL (attack: a 500 with the SQL text).
    .refine((s) => s >= "1900-01-01" && s <= "2999-12-31", {
      message: `give the ${what} between 1900 and 2999`,
    });

/** Text a person typed: no control characters (PostgreSQL refuses NUL; attack: a 500 with the SQL text). */
export const typedText = (what: string) =>
  z.string().refine((s) => xmlUnsafeCharacter(s) === null, {
    message: `the ${what} holds a character that cannot be stored (a control character); remove it`,
  });

const FieldsInput = z.preprocess(
  (v) => (typeof v === "string" ? v.split(/[\s,;]+/).filter(Boolean) : v),
  z
    .array(z.string().trim().min(1))
    .min(1, "name at least one field, as FORM.field (for example VITALS.sbp)")
    .max(500, "ask for at most 500 fields"),
);

export const DataUseRequestInput = z
  .object({
    purpose: z
      .string({ error: "choose a purpose from the list" })
      .trim()
      .refine(isPurposeCode, { message: `choose a purpose from the list (${PURPOSE_CODES.join(", ")})` }),
    fields: FieldsInput,
    periodFrom: isoDate("start of the period"),
    periodTo: isoDate("end of the period"),
    institution: z
      .string({ error: "name your institution" })
      .trim()
      .min(1, "name your institution")
      .max(200, "keep the institution's name under 200 characters")
      .pipe(typedText("institution's name")),
    justification: z
      .string({ error: "say why you need these data" })
      .trim()
      .min(1, "say why you need these data")
      .max(4000, "keep the justification under 4000 characters")
      .pipe(typedText("justification")),
  })
  .refine((v) => v.periodFrom <= v.periodTo, {
    path: ["periodTo"],
    message: "the period ends before it starts",
  });

const LABEL: Record<string, string> = {
  purpose: "Purpose",
  fields: "Fields",
  periodFrom: "Period from",
  periodTo: "Period to",
  institution: "Institution",
  justification: "Justification",
};

function parse<T extends z.ZodTypeAny>(schema: T, input: unknown): z.output<T> {
  const r = schema.safeParse(input);
  if (!r.success) {
    const i = r.error.issues[0];
    const field = String(i.path[0] ?? "body");
    throw new ServiceError("invalid", `${LABEL[field] ?? field}: ${i.message}`, field);
  }
  return r.data;
}

/** The fields a researcher may ask for, for the request form: identifier and free-text fields are not deliverable. */
export async function deliverableFields(ctx: AppContext, studyId: string): Promise<{ key: string; label: string }[]> {
  return [...(await requestableFields(ctx.db, studyId)).entries()]
    .filter(([, f]) => f.deliverable)
    .map(([key, f]) => ({ key, label: f.label }));
}

/** The fields a request may name: FORM.field of every approved form version, with each field's class and label. */
export async function requestableFields(
  db: DbOrTx,
  studyId: string,
): Promise<Map<string, { form: string; field: string; label: string; deliverable: boolean }>> {
  const rows = await db
    .select({ text: forms.definitionText })
    .from(forms)
    .where(and(eq(forms.studyId, studyId), eq(forms.status, "approved")))
    .orderBy(asc(forms.code), asc(forms.version));
  const out = new Map<string, { form: string; field: string; label: string; deliverable: boolean }>();
  for (const r of rows) {
    const p = parseFormDefinition(JSON.parse(r.text));
    if (!p.ok) continue;
    for (const f of p.definition.fields) {
      const cls = f.type === "calc" ? "clear" : fieldClass(f);
      const key = `${p.definition.code}.${f.name}`;
      // Deliverable only if "clear" in EVERY approved version: values entered under a version that classed the
      // field as an identifier or free text are delivered too (attack: a field reclassified later leaked them).
      const before = out.get(key);
      out.set(key, {
        form: p.definition.code,
        field: f.name,
        label: f.label,
        deliverable: cls === "clear" && (before?.deliverable ?? true),
      });
    }
  }
  return out;
}

export interface DataUseRequestSummary {
  id: string;
  purpose: string;
  purposeWords: string;
  fields: string[];
  periodFrom: string;
  periodTo: string;
  institution: string;
  justification: string;
  requester: { id: string; name: string; email: string };
  createdAt: string;
  entryId: string;
  seq: number | null;
  state: "awaiting decision" | "approved" | "declined";
}

/**
 * Submit a request (an external researcher of the study, signed in). Every field named must exist in an approved
 * form and hold coded, numeric or date values (identifiers and free text are never delivered).
 */
export async function submitDataUseRequest(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  input: unknown,
): Promise<{ id: string; entryId: string }> {
  const study = await getStudyOrThrow(ctx, studyCode);
  if (!holdsRole(principal, study.id, "external_researcher"))
    throw new ServiceError("forbidden", "not permitted: data_use.request (only an external researcher of the study)");
  const v = parse(DataUseRequestInput, input);
  const known = await requestableFields(ctx.db, study.id);
  const fields = [...new Set(v.fields)].sort();
  for (const f of fields) {
    const k = known.get(f);
    if (!k)
      throw new ServiceError(
        "invalid",
        `Fields: ${f} is not a field of an approved form of ${study.code} (write FORM.field, for example VITALS.sbp)`,
        "fields",
      );
    if (!k.deliverable)
      throw new ServiceError(
        "invalid",
        `Fields: ${f} (${k.label}) holds identifying or free text and is never delivered; choose coded, numeric or ` +
          "date fields",
        "fields",
      );
  }
  const userId = principal.userId as string;
  const id = randomUUID();
  return ctx.db.transaction(async (tx) => {
    const e = await appendEntry(tx, ctx.crypto, study, "data_use.requested", (salt) => ({
      request: id,
      purpose: v.purpose,
      fields,
      periodFrom: v.periodFrom,
      periodTo: v.periodTo,
      institutionHash: saltedTextHash(ctx.crypto, salt, v.institution),
      justificationHash: saltedTextHash(ctx.crypto, salt, v.justification),
      actor: userId,
    }));
    await tx.insert(dataUseRequests).values({
      id,
      studyId: study.id,
      purpose: v.purpose,
      fields,
      periodFrom: v.periodFrom,
      periodTo: v.periodTo,
      institution: v.institution,
      justification: v.justification,
      actorUserId: userId,
      entryId: e.id,
    });
    await audit(tx, {
      action: "data_use.requested",
      ...auditActor(principal),
      studyId: study.id,
      detail: { request: id, purpose: v.purpose, fields: fields.length, entry: e.id },
    });
    return { id, entryId: e.id };
  });
}

async function summaries(db: DbOrTx, studyId: string, where: { requester?: string; ids?: string[] }) {
  const rows = await db
    .select({
      r: dataUseRequests,
      name: users.fullName,
      email: users.email,
      seq: ledgerEntries.seq,
      outcome: dataUseDecisions.outcome,
    })
    .from(dataUseRequests)
    .innerJoin(users, eq(users.id, dataUseRequests.actorUserId))
    .leftJoin(ledgerEntries, eq(ledgerEntries.id, dataUseRequests.entryId))
    .leftJoin(dataUseDecisions, eq(dataUseDecisions.requestId, dataUseRequests.id))
    .where(
      and(
        eq(dataUseRequests.studyId, studyId),
        where.requester ? eq(dataUseRequests.actorUserId, where.requester) : undefined,
        where.ids ? inArray(dataUseRequests.id, where.ids) : undefined,
      ),
    )
    .orderBy(desc(dataUseRequests.createdAt), asc(dataUseRequests.id));
  return rows.map(
    ({ r, name, email, seq, outcome }): DataUseRequestSummary => ({
      id: r.id,
      purpose: r.purpose,
      purposeWords: purposeInWords(r.purpose),
      fields: r.fields,
      periodFrom: r.periodFrom,
      periodTo: r.periodTo,
      institution: r.institution,
      justification: r.justification,
      requester: { id: r.actorUserId, name: name ?? "", email },
      createdAt: r.createdAt.toISOString(),
      entryId: r.entryId,
      seq: seq ?? null,
      state: outcome === "approved" ? "approved" : outcome === "declined" ? "declined" : "awaiting decision",
    }),
  );
}

/** The requests of a study the principal may see: a researcher's own, or all for the committee and data_use.view. */
export async function listDataUseRequests(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
): Promise<DataUseRequestSummary[]> {
  const study = await getStudyOrThrow(ctx, studyCode);
  if (seesAllRequests(principal, study.id)) return summaries(ctx.db, study.id, {});
  if (holdsRole(principal, study.id, "external_researcher"))
    return summaries(ctx.db, study.id, { requester: principal.userId as string });
  throw new ServiceError("forbidden", "not permitted: data_use.view");
}

export interface DeliverySummary {
  id: string;
  manifestSha256: string;
  participantCount: number;
  excluded: { declined: number; withdrawn: number; notAsked: number };
  createdAt: string;
  expiresAt: string;
  expired: boolean;
  entryId: string;
  seq: number | null;
  bytes: number;
}

export interface DataUseRequestDetail {
  request: DataUseRequestSummary;
  decision: {
    outcome: "approved" | "declined";
    reason: string;
    expiresInDays: number | null;
    decidedBy: string;
    createdAt: string;
    entryId: string;
  } | null;
  deliveries: DeliverySummary[];
}

/** How many participants allow the request's purpose now, or why none does (eligibilityForPurpose's reason). */
export interface EligibleNow {
  allowed: number;
  reason: string | null;
}

/**
 * One request with its decision and deliveries, and how many participants allow its purpose now (or why none does:
 * a purpose nobody consented to shows as an empty result with the reason before anyone asks for a delivery);
 * "not found" when it is another researcher's.
 */
export async function getDataUseRequest(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  requestId: string,
  now = new Date(),
): Promise<DataUseRequestDetail & { study: Study; eligibleNow: EligibleNow }> {
  const study = await getStudyOrThrow(ctx, studyCode);
  const detail = await requestDetail(ctx.db, principal, study, requestId, now);
  const purpose = detail.request.purpose;
  const e = isPurposeCode(purpose) ? await eligibilityForPurpose(ctx, study.id, purpose) : null;
  const eligibleNow = e
    ? { allowed: e.allowed.length, reason: e.reason }
    : { allowed: 0, reason: `the purpose ${purpose} is not on the list` };
  return { study, ...detail, eligibleNow };
}

export async function requestDetail(
  db: DbOrTx,
  principal: Principal,
  study: Study,
  requestId: string,
  now = new Date(),
): Promise<DataUseRequestDetail> {
  const all = seesAllRequests(principal, study.id);
  if (!all && !holdsRole(principal, study.id, "external_researcher"))
    throw new ServiceError("forbidden", "not permitted: data_use.view");
  const notFound = new ServiceError("not_found", "no such data-use request in this study", "request");
  if (!z.string().uuid().safeParse(requestId).success) throw notFound;
  const [request] = await summaries(db, study.id, {
    ids: [requestId],
    ...(all ? {} : { requester: principal.userId as string }),
  });
  if (!request) throw notFound;
  const [d] = await db
    .select({ d: dataUseDecisions, name: users.fullName })
    .from(dataUseDecisions)
    .innerJoin(users, eq(users.id, dataUseDecisions.actorUserId))
    .where(eq(dataUseDecisions.requestId, requestId));
  const deliveries = await db
    .select({
      id: dataUseDeliveries.id,
      sha: dataUseDeliveries.manifestSha256,
      count: dataUseDeliveries.participantCount,
      excluded: dataUseDeliveries.excluded,
      createdAt: dataUseDeliveries.createdAt,
      expiresAt: dataUseDeliveries.expiresAt,
      entryId: dataUseDeliveries.entryId,
      seq: ledgerEntries.seq,
      bytes: sql<number>`octet_length(${dataUseDeliveries.content})`,
    })
    .from(dataUseDeliveries)
    .leftJoin(ledgerEntries, eq(ledgerEntries.id, dataUseDeliveries.entryId))
    .where(eq(dataUseDeliveries.requestId, requestId))
    .orderBy(asc(dataUseDeliveries.createdAt), asc(dataUseDeliveries.id));
  return {
    request,
    decision: d
      ? {
          outcome: d.d.outcome,
          reason: d.d.reason,
          expiresInDays: d.d.expiresInDays,
          decidedBy: d.name ?? "",
          createdAt: d.d.createdAt.toISOString(),
          entryId: d.d.entryId,
        }
      : null,
    deliveries: deliveries.map((x) => ({
      id: x.id,
      manifestSha256: toHex(x.sha),
      participantCount: x.count,
      excluded: x.excluded,
      createdAt: x.createdAt.toISOString(),
      expiresAt: x.expiresAt.toISOString(),
      expired: x.expiresAt.getTime() <= now.getTime(),
      entryId: x.entryId,
      seq: x.seq ?? null,
      bytes: Number(x.bytes),
    })),
  };
}

/** May the principal open the study's data-use pages (a researcher of it, the committee, data_use.view)? */
export function mayOpenDataRequests(p: Principal, studyId: string): boolean {
  return holdsRole(p, studyId, "external_researcher") || seesAllRequests(p, studyId);
}
