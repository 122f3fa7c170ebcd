/**
 * What a record.saved payload (version 3, ADR 0025) holds of a record version's values: each field by its class
 * (`fieldClass`). Clear fields (coded, numeric, date) go into `values` as entered; identifier and free-text fields
 * only into `hashed`, as the salted hash of the text (`saltedTextHash` under the payload's salt), or of the canonical
 * JSON of any other value; calculated fields into `calculated`; missing-data codes into `missing` with their
 * reason's salted hash. Used by the writer (app/records/records.server.ts), by the checks of a data row against its
 * entry (seal match, integrity audit) and by whoever holds an export and a bundle. Browser-safe.
 */
import { type FieldDefinition, type FormDefinition, type MissingCode, fieldClass } from "../forms/definition.ts";
import { canonicalize } from "./canonical.ts";
import type { Crypto } from "./crypto.ts";
import { saltedTextHash } from "./text-hash.ts";

/** A record version as its data rows hold it (identifiers, free text and reasons in clear). */
export interface RecordVersionValues {
  values: Record<string, unknown>;
  missing: Record<string, { code: string; reason: string }>;
  calculated: Record<string, number | null>;
}

/** The same version as a v3 payload holds it. */
export interface SealedRecordValues {
  values: Record<string, unknown>;
  hashed: Record<string, string>;
  calculated: Record<string, number | null>;
  missing: Record<string, { code: MissingCode; reasonHash: string }>;
}

/** The salted hash of an identifier or free-text value: of the text itself, else of its canonical JSON. */
export function hashedFieldValue(crypto: Crypto, salt: string, value: unknown): string {
  return saltedTextHash(crypto, salt, typeof value === "string" ? value : canonicalize(value));
}

/** Whether a payload may hold this field's value only as its salted hash. */
export function isHashedField(f: FieldDefinition | undefined): boolean {
  return f !== undefined && fieldClass(f) !== "clear";
}

/** Which fields of a form a payload holds only as salted hashes (its identifier and free-text fields). */
export function hashedFieldsOf(def: FormDefinition): (name: string) => boolean {
  const hashed = new Set(def.fields.filter((f) => isHashedField(f)).map((f) => f.name));
  return (name) => hashed.has(name);
}

/**
 * A version's values in the v3 payload's shape, under `salt`; `hashedField` tells the identifier and free-text
 * fields (`hashedFieldsOf` the form definition). A field the definition does not have (never written so, but
 * possible in a row altered behind the log) is put in `values`, so that it can never match its entry.
 */
export function sealRecordValues(
  crypto: Crypto,
  salt: string,
  hashedField: (name: string) => boolean,
  v: RecordVersionValues,
): SealedRecordValues {
  // Object.fromEntries, so a key such as "__proto__" (in a row altered behind the log) stays an own key.
  const entries = Object.entries(v.values);
  return {
    values: Object.fromEntries(entries.filter(([name]) => !hashedField(name))),
    hashed: Object.fromEntries(
      entries
        .filter(([name]) => hashedField(name))
        .map(([name, value]) => [name, hashedFieldValue(crypto, salt, value)]),
    ),
    calculated: Object.fromEntries(Object.entries(v.calculated)),
    missing: Object.fromEntries(
      Object.entries(v.missing).map(([name, m]) => [
        name,
        { code: m?.code as MissingCode, reasonHash: saltedTextHash(crypto, salt, String(m?.reason)) },
      ]),
    ),
  };
}
