/**
 * Automatic queries: a value outside its field's soft limits, confirmed at entry, opens a query on that field in
 * the same transaction as the record version (issue 17), raised by whoever saved the value. Like any query, the
 * text stays in the queries row and its salted hash goes into the `query.opened` entry; the words "(confirmed at
 * entry)" tell it from a monitor's query. The entry names the user or the API token that saved the value.
 */
import type { FormDefinition } from "../../anchoring/forms/definition.ts";
import { unitLabel } from "../../anchoring/forms/units.ts";
import { saltedTextHash } from "../../anchoring/log/text-hash.ts";
import type { DbOrTx } from "../../db/client.ts";
import { queries } from "../../db/schema/index.ts";
import { audit } from "../audit-trail/record-event.server.ts";
import { appendEntry } from "../log/append-entry.server.ts";
import { auditActor, auditDetail, payloadActor } from "../platform/attribution.ts";
import type { AppContext } from "../platform/context.server.ts";
import type { Principal } from "../platform/permissions.server.ts";
import { fieldLabelOf, notifyQueryStep, writeQueryEvent } from "../queries/query-events.server.ts";

const withUnit = (n: number, unit: string | undefined) => (unit ? `${n} ${unitLabel(unit)}` : String(n));

/**
 * "Systolic BP 195 mmHg is outside the expected range 90–160 mmHg (confirmed at entry)"; null when the field has no
 * soft limit the value lies outside.
 */
export function softLimitQueryText(def: FormDefinition, field: string, value: unknown): string | null {
  const f = def.fields.find((x) => x.name === field);
  if (f?.type !== "number" || typeof value !== "number") return null;
  const { softMin: lo, softMax: hi } = f;
  const below = lo !== undefined && value < lo;
  const above = hi !== undefined && value > hi;
  if (!below && !above) return null;
  const range =
    lo !== undefined && hi !== undefined
      ? `outside the expected range ${lo}–${withUnit(hi, f.unit)}`
      : below
        ? `below the expected minimum ${withUnit(lo as number, f.unit)}`
        : `above the expected maximum ${withUnit(hi as number, f.unit)}`;
  return `${f.label} ${withUnit(value, f.unit)} is ${range} (confirmed at entry)`;
}

/** Open one automatic query per field, inside the caller's transaction; returns the queries' ids. */
export async function openAutomaticQueries(
  tx: DbOrTx,
  ctx: AppContext,
  principal: Principal,
  study: { id: string; code: string },
  record: { id: string; siteId: string; participantId: string },
  def: FormDefinition,
  fields: string[],
  values: Record<string, unknown>,
): Promise<string[]> {
  const ids: string[] = [];
  for (const field of fields) {
    const text = softLimitQueryText(def, field, values[field]);
    if (!text) continue;
    ids.push(await openAutomaticQuery(tx, ctx, principal, study, record, field, text));
  }
  return ids;
}

/**
 * Open one automatic query with the given text on a field, inside the caller's transaction (soft limits above,
 * visit windows in app/visit-schedule/visit-windows.server.ts); returns its id.
 */
export async function openAutomaticQuery(
  tx: DbOrTx,
  ctx: AppContext,
  principal: Principal,
  study: { id: string; code: string },
  record: { id: string; siteId: string; participantId: string },
  field: string,
  text: string,
): Promise<string> {
  {
    const id = crypto.randomUUID();
    const e = await appendEntry(tx, ctx.crypto, study, "query.opened", (salt) => ({
      query: id,
      record: record.id,
      field,
      textHash: saltedTextHash(ctx.crypto, salt, text),
      ...payloadActor(principal),
    }));
    await tx
      .insert(queries)
      .values({ id, studyId: study.id, recordId: record.id, field, text, openedBy: principal.userId });
    await writeQueryEvent(tx, { queryId: id, studyId: study.id, action: "opened", text, principal, entry: e });
    await audit(tx, {
      action: "query.open",
      ...auditActor(principal),
      studyId: study.id,
      siteId: record.siteId,
      participantId: record.participantId,
      detail: auditDetail(principal, { query: id, record: record.id, field, automatic: true }),
    });
    await notifyQueryStep(tx, ctx, {
      action: "opened",
      study,
      record,
      field,
      fieldLabel: await fieldLabelOf(tx, record.id, field),
      raiserUserId: principal.userId,
      actorUserId: principal.userId,
    });
    return id;
  }
}
