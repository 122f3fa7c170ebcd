/**
 * The sealer's storage port (anchoring/log/sealer.ts SealStore) on drizzle, for both engines. Each seal runs in
 * one transaction holding a PostgreSQL advisory transaction lock, so only one sealer works at a time across
 * processes; within a process a promise chain serializes callers.
 */
import { and, asc, desc, eq, inArray, isNotNull, isNull, or, sql } from "drizzle-orm";
import type { PendingEntry, SealStore, SealStoreTx } from "../anchoring/log/sealer.ts";
import { toHex } from "../anchoring/log/bytes.ts";
import type { Db, Tx } from "./client.ts";
import { batches, checkpoints, ledgerEntries } from "./schema/index.ts";
import { batchLeafHashes } from "./queries/log.ts";

export const SEALER_LOCK_KEY = 7_424_012;
const CHUNK = 500;

function txStore(tx: Tx): SealStoreTx {
  return {
    async lastBatch() {
      const [b] = await tx
        .select({ batchNo: batches.batchNo, firstSeq: batches.firstSeq, size: batches.size })
        .from(batches)
        .orderBy(desc(batches.batchNo))
        .limit(1);
      return b ?? null;
    },
    async pendingEntries(limit) {
      const rows = await tx
        .select({
          id: ledgerEntries.id,
          studyId: ledgerEntries.studyId,
          studyCode: ledgerEntries.studyCode,
          kind: ledgerEntries.kind,
          payloadHash: ledgerEntries.payloadHash,
          at: ledgerEntries.at,
        })
        .from(ledgerEntries)
        .where(eq(ledgerEntries.status, "pending"))
        .orderBy(asc(ledgerEntries.at), asc(ledgerEntries.id))
        .limit(limit);
      return rows as PendingEntry[];
    },
    async nextStudySeqs(studyIds) {
      const ids = studyIds.filter((s): s is string => s !== null);
      const scopes = [
        ...(ids.length > 0 ? [inArray(ledgerEntries.studyId, ids)] : []),
        // The deployment scope (ADR 0016): entries of no study.
        ...(ids.length < studyIds.length ? [isNull(ledgerEntries.studyId)] : []),
      ];
      if (scopes.length === 0) return new Map();
      const rows = await tx
        .select({ studyId: ledgerEntries.studyId, max: sql<string | null>`max(${ledgerEntries.studySeq})` })
        .from(ledgerEntries)
        .where(and(or(...scopes), isNotNull(ledgerEntries.studySeq)))
        .groupBy(ledgerEntries.studyId);
      const m = new Map<string | null, number>();
      for (const r of rows) if (r.max !== null) m.set(r.studyId, Number(r.max) + 1);
      return m;
    },
    async sealEntries(updates) {
      for (let i = 0; i < updates.length; i += CHUNK) {
        const rows = updates.slice(i, i + CHUNK).map(
          (u) =>
            sql`(${u.id}::uuid, ${u.seq}::bigint, ${u.studySeq}::bigint, ${u.envelopeText}::text,
                decode(${toHex(u.leafHash)}, 'hex'), ${u.batchNo}::bigint)`,
        );
        await tx.execute(sql`
          UPDATE ledger_entries AS e
             SET status = 'sealed', seq = v.seq, study_seq = v.study_seq, envelope_text = v.envelope_text,
                 leaf_hash = v.leaf_hash, batch_no = v.batch_no
            FROM (VALUES ${sql.join(rows, sql`, `)}) AS v(id, seq, study_seq, envelope_text, leaf_hash, batch_no)
           WHERE e.id = v.id AND e.status = 'pending'`);
      }
    },
    async insertBatch(b) {
      await tx.insert(batches).values(b);
    },
    batchLeafHashes: () => batchLeafHashes(tx),
    async insertCheckpoint(c) {
      await tx.insert(checkpoints).values(c);
    },
  };
}

const chains = new WeakMap<object, Promise<unknown>>();

export function ledgerStore(db: Db): SealStore {
  return {
    transaction<T>(fn: (tx: SealStoreTx) => Promise<T>): Promise<T> {
      const prev = chains.get(db) ?? Promise.resolve();
      const run = prev
        .catch(() => {})
        .then(() =>
          db.transaction(async (tx) => {
            await tx.execute(sql`select pg_advisory_xact_lock(${SEALER_LOCK_KEY})`);
            return fn(txStore(tx));
          }),
        );
      chains.set(db, run);
      return run;
    },
  };
}
