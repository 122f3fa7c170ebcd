/**
 * The inputs of a CRF form for entry and correction: section headers, help text, units with their human labels,
 * inputs sized to their content, date pickers, datetime as a date plus a time on the site's clock, branching and
 * calculations live in the browser (the same check-entry code the server runs; the server's result is
 * authoritative), a "Value missing?" control on fields that allow missing-data codes, and a confirmation box for a
 * value outside its expected range. Every problem of a refused save is listed at the top (ErrorSummary, focused)
 * and shown at its field (aria-invalid, aria-describedby).
 *
 * Post names (read back by form-values.ts): `f_<name>` the value (a datetime's date), `ft_<name>` a datetime's
 * time, `m_<name>` / `mr_<name>` a missing-data code and its reason, `confirm_<name>` a confirmation. Hidden fields
 * sit in a disabled, hidden fieldset, so they are neither shown nor posted.
 */
import { useCallback, useMemo, useRef, useState } from "react";
import {
  type FieldDefinition,
  type FormDefinition,
  isRequired,
  MISSING_CODE_LABELS,
} from "../../anchoring/forms/definition.ts";
import { computeCalculations, visibleFields } from "../../anchoring/forms/check-entry.ts";
import { unitLabel } from "../../anchoring/forms/units.ts";
import { ErrorSummary, FieldError, type ShownProblem } from "../ui/error-summary.tsx";
import { entryFromForm, type FormPost, rfc3339ToZoned } from "./form-values.ts";

export interface FieldProblem {
  /** As the service names it: "data.sbp". */
  field: string | null;
  message: string;
  kind?: "error" | "confirm";
}

/** The raw inputs of a post (what the person typed), to show back after a refused save. */
export type Posted = Record<string, string | string[]>;

/** The entry-form inputs of a form post, kept as typed (files and other inputs left out). */
export function postedInputs(form: { entries(): Iterable<[string, unknown]> }): Posted {
  const out: Posted = {};
  for (const [k, v] of form.entries()) {
    if (typeof v !== "string" || !/^(f|ft|m|mr|confirm)_[a-z][a-z0-9_]{0,63}$/.test(k)) continue;
    const prev = out[k];
    out[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
  }
  return out;
}

function postOf(p: Posted): FormPost {
  return {
    get: (k) => (Array.isArray(p[k]) ? (p[k] as string[])[0] : (p[k] ?? null)),
    getAll: (k) => (p[k] === undefined ? [] : Array.isArray(p[k]) ? (p[k] as string[]) : [p[k] as string]),
  };
}

/** The element a problem's link goes to: the field's first input (a correction's reason: its input, `#reason`). */
export function problemTarget(field: string | null): string | null {
  if (field === "reason") return "reason";
  const m = /^data\.([a-z][a-z0-9_]{0,63})/.exec(field ?? "");
  return m ? `f_${m[1]}` : null;
}

const CONFIRM_NOTE =
  "A value outside its expected range is saved once you tick “I confirm this value”; saving then opens a query " +
  "on it automatically, so that a monitor checks it against the source.";

/** The inputs of a post as they were when the page was shown: from a refused post, else from stored values. */
function initialPosted(
  def: FormDefinition,
  values: Record<string, unknown> | undefined,
  missing: Record<string, { code: string; reason: string }> | undefined,
  timeZone: string,
): Posted {
  const out: Posted = {};
  for (const f of def.fields) {
    const m = missing?.[f.name];
    if (m) {
      out[`m_${f.name}`] = m.code;
      out[`mr_${f.name}`] = m.reason;
    }
    const v = values?.[f.name];
    if (v === undefined || v === null) continue;
    if (f.type === "multichoice" && Array.isArray(v)) out[`f_${f.name}`] = v.map(String);
    else if (f.type === "boolean") out[`f_${f.name}`] = v === true ? "true" : v === false ? "false" : String(v);
    else if (f.type === "datetime" && typeof v === "string") {
      const z = rfc3339ToZoned(v, timeZone);
      out[`f_${f.name}`] = z ? z.date : v;
      if (z) out[`ft_${f.name}`] = z.time;
    } else out[`f_${f.name}`] = String(v);
  }
  return out;
}

/** What branching and calculations see: the typed values of a post (missing codes and unreadable values aside). */
function liveState(def: FormDefinition, post: FormPost, timeZone: string, locale: string | undefined) {
  const e = entryFromForm(def, post, { timeZone, locale });
  const typed: Record<string, unknown> = {};
  const unread = new Set(e.problems.map((p) => p.field.slice(5)));
  for (const [k, v] of Object.entries(e.data)) if (!unread.has(k)) typed[k] = v;
  const missingChosen = new Set(Object.keys(e.missing));
  return {
    visible: visibleFields(def, typed),
    calculated: computeCalculations(def, typed),
    missingChosen,
  };
}

function textSize(f: FieldDefinition): number | undefined {
  if (f.type !== "text" || f.maxLength === undefined || f.maxLength > 40) return undefined;
  return Math.max(4, f.maxLength + 1);
}

export function RecordFields({
  def,
  values,
  missing,
  posted,
  problems,
  error,
  calculated: serverCalculated,
  timeZone = "UTC",
  today,
  summary = true,
}: {
  def: FormDefinition;
  /** Stored values (a correction starts from the current version). */
  values?: Record<string, unknown>;
  missing?: Record<string, { code: string; reason: string }>;
  /** The raw inputs of a refused post: shown back as typed. */
  posted?: Posted | null;
  /** Every problem of a refused save. */
  problems?: FieldProblem[] | null;
  /** A single problem (pages that have only `error` and `field`). */
  error?: { field: string | null; message: string } | null;
  /** The calculated values the server stored (shown until an input changes). */
  calculated?: Record<string, number | null> | null;
  /** The site's IANA time zone: datetimes are entered and shown on its clock. */
  timeZone?: string;
  /** Today on the site's clock (YYYY-MM-DD): the latest day a `notFuture` date picker offers. */
  today?: string;
  /** List the problems at the top (default); false when the page lists them itself. */
  summary?: boolean;
}) {
  const start = useMemo(
    () => posted ?? initialPosted(def, values, missing, timeZone),
    [posted, def, values, missing, timeZone],
  );
  const [live, setLive] = useState(() => liveState(def, postOf(start), timeZone, undefined));
  const [edited, setEdited] = useState(false);
  const root = useRef<HTMLDivElement>(null);
  const refresh = useCallback(() => {
    const form = root.current?.closest("form");
    if (!form) return;
    setLive(liveState(def, new FormData(form), timeZone, navigator.language));
    setEdited(true);
  }, [def, timeZone]);

  const all: FieldProblem[] = problems?.length ? problems : error ? [error] : [];
  const byField = new Map<string, FieldProblem>();
  for (const p of all) {
    const t = problemTarget(p.field);
    if (t && !byField.has(t)) byField.set(t, p);
  }
  const shown: ShownProblem[] = all.map((p) => ({
    target: problemTarget(p.field),
    message: p.message,
    kind: p.kind,
  }));
  const one = (k: string) => {
    const v = start[k];
    return Array.isArray(v) ? v[0] : v;
  };
  const sectionTitle = new Map((def.sections ?? []).map((s) => [s.name, s.title]));
  const sectionShown = (name: string) => def.fields.some((f) => f.section === name && live.visible.has(f.name));
  let lastSection: string | undefined;

  return (
    <div className="crf" ref={root} onChange={refresh} onInput={refresh}>
      {summary ? (
        <ErrorSummary problems={shown} note={all.some((p) => p.kind === "confirm") ? CONFIRM_NOTE : undefined} />
      ) : null}
      {def.fields.map((f) => {
        const id = `f_${f.name}`;
        const problem = byField.get(id);
        const visible = live.visible.has(f.name);
        const header =
          f.section !== undefined && f.section !== lastSection ? (
            <h3 className="crf-section" hidden={!sectionShown(f.section)} data-section={f.section}>
              {sectionTitle.get(f.section)}
            </h3>
          ) : null;
        lastSection = f.section;
        const describedBy =
          [problem ? `${id}-error` : "", f.help ? `${id}-help` : ""].filter(Boolean).join(" ") || undefined;
        const missingChosen = live.missingChosen.has(f.name);
        const common = {
          id,
          name: id,
          "aria-invalid": problem?.kind !== "confirm" && problem ? true : undefined,
          "aria-describedby": describedBy,
          disabled: missingChosen || undefined,
        };
        const unit = "unit" in f && f.unit ? <span className="unit">{unitLabel(f.unit)}</span> : null;
        const label = (
          <label htmlFor={id}>
            {f.label}
            {isRequired(f) ? " *" : ""}
          </label>
        );
        let input: React.ReactNode;
        switch (f.type) {
          case "calc": {
            const v = !edited && serverCalculated && f.name in serverCalculated ? serverCalculated[f.name] : null;
            const value = edited || !serverCalculated ? live.calculated[f.name] : v;
            input = (
              <p className="calc">
                <output id={id} aria-describedby={describedBy} data-calc={f.name}>
                  {value === null || value === undefined ? "–" : String(value)}
                </output>{" "}
                {unit} <span className="muted">(calculated)</span>
              </p>
            );
            break;
          }
          case "choice":
            input = (
              <select {...common} defaultValue={one(id) ?? ""}>
                <option value="">–</option>
                {f.options.map((o) => (
                  <option key={o.value} value={o.value}>
                    {o.label}
                  </option>
                ))}
              </select>
            );
            break;
          case "boolean":
            input = (
              <select {...common} defaultValue={one(id) ?? ""}>
                <option value="">–</option>
                <option value="true">Yes</option>
                <option value="false">No</option>
              </select>
            );
            break;
          case "multichoice": {
            const chosen = start[id] === undefined ? [] : ([] as string[]).concat(start[id]);
            input = (
              <div className="choices" aria-describedby={describedBy}>
                {f.options.map((o, i) => (
                  <label key={o.value} className="inline">
                    <input
                      type="checkbox"
                      id={i === 0 ? id : `${id}__${i}`}
                      name={id}
                      value={o.value}
                      defaultChecked={chosen.includes(o.value)}
                      disabled={missingChosen || undefined}
                    />{" "}
                    {o.label}
                  </label>
                ))}
              </div>
            );
            break;
          }
          case "date":
            input = (
              <input {...common} type="date" defaultValue={one(id) ?? ""} max={f.notFuture ? today : undefined} />
            );
            break;
          case "datetime":
            input = (
              <span className="datetime">
                <input
                  {...common}
                  type="date"
                  aria-label={`${f.label}: date`}
                  defaultValue={one(id) ?? ""}
                  max={f.notFuture ? today : undefined}
                />{" "}
                <input
                  id={`ft_${f.name}`}
                  name={`ft_${f.name}`}
                  type="time"
                  aria-label={`${f.label}: time`}
                  aria-invalid={common["aria-invalid"]}
                  disabled={common.disabled}
                  defaultValue={one(`ft_${f.name}`) ?? ""}
                />{" "}
                <span className="muted">site time ({timeZone})</span>
              </span>
            );
            break;
          case "number":
            input = (
              <span className="with-unit">
                <input
                  {...common}
                  type="text"
                  className="num"
                  inputMode={f.integer ? "numeric" : "decimal"}
                  autoComplete="off"
                  size={8}
                  defaultValue={one(id) ?? ""}
                />{" "}
                {unit}
              </span>
            );
            break;
          case "text":
            input =
              f.maxLength !== undefined && f.maxLength > 200 ? (
                <textarea {...common} className="text" rows={3} maxLength={f.maxLength} defaultValue={one(id) ?? ""} />
              ) : (
                <input
                  {...common}
                  type="text"
                  size={textSize(f)}
                  className={textSize(f) ? "short" : undefined}
                  maxLength={f.maxLength}
                  defaultValue={one(id) ?? ""}
                />
              );
            break;
        }
        const confirmBox =
          problem?.kind === "confirm" || one(`confirm_${f.name}`) ? (
            <label className="ack confirm">
              <input
                type="checkbox"
                name={`confirm_${f.name}`}
                id={`confirm_${f.name}`}
                defaultChecked={Boolean(one(`confirm_${f.name}`))}
              />{" "}
              I confirm this value (a query will be opened on it automatically)
            </label>
          ) : null;
        const missingControl =
          f.type !== "calc" && f.missingCodes?.length ? (
            <div className="missing">
              <label htmlFor={`m_${f.name}`} className="inline-label">
                Value missing?
              </label>{" "}
              <select id={`m_${f.name}`} name={`m_${f.name}`} defaultValue={one(`m_${f.name}`) ?? ""}>
                <option value="">No, a value is entered</option>
                {f.missingCodes.map((c) => (
                  <option key={c} value={c}>
                    {MISSING_CODE_LABELS[c]} ({c})
                  </option>
                ))}
              </select>
              {missingChosen ? (
                <>
                  <label htmlFor={`mr_${f.name}`}>Why is {f.label} missing?</label>
                  <input
                    id={`mr_${f.name}`}
                    name={`mr_${f.name}`}
                    type="text"
                    defaultValue={one(`mr_${f.name}`) ?? ""}
                  />
                </>
              ) : null}
            </div>
          ) : null;
        return (
          <div key={f.name} className="crf-item">
            {header}
            <fieldset
              className={problem ? `field ${problem.kind === "confirm" ? "confirm" : "invalid"}` : "field"}
              data-field={f.name}
              hidden={!visible}
              disabled={!visible || undefined}
            >
              {f.type === "multichoice" ? (
                <legend>
                  {f.label}
                  {isRequired(f) ? " *" : ""}
                </legend>
              ) : (
                label
              )}
              {f.help ? (
                <p className="help muted" id={`${id}-help`}>
                  {f.help}
                </p>
              ) : null}
              {problem ? <FieldError target={id} message={problem.message} kind={problem.kind} /> : null}
              {input}
              {confirmBox}
              {missingControl}
            </fieldset>
          </div>
        );
      })}
    </div>
  );
}
