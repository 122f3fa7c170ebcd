/**
 * Reads of sealed rows (issue 19): proofs, exports, integrity audits and dashboards read rows that never change once
 * sealed, so they may be served by a read replica (`DATABASE_REPLICA_URL`). `sealedRead` runs `read` on the replica
 * when one is configured and has replayed at least `minTreeSize` entries of the log, else on the primary.
 * (Contract written first; the replica connection and the lag check are filled in by the replica work.)
 */
import type { Db } from "../../db/client.ts";
import type { AppContext } from "./context.server.ts";

export interface SealedReadOptions {
  /** The log size the read needs (a proof of seq N needs N + 1 sealed entries); fewer on the replica: primary. */
  minTreeSize?: number;
}

export async function sealedRead<T>(
  ctx: AppContext,
  read: (db: Db) => Promise<T>,
  _opts: SealedReadOptions = {},
): Promise<T> {
  return read(ctx.db);
}
