/**
 * Setting a study's visit schedule (issue 18, ADR 0032): the definition is checked against its shape
 * (schedule-definition.ts) and against the study (each form approved and holding the visit, each date field a date
 * field of its form), then stored as its canonical JSON text, with its SHA-256 sealed in a `schedule.set` entry.
 */
import { and, desc, eq, sql } from "drizzle-orm";
import type { FormDefinition } from "../../anchoring/forms/definition.ts";
import { toHex, utf8 } from "../../anchoring/log/bytes.ts";
import { canonicalize } from "../../anchoring/log/canonical.ts";
import { forms, visitSchedules } from "../../db/schema/index.ts";
import { audit } from "../audit-trail/record-event.server.ts";
import { appendEntry } from "../log/append-entry.server.ts";
import { auditActor, auditDetail, payloadActor, rowTokenColumns } from "../platform/attribution.ts";
import type { AppContext } from "../platform/context.server.ts";
import { refuseUnderDatabaseLock } from "../database-lock/refuse-under-lock.server.ts";
import { type Problem, ServiceError } from "../platform/errors.server.ts";
import { requirePermission, type Principal } from "../platform/permissions.server.ts";
import { storedDefinition } from "../records/stored-definition.server.ts";
import { getStudyOrThrow } from "../studies/studies.server.ts";
import { type ScheduleDefinition, ScheduleDefinitionSchema } from "./schedule-definition.ts";

/** "visits.2.dateField.field" -> "visit 3 (WEEK4) date field" style words for a zod path. */
function pathWords(path: PropertyKey[], input: unknown): string {
  if (path[0] === "visits" && typeof path[1] === "number") {
    const v = (input as { visits?: { code?: unknown }[] })?.visits?.[path[1]];
    const name = typeof v?.code === "string" ? ` (${v.code})` : "";
    const rest = path.slice(2).map(String).join(".");
    return `visit ${path[1] + 1}${name}${rest ? ` ${rest}` : ""}`;
  }
  return path.map(String).join(".") || "schedule";
}

/** The schedule's problems against the study's approved forms (latest approved version of each). */
export function studyProblems(d: ScheduleDefinition, approved: Map<string, FormDefinition>): Problem[] {
  const out: Problem[] = [];
  const add = (field: string, message: string) => out.push({ field, message } as Problem);
  d.visits.forEach((v, i) => {
    const where = `visit ${v.code}`;
    for (const code of v.forms) {
      const def = approved.get(code.toUpperCase());
      if (!def) add(`visits.${i}.forms`, `${where}: form ${code} has no approved version in this study`);
      else if (!def.visits.includes(v.code.toUpperCase()))
        add(`visits.${i}.forms`, `${where}: form ${code} does not list visit ${v.code} (${def.visits.join(", ")})`);
    }
    if (v.dateField) {
      const def = approved.get(v.dateField.form.toUpperCase());
      const f = def?.fields.find((x) => x.name === v.dateField?.field);
      if (def && f?.type !== "date")
        add(
          `visits.${i}.dateField.field`,
          `${where}: date field ${v.dateField.field} is ${f ? `a ${f.type} field` : "not a field"} of form ${def.code}`,
        );
    }
  });
  const b = d.baseline;
  if (b.kind === "field") {
    const def = approved.get(b.form.toUpperCase());
    const f = def?.fields.find((x) => x.name === b.field);
    const visit = d.visits.find((v) => v.code === b.visit);
    if (!def) add("baseline.form", `baseline: form ${b.form} has no approved version in this study`);
    else if (f?.type !== "date")
      add("baseline.field", `baseline: ${b.field} is ${f ? `a ${f.type} field` : "not a field"} of form ${def.code}`);
    else if (visit && !visit.forms.some((c) => c.toUpperCase() === def.code))
      add("baseline.form", `baseline: form ${b.form} is not one of visit ${b.visit}'s forms`);
  }
  return out;
}

async function approvedForms(ctx: AppContext, studyId: string) {
  const rows = await ctx.db
    .select()
    .from(forms)
    .where(and(eq(forms.studyId, studyId), eq(forms.status, "approved")))
    .orderBy(desc(forms.version));
  const out = new Map<string, FormDefinition>();
  for (const r of rows) if (!out.has(r.code.toUpperCase())) out.set(r.code.toUpperCase(), storedDefinition(r));
  return out;
}

/** Parse a schedule's JSON (text or a value) and check it; refused with every problem, each in words. */
export async function checkSchedule(ctx: AppContext, studyId: string, json: unknown): Promise<ScheduleDefinition> {
  let value = json;
  if (typeof json === "string") {
    try {
      value = JSON.parse(json);
    } catch {
      throw new ServiceError("invalid", "schedule: the file is not JSON", "schedule");
    }
  }
  const parsed = ScheduleDefinitionSchema.safeParse(value);
  let problems: Problem[];
  if (!parsed.success) {
    problems = parsed.error.issues.map((i) => ({
      field: i.path.map(String).join(".") || "schedule",
      message: `${pathWords(i.path, value)}: ${
        i.code === "unrecognized_keys" ? `unknown ${i.keys.join(", ")}` : i.message
      }`,
    })) as Problem[];
  } else problems = studyProblems(parsed.data, await approvedForms(ctx, studyId));
  if (problems.length || !parsed.success)
    throw new ServiceError("invalid", problems[0].message, problems[0].field, problems);
  return parsed.data;
}

/** Set the study's visit schedule: a new version (permission study.manage). */
export async function setSchedule(ctx: AppContext, principal: Principal, studyCode: string, json: unknown) {
  const study = await getStudyOrThrow(ctx, studyCode);
  requirePermission(principal, "study.manage", { studyId: study.id });
  const definition = await checkSchedule(ctx, study.id, json);
  const text = canonicalize(definition);
  const sha = ctx.crypto.sha256(utf8(text));
  return ctx.db.transaction(async (tx) => {
    // One writer at a time per study: version numbers stay gapless.
    await tx.execute(sql`SELECT 1 FROM studies WHERE id = ${study.id} FOR UPDATE`);
    await refuseUnderDatabaseLock(tx, study.id, "changing the visit schedule");
    const [last] = await tx
      .select({ n: sql<number>`coalesce(max(${visitSchedules.version}), 0)` })
      .from(visitSchedules)
      .where(eq(visitSchedules.studyId, study.id));
    const version = Number(last?.n ?? 0) + 1;
    const e = await appendEntry(tx, ctx.crypto, study, "schedule.set", {
      version,
      sha256: toHex(sha),
      visits: definition.visits.map((v) => v.code),
      ...payloadActor(principal),
    });
    await tx.insert(visitSchedules).values({
      studyId: study.id,
      version,
      definitionText: text,
      definitionSha256: sha,
      createdBy: principal.userId,
      ...rowTokenColumns(principal),
      entryId: e.id,
    });
    await audit(tx, {
      action: "schedule.set",
      ...auditActor(principal),
      studyId: study.id,
      detail: auditDetail(principal, { version, sha256: toHex(sha), entry: e.id }),
    });
    return { version, sha256: toHex(sha), visits: definition.visits.length, entry: { id: e.id, status: "pending" } };
  });
}
