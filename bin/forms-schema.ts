/**
 * Write docs/forms.schema.json, the JSON Schema of the form definition format, from the zod schema:
 * `npx tsx bin/forms-schema.ts` (after any change to anchoring/forms/definition.ts; a unit test fails until then).
 * `--check` exits 1 when the committed file is not what would be written.
 */
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { formDefinitionJsonSchemaText } from "../anchoring/forms/json-schema.ts";

const file = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "docs", "forms.schema.json");
const text = formDefinitionJsonSchemaText();
if (process.argv.includes("--check")) {
  let current = "";
  try {
    current = readFileSync(file, "utf8");
  } catch {
    // no file yet: out of date
  }
  if (current !== text) {
    console.error("docs/forms.schema.json is out of date: run npx tsx bin/forms-schema.ts");
    process.exit(1);
  }
  console.log("docs/forms.schema.json is up to date");
} else {
  writeFileSync(file, text);
  console.log(`wrote ${path.relative(process.cwd(), file)}`);
}
