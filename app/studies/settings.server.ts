/**
 * A study's settings (ADR 0021). Each change is a new `study_settings` row with its `study.settings_changed` entry,
 * in one transaction; the highest version is in force. Today one setting: the CRF forms that may be saved before a
 * participant's consent is complete (pre-screening). By default none may.
 */
import { and, desc, eq, sql } from "drizzle-orm";
import { z } from "zod";
import { forms, sites, studySettings, users } from "../../db/schema/index.ts";
import type { DbOrTx } from "../../db/client.ts";
import type { AppContext } from "../platform/context.server.ts";
import { ServiceError } from "../platform/errors.server.ts";
import { requirePermission, type Principal } from "../platform/permissions.server.ts";
import { appendEntry } from "../log/append-entry.server.ts";
import { audit } from "../audit-trail/record-event.server.ts";
import { getStudyOrThrow } from "./studies.server.ts";

export interface StudySettings {
  version: number;
  formsBeforeConsent: string[];
  /** Enrolment targets (issue 18): for the study and per site code; null when none is set. */
  enrolmentTargets: { total: number | null; sites: Record<string, number> } | null;
  /** Issue 22 (ADR 0067): participants see the names of the staff who used their data (default: role only). */
  staffNamesToParticipants: boolean;
  changedAt: string | null;
  changedBy: string | null;
  entryId: string | null;
}

const DEFAULTS: StudySettings = {
  version: 0,
  formsBeforeConsent: [],
  enrolmentTargets: null,
  staffNamesToParticipants: false,
  changedAt: null,
  changedBy: null,
  entryId: null,
};

/** The settings in force for a study (defaults when never changed). */
export async function studySettingsOf(ctx: AppContext, studyId: string, db: DbOrTx = ctx.db): Promise<StudySettings> {
  const [row] = await db
    .select({ s: studySettings, by: users.fullName })
    .from(studySettings)
    .leftJoin(users, eq(users.id, studySettings.changedBy))
    .where(eq(studySettings.studyId, studyId))
    .orderBy(desc(studySettings.version))
    .limit(1);
  if (!row) return DEFAULTS;
  return {
    version: row.s.version,
    formsBeforeConsent: row.s.formsBeforeConsent,
    enrolmentTargets: row.s.enrolmentTargets ?? null,
    staffNamesToParticipants: row.s.staffNamesToParticipants,
    changedAt: row.s.changedAt.toISOString(),
    changedBy: row.by ?? (row.s.changedBy ? row.s.changedBy : "operator (CLI)"),
    entryId: row.s.entryId,
  };
}

/** Form codes as typed: a list, or one string "A, B" (the CLI's CODE[,CODE] and the page's text box). */
export const FormsBeforeConsentInput = z.object({
  formsBeforeConsent: z.union([z.string().max(2000), z.array(z.string().max(64)).max(50)], {
    error: "forms before consent: give form codes separated by commas (or nothing to allow none)",
  }),
});

/** Set the forms allowed before consent (study administrators; the operator's CLI acts as one). */
export async function setFormsBeforeConsent(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  input: unknown,
): Promise<StudySettings> {
  const r = FormsBeforeConsentInput.safeParse(input);
  if (!r.success) throw new ServiceError("invalid", r.error.issues[0].message, "formsBeforeConsent");
  const study = await getStudyOrThrow(ctx, studyCode);
  requirePermission(principal, "study.manage", { studyId: study.id });
  const raw =
    typeof r.data.formsBeforeConsent === "string" ? r.data.formsBeforeConsent.split(",") : r.data.formsBeforeConsent;
  const codes = [...new Set(raw.map((c) => c.trim().toUpperCase()).filter((c) => c.length > 0))].sort();
  if (codes.length > 50)
    throw new ServiceError("invalid", "forms before consent: at most 50 forms", "formsBeforeConsent");
  const known = new Set(
    (
      await ctx.db
        .selectDistinct({ code: forms.code })
        .from(forms)
        .where(and(eq(forms.studyId, study.id), eq(forms.status, "approved")))
    ).map((f) => f.code),
  );
  const unknown = codes.filter((c) => !known.has(c));
  if (unknown.length) {
    const are = unknown.length > 1 ? "are not approved forms" : "is not an approved form";
    const approved = known.size ? `approved: ${[...known].sort().join(", ")}` : "it has no approved form";
    throw new ServiceError(
      "invalid",
      `forms before consent: ${unknown.join(", ")} ${are} of ${study.code} (${approved})`,
      "formsBeforeConsent",
    );
  }
  return ctx.db.transaction(async (tx) => {
    // Serialize changes of one study's settings (and hold back record saves that read them: they take it FOR SHARE).
    await tx.execute(sql`SELECT 1 FROM studies WHERE id = ${study.id} FOR UPDATE`);
    const cur = await studySettingsOf(ctx, study.id, tx);
    const version = cur.version + 1;
    const e = await appendEntry(tx, ctx.crypto, study, "study.settings_changed", {
      version,
      formsBeforeConsent: codes,
      enrolmentTargets: cur.enrolmentTargets,
      staffNamesToParticipants: cur.staffNamesToParticipants,
      actor: principal.userId,
    });
    await tx.insert(studySettings).values({
      studyId: study.id,
      version,
      formsBeforeConsent: codes,
      enrolmentTargets: cur.enrolmentTargets,
      staffNamesToParticipants: cur.staffNamesToParticipants,
      changedBy: principal.userId,
      changedAt: new Date(),
      entryId: e.id,
    });
    await audit(tx, {
      action: "study.settings_changed",
      actorUserId: principal.userId,
      actorLabel: principal.label,
      studyId: study.id,
      detail: { version, formsBeforeConsent: codes, previous: cur.formsBeforeConsent, entry: e.id },
    });
    return studySettingsOf(ctx, study.id, tx);
  });
}

const count = (what: string) =>
  z.coerce
    .number({ error: `${what}: give a whole number` })
    .int(`${what}: give a whole number`)
    .min(0, `${what}: give a number of 0 or more`)
    .max(10_000_000, `${what}: at most 10,000,000`);

/** Enrolment targets as given: the study's total (blank for none) and a number per site code (blank for none). */
export const EnrolmentTargetsInput = z.object({
  total: z.union([z.literal("").transform(() => null), z.null(), count("total target")]).optional(),
  sites: z.record(z.string().max(64), z.union([z.literal(""), z.null(), count("site target")])).optional(),
});

/** Set the enrolment targets (study administrators; the operator's CLI acts as one). forms before consent stay. */
export async function setEnrolmentTargets(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  input: unknown,
): Promise<StudySettings> {
  const r = EnrolmentTargetsInput.safeParse(input);
  if (!r.success) {
    const issue = r.error.issues[0];
    const field = issue.path[0] === "sites" && issue.path[1] ? `sites.${String(issue.path[1])}` : "total";
    const message =
      issue.path[0] === "sites" && issue.path[1] ? `site ${String(issue.path[1])}: ${issue.message}` : issue.message;
    throw new ServiceError("invalid", message, field);
  }
  const study = await getStudyOrThrow(ctx, studyCode);
  requirePermission(principal, "study.manage", { studyId: study.id });
  const known = new Set(
    (await ctx.db.select({ code: sites.code }).from(sites).where(eq(sites.studyId, study.id))).map((s) => s.code),
  );
  const siteTargets: Record<string, number> = {};
  for (const [raw, n] of Object.entries(r.data.sites ?? {})) {
    const code = raw.trim().toUpperCase();
    if (!known.has(code))
      throw new ServiceError(
        "invalid",
        `site target: ${code} is not a site of ${study.code} (sites: ${[...known].sort().join(", ")})`,
        `sites.${code}`,
      );
    if (n !== null && n !== "") siteTargets[code] = n;
  }
  const total = r.data.total ?? null;
  const targets =
    total === null && Object.keys(siteTargets).length === 0
      ? null
      : { total, sites: Object.fromEntries(Object.entries(siteTargets).sort(([a], [b]) => a.localeCompare(b))) };
  return ctx.db.transaction(async (tx) => {
    await tx.execute(sql`SELECT 1 FROM studies WHERE id = ${study.id} FOR UPDATE`);
    const cur = await studySettingsOf(ctx, study.id, tx);
    const version = cur.version + 1;
    const e = await appendEntry(tx, ctx.crypto, study, "study.settings_changed", {
      version,
      formsBeforeConsent: cur.formsBeforeConsent,
      enrolmentTargets: targets,
      staffNamesToParticipants: cur.staffNamesToParticipants,
      actor: principal.userId,
    });
    await tx.insert(studySettings).values({
      studyId: study.id,
      version,
      formsBeforeConsent: cur.formsBeforeConsent,
      enrolmentTargets: targets,
      staffNamesToParticipants: cur.staffNamesToParticipants,
      changedBy: principal.userId,
      changedAt: new Date(),
      entryId: e.id,
    });
    await audit(tx, {
      action: "study.settings_changed",
      actorUserId: principal.userId,
      actorLabel: principal.label,
      studyId: study.id,
      detail: { version, enrolmentTargets: targets, previous: cur.enrolmentTargets, entry: e.id },
    });
    return studySettingsOf(ctx, study.id, tx);
  });
}

/**
 * Whether participants see the names of the staff who used their data (ADR 0067; default: organisation and role
 * only). Study administrators; the other settings stay.
 */
export async function setStaffNamesToParticipants(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  input: unknown,
): Promise<StudySettings> {
  const r = z
    .object({
      staffNamesToParticipants: z.union([z.boolean(), z.enum(["on", "off", "true", "false"])], {
        error: "staff names to participants: choose show or do not show",
      }),
    })
    .safeParse(input);
  if (!r.success) throw new ServiceError("invalid", r.error.issues[0].message, "staffNamesToParticipants");
  const show =
    r.data.staffNamesToParticipants === true || ["on", "true"].includes(String(r.data.staffNamesToParticipants));
  const study = await getStudyOrThrow(ctx, studyCode);
  requirePermission(principal, "study.manage", { studyId: study.id });
  return ctx.db.transaction(async (tx) => {
    await tx.execute(sql`SELECT 1 FROM studies WHERE id = ${study.id} FOR UPDATE`);
    const cur = await studySettingsOf(ctx, study.id, tx);
    const version = cur.version + 1;
    const e = await appendEntry(tx, ctx.crypto, study, "study.settings_changed", {
      version,
      formsBeforeConsent: cur.formsBeforeConsent,
      enrolmentTargets: cur.enrolmentTargets,
      staffNamesToParticipants: show,
      actor: principal.userId,
    });
    await tx.insert(studySettings).values({
      studyId: study.id,
      version,
      formsBeforeConsent: cur.formsBeforeConsent,
      enrolmentTargets: cur.enrolmentTargets,
      staffNamesToParticipants: show,
      changedBy: principal.userId,
      changedAt: new Date(),
      entryId: e.id,
    });
    await audit(tx, {
      action: "study.settings_changed",
      actorUserId: principal.userId,
      actorLabel: principal.label,
      studyId: study.id,
      detail: { version, staffNamesToParticipants: show, previous: cur.staffNamesToParticipants, entry: e.id },
    });
    return studySettingsOf(ctx, study.id, tx);
  });
}
