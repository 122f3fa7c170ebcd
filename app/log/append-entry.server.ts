/** Appending a ledger entry, inside the caller's transaction, so it commits with the data it records. */
import { buildEntry } from "../../anchoring/log/entry.ts";
import type { EntryKind, Payload } from "../../anchoring/log/payloads.ts";
import type { Crypto } from "../../anchoring/log/crypto.ts";
import type { DbOrTx } from "../../db/client.ts";
import { insertPendingEntry } from "../../db/queries/log.ts";

export async function appendEntry<K extends EntryKind>(
  tx: DbOrTx,
  crypto: Crypto,
  study: { id: string; code: string },
  kind: K,
  fields: Omit<Payload<K>, "v" | "salt">,
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
