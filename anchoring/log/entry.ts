/** Building a ledger entry's payload: validated, salted, canonical, hashed. */
import { canonicalize } from "./canonical.ts";
import { toBase64Url, toHex, utf8 } from "./bytes.ts";
import type { Crypto } from "./crypto.ts";
import { PAYLOAD_SCHEMAS, type EntryKind, type Payload } from "./payloads.ts";

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

/** Build an entry of `kind`; `fields` is the payload without `v` and `salt`. */
export function buildEntry<K extends EntryKind>(
  crypto: Crypto,
  kind: K,
  fields: Omit<Payload<K>, "v" | "salt">,
  salt: string = newSalt(),
): BuiltEntry<K> {
  const candidate = { v: 1, salt, ...fields };
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
