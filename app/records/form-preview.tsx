/** A read-only rendering of a CRF form definition, as data entry will show it (live preview in the editor). */
import { isRequired, type FormDefinition } from "../../anchoring/forms/definition.ts";

export function FormPreview({ def }: { def: FormDefinition }) {
  return (
    <section className="preview" aria-label={`Preview of ${def.code} version ${def.version}`}>
      <h3>
        {def.title}{" "}
        <span className="muted">
          ({def.code} v{def.version}; visits {def.visits.join(", ")})
        </span>
      </h3>
      {def.fields.map((f) => {
        const id = `preview-${f.name}`;
        const label = (
          <label key="label" htmlFor={id}>
            {f.label}
            {isRequired(f) ? " *" : ""}
            {f.type === "number" && f.unit ? <span className="muted"> ({f.unit})</span> : null}
          </label>
        );
        switch (f.type) {
          case "choice":
            return (
              <div key={f.name}>
                {label}
                <select id={id} disabled>
                  {f.options.map((o) => (
                    <option key={o.value}>{o.label}</option>
                  ))}
                </select>
              </div>
            );
          case "multichoice":
            return (
              <fieldset key={f.name}>
                <legend>{f.label}</legend>
                {f.options.map((o) => (
                  <label key={o.value} className="inline">
                    <input type="checkbox" disabled /> {o.label}
                  </label>
                ))}
              </fieldset>
            );
          case "boolean":
            return (
              <div key={f.name}>
                <label className="inline">
                  <input id={id} type="checkbox" disabled /> {f.label}
                </label>
              </div>
            );
          default:
            return (
              <div key={f.name}>
                {label}
                <input
                  id={id}
                  disabled
                  type={
                    f.type === "number"
                      ? "number"
                      : f.type === "date"
                        ? "date"
                        : f.type === "datetime"
                          ? "datetime-local"
                          : "text"
                  }
                  placeholder={
                    f.type === "number" && (f.min !== undefined || f.max !== undefined)
                      ? `${f.min ?? ""}–${f.max ?? ""}`
                      : undefined
                  }
                />
              </div>
            );
        }
      })}
    </section>
  );
}
