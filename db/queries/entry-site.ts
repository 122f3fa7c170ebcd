/**
 * Which site an entry is about (ADR 0020), for proof-bundle visibility: the site of the participant, record, lock
 * or query it names, or the site it names by code. Undefined when it is about no one site (study set-up, a
 * study-wide lock); null when it names something that has no row (treated as nobody's site by the caller).
 */
import { and, eq } from "drizzle-orm";
import type { DbOrTx } from "../client.ts";
import { delegations, locks, participants, queries, records, sites } from "../schema/index.ts";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

async function siteOfParticipantCode(db: DbOrTx, studyId: string, subject: string): Promise<string | null> {
  const [p] = await db
    .select({ siteId: participants.siteId })
    .from(participants)
    .where(and(eq(participants.studyId, studyId), eq(participants.subjectCode, subject)));
  return p?.siteId ?? null;
}

async function siteOfParticipantId(db: DbOrTx, studyId: string, id: string): Promise<string | null> {
  if (!UUID.test(id)) return null;
  const [p] = await db
    .select({ siteId: participants.siteId })
    .from(participants)
    .where(and(eq(participants.studyId, studyId), eq(participants.id, id)));
  return p?.siteId ?? null;
}

async function siteOfRecord(db: DbOrTx, studyId: string, id: string): Promise<string | null> {
  if (!UUID.test(id)) return null;
  const [r] = await db
    .select({ siteId: records.siteId })
    .from(records)
    .where(and(eq(records.studyId, studyId), eq(records.id, id)));
  return r?.siteId ?? null;
}

async function siteOfQuery(db: DbOrTx, studyId: string, id: string): Promise<string | null> {
  if (!UUID.test(id)) return null;
  const [q] = await db.select({ recordId: queries.recordId }).from(queries).where(eq(queries.id, id));
  return q ? siteOfRecord(db, studyId, q.recordId) : null;
}

async function siteOfLock(db: DbOrTx, studyId: string, id: string): Promise<string | null | undefined> {
  if (!UUID.test(id)) return null;
  const [l] = await db
    .select({ scope: locks.scope, targetId: locks.targetId })
    .from(locks)
    .where(and(eq(locks.studyId, studyId), eq(locks.id, id)));
  if (!l) return null;
  if (l.scope === "study" || !l.targetId) return undefined;
  return l.scope === "record" ? siteOfRecord(db, studyId, l.targetId) : siteOfParticipantId(db, studyId, l.targetId);
}

async function siteOfDelegation(db: DbOrTx, studyId: string, id: string): Promise<string | null> {
  if (!UUID.test(id)) return null;
  const [d] = await db
    .select({ siteId: delegations.siteId })
    .from(delegations)
    .where(and(eq(delegations.studyId, studyId), eq(delegations.id, id)));
  return d?.siteId ?? null;
}

async function siteOfCode(db: DbOrTx, studyId: string, code: string): Promise<string | null> {
  const [s] = await db
    .select({ id: sites.id })
    .from(sites)
    .where(and(eq(sites.studyId, studyId), eq(sites.code, code)));
  return s?.id ?? null;
}

/** The site (id) an entry of `kind` with `payload` is about; undefined when about no one site. */
export async function siteOfEntry(
  db: DbOrTx,
  studyId: string,
  kind: string | undefined,
  payload: Record<string, unknown>,
): Promise<string | null | undefined> {
  const str = (k: string) => (typeof payload[k] === "string" ? (payload[k] as string) : undefined);
  const subject = str("subject");
  if (subject !== undefined) return siteOfParticipantCode(db, studyId, subject);
  if (kind === "lock.set" || kind === "lock.released") {
    if (kind === "lock.set" && payload.scope === "study") return undefined;
    return siteOfLock(db, studyId, str("lock") ?? "");
  }
  const record = str("record");
  if (record !== undefined) return siteOfRecord(db, studyId, record);
  const query = str("query");
  if (query !== undefined) return siteOfQuery(db, studyId, query);
  // Delegations and site-scoped role grants name their site by code (a new site's own entry is everyone's).
  if (kind === "audit.event") {
    const participant = str("participant");
    if (participant !== undefined) return siteOfParticipantId(db, studyId, participant);
    return str("site");
  }
  const delegation = str("delegation");
  if (delegation !== undefined && kind === "delegation.revoked") return siteOfDelegation(db, studyId, delegation);
  const site = str("site");
  if (site !== undefined && kind !== "site.added") return siteOfCode(db, studyId, site);
  return undefined;
}
