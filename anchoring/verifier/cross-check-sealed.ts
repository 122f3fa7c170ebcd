/**
 * What the evidence package's cross-checks of derived files (CSV, FHIR, generated PDFs) compare against: the
 * study's sealed entries, each from a proof bundle the verifier accepted and whose envelope is the log's.
 */
import type { Envelope } from "../log/envelope.ts";

export interface SealedEntry {
  seq: number;
  kind: string;
  payload: Record<string, unknown>;
  envelope: Envelope;
  /** The envelope's Merkle leaf hash (hex), as the exports print it. */
  leafHash: string;
}

/** The study's verified entries by seq. */
export type Sealed = Map<number, SealedEntry>;

/** Report a problem: the file, a stable code, and a message naming the row or resource and the seq. */
export type Bad = (file: string, code: string, message: string) => void;

/** The latest sealed record.saved entry of each record (by version), and every record's entries. */
export function latestRecordVersions(sealed: Sealed): Map<string, SealedEntry> {
  const latest = new Map<string, SealedEntry>();
  for (const e of sealed.values()) {
    if (e.kind !== "record.saved") continue;
    const record = String(e.payload.record);
    const have = latest.get(record);
    if (!have || Number(e.payload.version) > Number(have.payload.version)) latest.set(record, e);
  }
  return latest;
}

export const show = (v: unknown) => (v === undefined ? "nothing" : JSON.stringify(v));

/**
 * A package's files by path: a Map, or a reader that inflates each file when asked (so a large package is never
 * held inflated as a whole; app/exports/package-reader.server.ts).
 */
export type PackageFiles = Pick<ReadonlyMap<string, Uint8Array>, "get" | "has" | "keys">;
