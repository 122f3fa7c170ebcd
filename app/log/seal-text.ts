/**
 * An entry's proof status in words (the one wording of pages, PDFs and exports): pending, sealed in batch B
 * (seq N), anchored on ledgers L.
 */
export interface Seal {
  status: string;
  seq: number | null;
  batch: number | null;
  anchoredOn: string[];
}

export function sealText(seal: Seal): string {
  if (seal.status !== "sealed") return "pending seal";
  const sealed = `sealed in batch ${seal.batch} (seq ${seal.seq})`;
  return seal.anchoredOn.length ? `${sealed}, anchored on ${seal.anchoredOn.join(", ")}` : sealed;
}
