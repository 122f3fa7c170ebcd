/**
 * The history of each query (ADR 0034): every step (raised, answered, closed, re-opened) writes a query_events row in
 * the same transaction as its ledger entry, naming who made it (a user, or an API token's id and name) and when (the
 * entry's time). The rows are append-only; the integrity audit checks each against its entry
 * (app/integrity-audit/query-event-checks.server.ts). Notifications of each step are queued in the same transaction.
 */
import { desc, eq } from "drizzle-orm";
import type { DbOrTx } from "../../db/client.ts";
import { forms, participants, queryEvents, records, recordVersions, type Role } from "../../db/schema/index.ts";
import { notifyStudyRoles, notifyUser, type NotificationKind } from "../notifications/notify.server.ts";
import { rowTokenColumns } from "../platform/attribution.ts";
import type { AppContext } from "../platform/context.server.ts";
import { can, type Principal } from "../platform/permissions.server.ts";

export type QueryAction = "opened" | "answered" | "closed" | "reopened";

/** The ledger kind of each step. */
export const QUERY_EVENT_KIND: Record<QueryAction, string> = {
  opened: "query.opened",
  answered: "query.answered",
  closed: "query.closed",
  reopened: "query.reopened",
};

/** Write one step's history row, inside the transaction that appended its entry. */
export async function writeQueryEvent(
  tx: DbOrTx,
  ev: {
    queryId: string;
    studyId: string;
    action: QueryAction;
    text: string | null;
    principal: Principal;
    entry: { id: string; at: Date };
  },
) {
  const token = rowTokenColumns(ev.principal);
  await tx.insert(queryEvents).values({
    queryId: ev.queryId,
    studyId: ev.studyId,
    action: ev.action,
    text: ev.text,
    actorUserId: token.actorTokenId ? null : ev.principal.userId,
    ...token,
    at: ev.entry.at,
    entryId: ev.entry.id,
  });
}

/** The roles that answer a query at a site. */
export const SITE_ANSWERERS = ["coordinator", "investigator"] as const satisfies readonly Role[];

/**
 * Queue the notification of a query step (queue only; the sender delivers it): raised or re-opened -> the site's
 * coordinators and investigators; answered -> the raiser. Never to whoever acted. The text names the study, the
 * subject code, the form and field and a link, and nothing else (no query text, no names).
 */
export async function notifyQueryStep(
  tx: DbOrTx,
  ctx: AppContext,
  step: {
    action: "opened" | "answered" | "reopened";
    study: { id: string; code: string };
    record: { id: string; siteId: string; participantId: string; formCode?: string };
    field: string;
    fieldLabel?: string | null;
    raiserUserId: string | null;
    actorUserId: string | null;
  },
) {
  const [p] = await tx
    .select({ code: participants.subjectCode })
    .from(participants)
    .where(eq(participants.id, step.record.participantId));
  const [r] = await tx.select({ form: records.formCode }).from(records).where(eq(records.id, step.record.id));
  const field = step.fieldLabel ? `${step.fieldLabel} (${step.field})` : step.field;
  const where = `${step.record.formCode ?? r?.form ?? "form"} / ${field}`;
  const link = `${ctx.env.publicUrl}/studies/${step.study.code}/records/${step.record.id}#field-${step.field}`;
  const verb = { opened: "raised", answered: "answered", reopened: "re-opened" }[step.action];
  const subject = `[${step.study.code}] Query ${verb}: ${p?.code ?? "subject"}, ${where}`;
  const body =
    `A query was ${verb} in study ${step.study.code}, subject ${p?.code ?? "-"}, ${where}.\n` +
    `${step.action === "answered" ? "Please review the answer and close or re-open it" : "Please answer it"}: ` +
    `${link}\n`;
  const kind: NotificationKind = `query_${step.action}`;
  if (step.action === "answered") {
    if (step.raiserUserId && step.raiserUserId !== step.actorUserId)
      await notifyUser(tx, step.raiserUserId, { studyId: step.study.id, kind, subject, body });
    return;
  }
  await notifyStudyRoles(tx, {
    studyId: step.study.id,
    siteId: step.record.siteId,
    roles: SITE_ANSWERERS,
    exceptUserId: step.actorUserId,
    kind,
    subject,
    body,
  });
}

/** A field's label in the form version the record's latest version uses, or null. */
export async function fieldLabelOf(db: DbOrTx, recordId: string, field: string): Promise<string | null> {
  const [row] = await db
    .select({ text: forms.definitionText })
    .from(recordVersions)
    .innerJoin(forms, eq(forms.id, recordVersions.formId))
    .where(eq(recordVersions.recordId, recordId))
    .orderBy(desc(recordVersions.version))
    .limit(1);
  if (!row) return null;
  try {
    const def = JSON.parse(row.text) as { fields?: { name: string; label?: string }[] };
    return def.fields?.find((f) => f.name === field)?.label ?? null;
  } catch {
    return null;
  }
}

/** The roles that raise, close and re-open queries: monitors and data managers. */
export function canRaiseQueries(p: Principal, scope: { studyId: string; siteId: string }): boolean {
  return can(p, "records.monitor", scope) || can(p, "records.lock", scope);
}
