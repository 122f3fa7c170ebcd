/**
 * Who used a participant's data (ADR 0067), as a plain list that reads on a phone: when, who (organisation, role and,
 * when the study shows them, the person), what and why. Shown on the participant's receipt page and, with the same
 * items, on the staff participant page. Each item says how it stands against the seal: sealed, waiting to be
 * sealed, or a visible warning that it does not match its sealed entry (never hidden).
 */
import type { AccessLogItem } from "./access-log.server.ts";

/** The seal state in words, as the participant reads it. */
export const SEAL_WORDS: Record<AccessLogItem["seal"], string> = {
  sealed: "sealed",
  pending: "waiting to be sealed",
  mismatch: "does not match its sealed entry",
};

const when = (iso: string) =>
  new Date(iso).toLocaleString("en-GB", {
    day: "numeric",
    month: "long",
    year: "numeric",
    hour: "2-digit",
    minute: "2-digit",
    timeZone: "UTC",
    timeZoneName: "short",
  });

export function AccessLogView({
  items,
  empty = "No one has used your data yet.",
}: {
  items: AccessLogItem[];
  empty?: string;
}) {
  if (items.length === 0)
    return (
      <p className="access-log-empty" data-testid="access-log-empty">
        {empty}
      </p>
    );
  return (
    <ul className="access-log" data-testid="access-log" style={{ listStyle: "none", padding: 0, margin: 0 }}>
      {items.map((i) => (
        <li
          key={`${i.at}|${i.entryId ?? ""}|${i.words}`}
          data-what={i.what}
          style={{ borderBottom: "1px solid #ddd", padding: "0.6rem 0", overflowWrap: "anywhere" }}
        >
          <div>
            <time dateTime={i.at} style={{ fontSize: "0.9em", color: "#555" }}>
              {when(i.at)}
            </time>
          </div>
          <div>
            <strong>Who:</strong> {i.organisation}, {i.role}
            {i.person ? ` (${i.person})` : ""}
          </div>
          <div>
            {i.words.charAt(0).toUpperCase()}
            {i.words.slice(1)}.
          </div>
          <div style={{ fontSize: "0.9em" }}>
            What: {i.what}
            {i.purpose ? <> · Why: {i.purpose}</> : null}
          </div>
          {i.seal === "mismatch" ? (
            <div role="alert" className="badge bad" data-seal="mismatch" style={{ fontWeight: "bold" }}>
              Warning: this record {SEAL_WORDS.mismatch}: it may have been changed after it was written.
            </div>
          ) : (
            <div style={{ fontSize: "0.9em", color: "#555" }} data-seal={i.seal}>
              Record of this use: {SEAL_WORDS[i.seal]}
            </div>
          )}
        </li>
      ))}
    </ul>
  );
}
