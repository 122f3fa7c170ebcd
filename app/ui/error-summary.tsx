/**
 * Every problem of a refused form at once, above the form (or next to its button): "2 problems to fix", each a
 * link to its field. After a failed save it receives focus and scrolls into view, so a phone user sees it and a
 * screen reader reads it; each field shows its own message too (`FieldError`, with aria-invalid and
 * aria-describedby on the input).
 */
import { useEffect, useRef } from "react";

export interface ShownProblem {
  /** The element id a link goes to ("f_sbp"); null for a problem of the whole form. */
  target: string | null;
  message: string;
  kind?: "error" | "confirm";
}

/** Focus a problem's field; when that input is disabled (a missing-data code chosen), the field's first enabled one. */
function focusTarget(id: string) {
  let el = document.getElementById(id) as HTMLElement | null;
  if (!el) return;
  if ((el as HTMLInputElement).disabled) {
    const other = el
      .closest("[data-field]")
      ?.querySelector<HTMLElement>("input:not([disabled]), select:not([disabled]), textarea:not([disabled])");
    if (other) el = other;
  }
  el.scrollIntoView({ block: "center" });
  el.focus({ preventScroll: true });
}

export function ErrorSummary({
  problems,
  id = "error-summary",
  title,
  note,
}: {
  problems: ShownProblem[];
  id?: string;
  /** The heading; default "1 problem to fix" / "N problems to fix" / "Please check N values". */
  title?: string;
  /** A sentence under the heading (what happens when confirmed values are saved). */
  note?: string;
}) {
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (problems.length === 0 || !ref.current) return;
    ref.current.scrollIntoView({ block: "start" });
    ref.current.focus({ preventScroll: true });
  }, [problems]);
  if (problems.length === 0) return null;
  const errors = problems.filter((p) => p.kind !== "confirm").length;
  const confirms = problems.length - errors;
  const heading =
    title ??
    [
      errors ? `${errors} ${errors === 1 ? "problem" : "problems"} to fix` : "",
      confirms ? `${confirms} ${confirms === 1 ? "value" : "values"} to check and confirm` : "",
    ]
      .filter(Boolean)
      .join(", ");
  return (
    <div
      ref={ref}
      id={id}
      className={errors === 0 ? "error-summary confirm-only" : "error-summary"}
      role="alert"
      tabIndex={-1}
      aria-labelledby={`${id}-title`}
      data-problems={problems.length}
    >
      <h2 id={`${id}-title`}>{heading}</h2>
      {note ? <p>{note}</p> : null}
      <ul>
        {problems.map((p) => (
          <li key={`${p.target ?? ""}:${p.message}`} data-kind={p.kind ?? "error"}>
            {p.target ? (
              <a
                href={`#${p.target}`}
                onClick={(e) => {
                  e.preventDefault();
                  focusTarget(p.target!);
                }}
              >
                {p.message}
              </a>
            ) : (
              p.message
            )}
          </li>
        ))}
      </ul>
    </div>
  );
}

/** A field's own message, referenced by its input's aria-describedby (`${target}-error`). */
export function FieldError({ target, message, kind }: { target: string; message: string; kind?: string }) {
  return (
    <p className={kind === "confirm" ? "field-error confirm" : "field-error"} id={`${target}-error`}>
      {message}
    </p>
  );
}
