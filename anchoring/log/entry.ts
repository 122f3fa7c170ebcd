/** Building a ledger entry's payload: validated, salted, canonical, hashed. */
import { canonicalize } from "./canonical.ts";
import { toBase64Url, toHex, utf8 } from "./bytes.ts";
import type { Crypto } from "./crypto.ts";
import { PAYLOAD_SCHEMAS, currentVersion, type CurrentPayload, type EntryKind, type Payload } from "./payloads.ts";

export class PayloadError extends Error {
  readonly code = "PAYLOAD_INVALID";
}

export interface BuiltEntry<K extends EntryKind = EntryKind> {
  kind: K;
  payload: Payload<K>;
  /** The exact JCS text that is hashed and stored. */
  payloadText: string;
  payloadHash: Uint8Array;
}

export function newSalt(): string {
  const b = new Uint8Array(16);
  globalThis.crypto.getRandomValues(b);
  return toBase64Url(b);
}

/**
 * The payload without `v` and `salt`, in the kind's current version (CURRENT_VERSION); or a function of the salt,
 * for payloads that hold free text as its salted hash (`saltedTextHash`, ADR 0020).
 */
export type EntryFields<K extends EntryKind> =
  | Omit<CurrentPayload<K>, "v" | "salt">
  | ((salt: string) => Omit<CurrentPayload<K>, "v" | "salt">);

/**
 * Build an entry of `kind`, in its current version; `fields` is the payload without `v` and `salt`. An older
 * `version` is for fixed test vectors only (their payloads must stay byte for byte what they were).
 */
export function buildEntry<K extends EntryKind>(
  crypto: Crypto,
  kind: K,
  fields: EntryFields<K>,
  salt: string = newSalt(),
  version: number = currentVersion(kind),
): BuiltEntry<K> {
  const candidate = { v: version, salt, ...(typeof fields === "function" ? fields(salt) : fields) };
  const parsed = PAYLOAD_SCHEMAS[kind].safeParse(candidate);
  if (!parsed.success) {
    const i = parsed.error.issues[0];
    throw new PayloadError(`${kind} payload: ${i.path.join(".") || "payload"}: ${i.message}`);
  }
  // Canonicalize what was given (not the parsed copy), so numbers and strings are exactly the caller's.
  const payloadText = canonicalize(candidate);
  return { kind, payload: candidate as Payload<K>, payloadText, payloadHash: crypto.sha256(utf8(payloadText)) };
}

export function payloadHashHex(e: BuiltEntry): string {
  return toHex(e.payloadHash);
}
