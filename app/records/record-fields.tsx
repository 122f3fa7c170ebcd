/** The inputs of a CRF form for entry and correction, with each field's validation message beside it. */
import { isRequired, type FormDefinition } from "../../anchoring/forms/definition.ts";

export function RecordFields({
  def,
  values,
  error,
}: {
  def: FormDefinition;
  values?: Record<string, unknown>;
  error?: { field: string | null; message: string } | null;
}) {
  return (
    <>
      {def.fields.map((f) => {
        const id = `f_${f.name}`;
        const bad = error?.field === `data.${f.name}`;
        const v = values?.[f.name];
        const msg = bad ? (
          <p key="error" className="error" id={`${id}-error`} role="alert">
            {error!.message}
          </p>
        ) : null;
        const label = (
          <label key="label" htmlFor={id}>
            {f.label}
            {isRequired(f) ? " *" : ""}
            {f.type === "number" && f.unit ? <span className="muted"> ({f.unit})</span> : null}
          </label>
        );
        const common = {
          id,
          name: id,
          "aria-invalid": bad || undefined,
          "aria-describedby": bad ? `${id}-error` : undefined,
        };
        switch (f.type) {
          case "choice":
            return (
              <div key={f.name}>
                {label}
                <select {...common} defaultValue={typeof v === "string" ? v : ""}>
                  <option value="">-</option>
                  {f.options.map((o) => (
                    <option key={o.value} value={o.value}>
                      {o.label}
                    </option>
                  ))}
                </select>
                {msg}
              </div>
            );
          case "multichoice":
            return (
              <fieldset key={f.name} aria-invalid={bad || undefined}>
                <legend>{f.label}</legend>
                {f.options.map((o) => (
                  <label key={o.value} className="inline">
                    <input
                      type="checkbox"
                      name={id}
                      value={o.value}
                      defaultChecked={Array.isArray(v) && v.includes(o.value)}
                    />{" "}
                    {o.label}
                  </label>
                ))}
                {msg}
              </fieldset>
            );
          case "boolean":
            return (
              <div key={f.name}>
                {label}
                <select {...common} defaultValue={v === true ? "true" : v === false ? "false" : ""}>
                  <option value="">-</option>
                  <option value="true">Yes</option>
                  <option value="false">No</option>
                </select>
                {msg}
              </div>
            );
          default:
            return (
              <div key={f.name}>
                {label}
                <input
                  {...common}
                  type={f.type === "date" ? "date" : "text"}
                  inputMode={f.type === "number" ? "decimal" : undefined}
                  defaultValue={v === undefined || v === null ? "" : String(v)}
                  placeholder={f.type === "datetime" ? "2026-03-01T09:30:00Z" : undefined}
                />
                {msg}
              </div>
            );
        }
      })}
    </>
  );
}
