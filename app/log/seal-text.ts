/**
 * An entry's proof status in words (the one wording of pages, PDFs and exports): pending, sealed in batch B
 * (seq N), anchored on ledgers L.
 */
export interface Seal {
  status: string;
  seq: number | null;
  batch: number | null;
  anchoredOn: string[];
  /** False when the data rows no longer match the sealed entry (app/records/seal-match.server.ts). */
  matchesSeal?: boolean;
}

/** The words for data whose rows no longer match their entry: never shown as sealed or anchored. */
export const MISMATCH_TEXT = "does not match its sealed entry";

export function sealText(seal: Seal): string {
  if (seal.matchesSeal === false) return MISMATCH_TEXT;
  if (seal.status !== "sealed") return "pending seal";
  const sealed = `sealed in batch ${seal.batch} (seq ${seal.seq})`;
  return seal.anchoredOn.length ? `${sealed}, anchored on ${seal.anchoredOn.join(", ")}` : sealed;
}
