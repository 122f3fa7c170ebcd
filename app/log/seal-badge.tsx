import { sealText, type Seal } from "./seal-text.ts";

/** A ledger entry's proof status as a badge (data-seal: mismatch, pending, sealed or anchored). */
export function SealBadge({ seal }: { seal: Seal }) {
  const mismatch = seal.matchesSeal === false;
  const cls = mismatch
    ? "badge bad"
    : seal.status !== "sealed"
      ? "badge"
      : seal.anchoredOn.length
        ? "badge ok"
        : "badge";
  const state = mismatch
    ? "mismatch"
    : seal.status !== "sealed"
      ? "pending"
      : seal.anchoredOn.length
        ? "anchored"
        : "sealed";
  return (
    <span className={cls} data-seal={state}>
      {sealText(seal)}
    </span>
  );
}
