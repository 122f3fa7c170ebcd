/**
 * Turning an HTML form post into record values for a form definition (shared by the portal pages). Empty inputs
 * are left out (the schema then reports missing required fields); a number input that does not parse is kept
 * as its text so that validation names the field instead of silently dropping it.
 */
import type { FormDefinition } from "../../anchoring/forms/definition.ts";

export function valuesFromForm(
  def: FormDefinition,
  form: { get(name: string): unknown; getAll(name: string): unknown[] },
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of def.fields) {
    const key = `f_${f.name}`;
    if (f.type === "boolean") {
      const v = form.get(key);
      if (v === "true" || v === "false") out[f.name] = v === "true";
      continue;
    }
    if (f.type === "multichoice") {
      const all = form.getAll(key).map(String);
      if (all.length) out[f.name] = all;
      continue;
    }
    const raw = form.get(key);
    const text = typeof raw === "string" ? raw.trim() : "";
    if (text === "") continue;
    if (f.type === "number") {
      const n = Number(text);
      out[f.name] = /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text) && Number.isFinite(n) ? n : text;
    } else out[f.name] = text;
  }
  return out;
}
