/**
 * Who a data-use delivery holds, sealed without naming them (ADR 0070): SHA-256 (lowercase hex) of the payload's
 * salt, a newline, then the included participants' ids sorted (code-unit order), one per line. The integrity audit
 * recomputes it from the delivery's data_use_delivery_participants rows, so a row deleted or inserted behind the log
 * changes it. No participant id, subject code or count of rows leaks from the hash alone.
 */
import { toHex, utf8 } from "../../anchoring/log/bytes.ts";
import type { Crypto } from "../../anchoring/log/crypto.ts";

export function membersHash(crypto: Pick<Crypto, "sha256">, salt: string, participantIds: string[]): string {
  const sorted = [...participantIds].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return toHex(crypto.sha256(utf8([salt, ...sorted].join("\n"))));
}
