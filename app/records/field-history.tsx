/**
 * The record page's values, each with its own history (issue 17): a disclosure per field (details/summary, so it
 * opens with the keyboard and is announced as expandable) listing every version where the value changed: version,
 * when (UTC and local), who, old -> new, the reason for change, and the seal state of that version's entry.
 */
import { SealBadge } from "../log/seal-badge.tsx";
import { UtcAndLocal } from "../ui/local-time.tsx";
import type { FieldHistory, HeldValue } from "./field-history.server.ts";

function Held({ value }: { value: HeldValue }) {
  return (
    <span className={value.kind === "value" ? "held" : "held muted"} data-held={value.kind}>
      {value.text}
    </span>
  );
}

function plural(n: number, one: string, many: string) {
  return `${n} ${n === 1 ? one : many}`;
}

function FieldHistoryList({ field }: { field: FieldHistory }) {
  const mismatched = field.mismatchedVersions;
  const versionWord = mismatched.length === 1 ? "Version" : "Versions";
  const mismatchedVersions = `${versionWord} ${mismatched.map((v) => `v${v}`).join(", ")}`;
  return (
    <>
      {mismatched.length ? (
        <p className="error" data-history-mismatch>
          {mismatchedVersions} of this record {mismatched.length === 1 ? "does" : "do"} not match{" "}
          {mismatched.length === 1 ? "its" : "their"} sealed entry: the values shown for{" "}
          {mismatched.length === 1 ? "it" : "them"} were changed outside TrialSeal, so this history may not be what was
          recorded. Run the integrity audit.
        </p>
      ) : null}
      {field.changes.length === 0 ? (
        <p className="muted">No value has been entered for this field in any version.</p>
      ) : (
        <ol className="changes">
          {field.changes.map((c) => (
            <li key={c.version} data-version={c.version}>
              <p className="change-head">
                <span className="badge">v{c.version}</span> <UtcAndLocal iso={c.at} />
                <br />
                <span className="muted">by</span> <span data-who>{c.who}</span>
              </p>
              <p className="change-values" data-change>
                <Held value={c.old} /> <span aria-hidden="true">→</span>
                <span className="visually-hidden"> changed to </span> <Held value={c.new} />
              </p>
              {c.new.kind === "missing" && c.new.reason ? (
                <p>
                  <span className="muted">Why the value is missing:</span> {c.new.reason}
                </p>
              ) : null}
              <p data-reason>
                {c.reason === null ? (
                  <span className="muted">First entry (no reason for change is asked).</span>
                ) : (
                  <>
                    <span className="muted">Reason for change:</span> {c.reason}
                  </>
                )}
              </p>
              <p className="change-seal">
                <span className="muted">Proof:</span> <SealBadge seal={c.seal} />
              </p>
            </li>
          ))}
        </ol>
      )}
    </>
  );
}

/** The current value of every field, each with its history behind a disclosure. */
export function FieldValues({ fields }: { fields: FieldHistory[] }) {
  return (
    <ul className="field-values">
      {fields.map((f) => (
        <li key={f.field} data-value-of={f.field}>
          <span className="field-label" id={`label-${f.field}`}>
            {f.label}
          </span>
          <span className="field-value">
            <Held value={f.current} />
            {f.current.kind === "missing" && f.current.reason ? (
              <span className="muted"> ({f.current.reason})</span>
            ) : null}
            {f.calculated ? <span className="badge">calculated</span> : null}
          </span>
          <details className="field-history" data-history={f.field}>
            <summary>
              History<span className="visually-hidden"> of {f.label}</span>{" "}
              <span className="muted">
                ({f.changes.length ? plural(f.changes.length, "change", "changes") : "no value yet"})
              </span>
              {f.changes.some((c) => c.seal.matchesSeal === false) ? (
                <span className="badge bad">a version does not match its sealed entry</span>
              ) : null}
            </summary>
            <FieldHistoryList field={f} />
          </details>
        </li>
      ))}
    </ul>
  );
}
