/**
 * Sealing the audit-trail events written before migration 0016 (ADR 0016, "Events from before the seal"): once, at
 * the first start after the upgrade, one `audit.legacy_sealed` entry in the deployment scope seals how many such
 * rows there are, their first and last id and a digest over them, so that the integrity audit can tell when one
 * of them is later deleted, altered or inserted. Only rows older than the first sealed event are covered: a row
 * without an entry written after it is an inserted one, never "legacy".
 */
import { createHash } from "node:crypto";
import { sql } from "drizzle-orm";
import { canonicalize } from "../../anchoring/log/canonical.ts";
import type { Crypto } from "../../anchoring/log/crypto.ts";
import { buildEntry, newSalt } from "../../anchoring/log/entry.ts";
import { DEPLOYMENT_SCOPE } from "../../anchoring/log/envelope.ts";
import type { Db, DbOrTx } from "../../db/client.ts";
import {
  anyUnsealedEvent,
  type AuditEventWithEntry,
  firstSealedEventId,
  legacySealedEntries,
  unsealedEvents,
} from "../../db/queries/audit-trail-checks.ts";
import { insertPendingEntry } from "../../db/queries/log.ts";

const PAGE = 1000;
/** Advisory lock id: one process at a time seals the legacy events (several may start at once). */
const LEGACY_LOCK_KEY = 7_424_016;

/** One row as it enters the digest: every column but entry_id (null for all of them), detail as parsed JSON. */
export function legacyRowText(r: AuditEventWithEntry): string {
  let detail: unknown;
  try {
    detail = JSON.parse(r.detail_text);
  } catch {
    detail = r.detail_text;
  }
  return canonicalize({
    id: Number(r.id),
    at: r.at_iso,
    action: r.action,
    outcome: r.outcome,
    actor: r.actor_user_id,
    actorLabel: r.actor_label,
    study: r.study_id,
    site: r.site_id,
    participant: r.participant_id,
    ip: r.ip,
    detail,
  });
}

/**
 * The digest of the rows without an entry whose id is below `before` (when given) and at most `upTo` (when given):
 * SHA-256 (hex) of the salt, a newline, then each row's canonical JSON and a newline, in id order. Paged.
 */
export async function legacyDigest(
  db: DbOrTx,
  salt: string,
  range: { before?: number; upTo?: number } = {},
): Promise<{ count: number; firstId: number | null; lastId: number | null; digest: string }> {
  const h = createHash("sha256").update(`${salt}\n`);
  const upTo = range.before === undefined ? range.upTo : Math.min(range.before - 1, range.upTo ?? Infinity);
  let count = 0;
  let firstId: number | null = null;
  let lastId: number | null = null;
  let after = 0;
  for (;;) {
    const page = await unsealedEvents(db, after, PAGE, upTo);
    if (page.length === 0) break;
    for (const r of page) {
      const id = Number(r.id);
      count++;
      firstId ??= id;
      lastId = id;
      h.update(`${legacyRowText(r)}\n`);
    }
    after = Number(page[page.length - 1].id);
  }
  return { count, firstId, lastId, digest: h.digest("hex") };
}

/**
 * Seal the pre-0016 events unless done already (idempotent; safe when several processes start at once: a
 * transaction-level advisory lock serialises them, and a partial unique index, migration 0018, allows one entry of
 * the kind). Returns what was sealed, or null when there was nothing to do.
 */
export async function sealLegacyAuditEvents(
  db: Db,
  crypto: Crypto,
): Promise<{ count: number; firstId: number; lastId: number } | null> {
  // Cheap on every start: the entry_id unique index, then the partial unique index on the legacy entry's kind.
  if (!(await anyUnsealedEvent(db)) || (await legacySealedEntries(db)).length > 0) return null;
  return db.transaction(async (tx) => {
    await tx.execute(sql`SELECT pg_advisory_xact_lock(${LEGACY_LOCK_KEY})`);
    if ((await legacySealedEntries(tx)).length > 0) return null;
    const firstSealed = await firstSealedEventId(tx);
    const salt = newSalt();
    const d = await legacyDigest(tx, salt, firstSealed === null ? {} : { before: firstSealed });
    if (d.count === 0 || d.firstId === null || d.lastId === null) return null;
    const sealed = { count: d.count, firstId: d.firstId, lastId: d.lastId };
    const built = buildEntry(crypto, "audit.legacy_sealed", { ...sealed, digest: d.digest }, salt);
    await insertPendingEntry(tx, {
      studyId: null,
      studyCode: DEPLOYMENT_SCOPE,
      kind: "audit.legacy_sealed",
      payloadText: built.payloadText,
      payloadHash: built.payloadHash,
    });
    return sealed;
  });
}
