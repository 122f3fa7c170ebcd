import { sealText, type Seal } from "./seal-text.ts";

/** A ledger entry's proof status as a badge (data-seal: pending, sealed or anchored). */
export function SealBadge({ seal }: { seal: Seal }) {
  const cls = seal.status !== "sealed" ? "badge" : seal.anchoredOn.length ? "badge ok" : "badge";
  const state = seal.status !== "sealed" ? "pending" : seal.anchoredOn.length ? "anchored" : "sealed";
  return (
    <span className={cls} data-seal={state}>
      {sealText(seal)}
    </span>
  );
}
