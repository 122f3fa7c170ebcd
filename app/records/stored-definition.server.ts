/**
 * A stored form version's parsed definition, parsed once per process: an approved version's text never changes
 * (forms are append-only); it is cached by row id and used only while the stored text is the same.
 */
import { parseFormDefinition, type FormDefinition } from "../../anchoring/forms/definition.ts";

const definitions = new Map<string, { text: string; def: FormDefinition }>();

export function storedDefinition(f: {
  id: string;
  code: string;
  version: number;
  definitionText: string;
}): FormDefinition {
  const hit = definitions.get(f.id);
  if (hit && hit.text === f.definitionText) return hit.def;
  const parsed = parseFormDefinition(JSON.parse(f.definitionText));
  if (!parsed.ok) throw new Error(`stored form ${f.code} v${f.version} no longer parses`);
  if (definitions.size > 1000) definitions.clear();
  definitions.set(f.id, { text: f.definitionText, def: parsed.definition });
  return parsed.definition;
}
