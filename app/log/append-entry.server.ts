/** Appending a ledger entry, inside the caller's transaction, so it commits with the data it records. */
import { buildEntry, type EntryFields } from "../../anchoring/log/entry.ts";
import type { EntryKind } from "../../anchoring/log/payloads.ts";
import type { Crypto } from "../../anchoring/log/crypto.ts";
import type { DbOrTx } from "../../db/client.ts";
import { insertPendingEntry } from "../../db/queries/log.ts";

export async function appendEntry<K extends EntryKind>(
  tx: DbOrTx,
  crypto: Crypto,
  study: { id: string; code: string },
  kind: K,
  /** The payload without `v` and `salt`, or a function of the salt (for salted text hashes, ADR 0020). */
  fields: EntryFields<K>,
) {
  const built = buildEntry(crypto, kind, fields);
  const row = await insertPendingEntry(tx, {
    studyId: study.id,
    studyCode: study.code,
    kind,
    payloadText: built.payloadText,
    payloadHash: built.payloadHash,
  });
  return { id: row.id, at: row.at, payloadHash: built.payloadHash };
}
