/**
 * Sealing an audit-trail event (ADR 0016): the audit_events row and its `audit.event` ledger entry are written
 * together, in one transaction, the row naming its entry and the entry its row. Actor labels and the free-form
 * detail reach the payload only as salted hashes, the source address as an HMAC under the deployment's key.
 */
import { randomUUID } from "node:crypto";
import { eq, sql } from "drizzle-orm";
import { nodeCrypto } from "../../anchoring/adapters/crypto-node.ts";
import { canonicalize } from "../../anchoring/log/canonical.ts";
import { toHex, utf8 } from "../../anchoring/log/bytes.ts";
import type { Crypto } from "../../anchoring/log/crypto.ts";
import { buildEntry, newSalt } from "../../anchoring/log/entry.ts";
import { DEPLOYMENT_SCOPE } from "../../anchoring/log/envelope.ts";
import type { Payload } from "../../anchoring/log/payloads.ts";
import type { DbOrTx } from "../../db/client.ts";
import { insertAuditEvent, type NewAuditEvent } from "../../db/queries/audit.ts";
import { insertPendingEntries, insertPendingEntry } from "../../db/queries/log.ts";
import { rowsOf } from "../../db/queries/rows.ts";
import { auditEvents, studies } from "../../db/schema/index.ts";
import { addressHmac, deploymentDataKey } from "./address-hmac.server.ts";

/**
 * SHA-256 (hex) of `salt`, a newline and `text`: how an actor label or a piece of free text (and, in version 1
 * payloads, an address) enters an audit.event payload. The salt is the payload's own, so whoever holds the text and
 * the entry can check it; a guess can be checked too, which is why addresses are HMACs from version 2 on.
 */
export function saltedHash(crypto: Crypto, salt: string, text: string): string {
  return toHex(crypto.sha256(utf8(`${salt}\n${text}`)));
}

/** The detail as stored (plain JSON: undefined members dropped), so the hash is of what the row holds. */
export function normalizeDetail(detail: unknown): Record<string, unknown> {
  return JSON.parse(JSON.stringify(detail ?? {})) as Record<string, unknown>;
}

/**
 * The fields of an audit.event payload that a row determines (everything but `v` and `salt`), in payload version
 * `opts.v` (default: the current one, 2). Version 2 needs the deployment's DATA_KEY for the address (`opts.dataKey`,
 * default: the one of this process's application context); version 1 held the address's salted hash.
 */
export function eventPayloadFields(
  crypto: Crypto,
  salt: string,
  row: {
    id: number;
    at: Date;
    action: string;
    outcome: "success" | "failure" | "denied";
    actorUserId: string | null;
    actorLabel: string | null;
    siteId: string | null;
    participantId: string | null;
    ip: string | null;
    detail: unknown;
  },
  opts: { v?: unknown; dataKey?: Uint8Array } = {},
): Omit<Payload<"audit.event">, "v" | "salt"> {
  const detail = normalizeDetail(row.detail);
  const count = (detail as { aggregated?: unknown; count?: unknown }).aggregated === true ? detail.count : undefined;
  return {
    event: row.id,
    at: row.at.toISOString(),
    action: row.action,
    outcome: row.outcome,
    actor: row.actorUserId,
    actorLabel: row.actorLabel === null ? null : saltedHash(crypto, salt, row.actorLabel),
    site: row.siteId,
    participant: row.participantId,
    ip:
      row.ip === null
        ? null
        : opts.v === 1
          ? saltedHash(crypto, salt, row.ip)
          : addressHmac(opts.dataKey ?? deploymentDataKey(), row.ip),
    detail: saltedHash(crypto, salt, canonicalize(detail)),
    ...(typeof count === "number" && Number.isInteger(count) && count > 0 ? { count } : {}),
  };
}

/** Study codes never change: cached per process. */
const studyCodes = new Map<string, string>();
async function studyCode(tx: DbOrTx, studyId: string): Promise<string> {
  const known = studyCodes.get(studyId);
  if (known) return known;
  const [s] = await tx.select({ code: studies.code }).from(studies).where(eq(studies.id, studyId));
  if (!s) throw new Error(`audit event names unknown study ${studyId}`);
  studyCodes.set(studyId, s.code);
  return s.code;
}

/** An event's sealed form, given its id: the time and detail as stored, and its `audit.event` entry (own salt). */
function sealedEvent(crypto: Crypto, e: NewAuditEvent, id: number) {
  const at = e.at ?? new Date();
  const detail = normalizeDetail(e.detail);
  const salt = newSalt();
  const fields = eventPayloadFields(crypto, salt, {
    id,
    at,
    action: e.action,
    outcome: e.outcome ?? "success",
    actorUserId: e.actorUserId ?? null,
    actorLabel: e.actorLabel ?? null,
    siteId: e.siteId ?? null,
    participantId: e.participantId ?? null,
    ip: e.ip ?? null,
    detail,
  });
  return { at, detail, built: buildEntry(crypto, "audit.event", fields, salt) };
}

/** Write the row and its entry (call inside a transaction: `audit()` does). */
export async function insertSealedEvent(tx: DbOrTx, e: NewAuditEvent, crypto: Crypto = nodeCrypto): Promise<number> {
  const res = await tx.execute(sql`SELECT nextval(pg_get_serial_sequence('audit_events', 'id')) AS id`);
  const id = Number(rowsOf<{ id: string | number }>(res)[0].id);
  const { at, detail, built } = sealedEvent(crypto, e, id);
  const entry = await insertPendingEntry(tx, {
    studyId: e.studyId ?? null,
    studyCode: e.studyId ? await studyCode(tx, e.studyId) : DEPLOYMENT_SCOPE,
    kind: "audit.event",
    payloadText: built.payloadText,
    payloadHash: built.payloadHash,
    at,
  });
  await insertAuditEvent(tx, { ...e, id, at, detail, entryId: entry.id });
  return id;
}

/** Rows per multi-row INSERT of `insertSealedEvents`. */
const EVENTS_CHUNK = 500;

/**
 * Write many events and their entries in three round trips per `EVENTS_CHUNK` (their ids, the entries, the rows),
 * inside the caller's transaction: the bulk writes of issue 19 (group commit, the batch API). Each event is sealed
 * exactly as `insertSealedEvent` seals one (its own salt, id and entry). Returns the event ids in input order.
 */
export async function insertSealedEvents(
  tx: DbOrTx,
  events: NewAuditEvent[],
  crypto: Crypto = nodeCrypto,
): Promise<number[]> {
  const ids: number[] = [];
  for (let i = 0; i < events.length; i += EVENTS_CHUNK) {
    const part = events.slice(i, i + EVENTS_CHUNK);
    const res = await tx.execute(
      sql`SELECT nextval(pg_get_serial_sequence('audit_events', 'id')) AS id FROM generate_series(1, ${part.length})`,
    );
    const partIds = rowsOf<{ id: string | number }>(res).map((r) => Number(r.id));
    const entries: Parameters<typeof insertPendingEntries>[1] = [];
    const rows: (typeof auditEvents.$inferInsert)[] = [];
    for (let j = 0; j < part.length; j++) {
      const e = part[j];
      const id = partIds[j];
      const { at, detail, built } = sealedEvent(crypto, e, id);
      const entryId = randomUUID();
      entries.push({
        id: entryId,
        studyId: e.studyId ?? null,
        studyCode: e.studyId ? await studyCode(tx, e.studyId) : DEPLOYMENT_SCOPE,
        kind: "audit.event",
        payloadText: built.payloadText,
        payloadHash: built.payloadHash,
        at,
      });
      rows.push({ ...e, id, at, detail, entryId });
    }
    await insertPendingEntries(tx, entries, EVENTS_CHUNK);
    await tx.insert(auditEvents).values(rows);
    ids.push(...partIds);
  }
  return ids;
}
