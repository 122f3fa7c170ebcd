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

/** An imported version: the file and row it came from, and the source system's audit record as its claims. */
function MigratedFrom({ m }: { m: NonNullable<FieldHistory["changes"][number]["migrated"]> }) {
  return (
    <div className="migrated" data-migrated={m.job}>
      <p>
        Migrated from <strong>{m.fileName}</strong> (row {m.row}); the time above is our import time.{" "}
        <span className="muted">
          File SHA-256 <code title={m.fileSha256}>{m.fileSha256.slice(0, 12)}…</code>
        </span>
      </p>
      {m.claims ? (
        <p data-claims>
          <span className="muted">As claimed by the source system (not an account here):</span> user{" "}
          <code>{m.claims.user ?? "not given"}</code>, time <code>{m.claims.at ?? "not given"}</code> (as written in the
          file), reason for change: {m.claims.reason ?? "none given"}.
        </p>
      ) : (
        <p className="muted" data-claims="none">
          The file carries no audit record of the source system for this value.
        </p>
      )}
    </div>
  );
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
                <span className="badge">v{c.version}</span>{" "}
                {c.migrated ? <span className="badge">migrated</span> : null} <UtcAndLocal iso={c.at} />
                <br />
                <span className="muted">{c.migrated ? "imported by" : "by"}</span> <span data-who>{c.who}</span>
              </p>
              {c.migrated ? <MigratedFrom m={c.migrated} /> : null}
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
export function FieldValues({ fields, flags = {} }: { fields: FieldHistory[]; flags?: Record<string, string> }) {
  return (
    <ul className="field-values">
      {fields.map((f) => (
        <li
          key={f.field}
          data-value-of={f.field}
          id={`field-${f.field}`}
          className={flags[f.field] ? "queried" : undefined}
          data-flag={flags[f.field] ?? undefined}
        >
          <span className="field-label" id={`label-${f.field}`}>
            {f.label}
            {flags[f.field] ? <strong className="query-flag badge bad">{flags[f.field]}</strong> : null}
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
