/** Bearer secrets (session tokens, API tokens): random, shown once, stored only as SHA-256. */
import { randomBytes } from "node:crypto";
import { toBase64Url, utf8 } from "../../anchoring/log/bytes.ts";
import type { Crypto } from "../../anchoring/log/crypto.ts";

/** A new random 256-bit token, base64url. */
export function newToken(prefix = ""): string {
  return prefix + toBase64Url(randomBytes(32));
}

/** What the database stores in place of a token. */
export function tokenHash(crypto: Crypto, token: string): Uint8Array {
  return crypto.sha256(utf8(token));
}
