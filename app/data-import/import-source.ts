/**
 * An imported version's source (record.saved v4, ADR 0037): as its row holds it (record_versions.source_text, JCS of
 * {job, fileSha256, row, claims} with the source system's claims in clear) and as its payload holds it (the claims'
 * user and reason as salted hashes under the payload's salt, the time as written in the file).
 */
import { canonicalize } from "../../anchoring/log/canonical.ts";
import type { Crypto } from "../../anchoring/log/crypto.ts";
import { saltedTextHash } from "../../anchoring/log/text-hash.ts";
import type { SourceClaims } from "./import-rows.ts";

export interface ImportSource {
  job: string;
  fileSha256: string;
  row: number;
  claims: SourceClaims | null;
}

export function sourceText(s: ImportSource): string {
  return canonicalize({ job: s.job, fileSha256: s.fileSha256, row: s.row, claims: s.claims });
}

export function sealedSource(crypto: Crypto, salt: string, s: ImportSource) {
  return {
    job: s.job,
    fileSha256: s.fileSha256,
    row: s.row,
    claims:
      s.claims === null
        ? null
        : {
            userHash: s.claims.user === null ? null : saltedTextHash(crypto, salt, s.claims.user),
            at: s.claims.at,
            reasonHash: s.claims.reason === null ? null : saltedTextHash(crypto, salt, s.claims.reason),
          },
  };
}
