/**
 * A read-only rendering of a CRF form definition exactly as data entry shows it (the entry form's own component,
 * disabled): sections, help, units, branching as for an empty entry, calculated fields, missing-data controls.
 * Live preview in the form editor.
 */
import { visibleFields } from "../../anchoring/forms/check-entry.ts";
import type { FormDefinition } from "../../anchoring/forms/definition.ts";
import { RecordFields } from "./record-fields.tsx";

export function FormPreview({ def }: { def: FormDefinition }) {
  let problem: string | null = null;
  try {
    visibleFields(def, {});
  } catch (err) {
    problem = err instanceof Error ? err.message : String(err);
  }
  return (
    <section className="preview" aria-label={`Preview of ${def.code} version ${def.version}`}>
      <h3>
        {def.title}{" "}
        <span className="muted">
          ({def.code} v{def.version}; visits {def.visits.join(", ")}
          {def.repeating ? "; repeating: one row per entry" : ""})
        </span>
      </h3>
      {problem ? (
        <p className="error">An expression of this form cannot be read: {problem}</p>
      ) : (
        <fieldset disabled className="preview-fields">
          {/* A new definition is a new form: its live state starts afresh. */}
          <RecordFields key={JSON.stringify(def)} def={def} summary={false} />
        </fieldset>
      )}
    </section>
  );
}
