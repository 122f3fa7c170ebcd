/**
 * Free text in ledger payloads (ADR 0020): reasons, query texts and the like enter a payload only as a salted
 * hash, SHA-256 (lowercase hex) of the payload's own `salt`, a newline and the text as the data row stores it. The
 * salt travels in the payload (and so in every proof bundle), so whoever holds the text and the bundle can check
 * it, while anchors, logs and anyone holding the bundle alone see only the hash; erasing the text from the data
 * leaves the proof valid. The same construction as the audit trail's (`audit.event`, ADR 0016).
 *
 * Version 1 payloads of some kinds carry the text in clear under `<field>`; their version 2 carries
 * `<field>Hash` instead. The helpers below read either, so old entries keep verifying.
 */
import { toHex, utf8 } from "./bytes.ts";
import type { Crypto } from "./crypto.ts";

/** SHA-256 (hex) of `salt`, a newline and `text`. */
export function saltedTextHash(crypto: Crypto, salt: string, text: string): string {
  return toHex(crypto.sha256(utf8(`${salt}\n${text}`)));
}

/** Does `payload` hold free-text field `field` as a salted hash (version 2 shape) rather than in clear? */
export function holdsTextHash(payload: Record<string, unknown>, field: string): boolean {
  return Object.hasOwn(payload, `${field}Hash`);
}

/** What the payload holds for free-text field `field`: its salted hash (v2) or its clear text (v1); null if none. */
export function sealedTextOf(payload: Record<string, unknown>, field: string): unknown {
  return holdsTextHash(payload, field) ? (payload[`${field}Hash`] ?? null) : (payload[field] ?? null);
}

/**
 * What the payload would hold for `text` in field `field`, in the payload's own shape: the salted hash under its
 * salt (v2) or the text itself (v1). Compare it with `sealedTextOf` to check a data row against its entry.
 */
export function textAsSealed(
  crypto: Crypto,
  payload: Record<string, unknown>,
  field: string,
  text: string | null | undefined,
): string | null {
  if (text === null || text === undefined) return null;
  if (!holdsTextHash(payload, field)) return text;
  return typeof payload.salt === "string" ? saltedTextHash(crypto, payload.salt, text) : null;
}

/** True when `text` is the free text that `payload` holds (in clear or as a salted hash) in field `field`. */
export function textMatchesPayload(
  crypto: Crypto,
  payload: Record<string, unknown>,
  field: string,
  text: string | null | undefined,
): boolean {
  return textAsSealed(crypto, payload, field, text) === sealedTextOf(payload, field);
}

/**
 * For fields that version 1 held as a plain, unsalted SHA-256 (`<field>Sha256`: query texts, withdrawal and
 * erasure reasons) and version 2 holds as a salted hash (`<field>Hash`): true when `text` is what it holds.
 */
export function hashedTextMatches(
  crypto: Crypto,
  payload: Record<string, unknown>,
  field: string,
  text: string | null | undefined,
): boolean {
  const [fromText, held] = hashedTextPair(crypto, payload, field, text);
  return fromText === held;
}

/** [the hash `text` makes in the payload's own shape, the hash the payload holds] for such a field. */
export function hashedTextPair(
  crypto: Crypto,
  payload: Record<string, unknown>,
  field: string,
  text: string | null | undefined,
): [string | null, unknown] {
  if (holdsTextHash(payload, field)) return [textAsSealed(crypto, payload, field, text), sealedTextOf(payload, field)];
  const fromText = text === null || text === undefined ? null : toHex(crypto.sha256(utf8(text)));
  return [fromText, payload[`${field}Sha256`] ?? null];
}
