/**
 * The --map file of an import (issue 18, ADR 0036): JSON naming, beyond the case-insensitive matching done by
 * default, which of the file's forms, events and items (or columns) are which of ours:
 *
 *   { "forms": { "F_VITALSIGNS": "VITALS" },
 *     "visits": { "SE_BASELINE": "SCREENING", "SE_FOLLOWUP.2": "WEEK4" },
 *     "fields": { "VITALS": { "I_VITAL_SBP": "sbp" } } }
 *
 * A problem names the key it is at (`visits.SE_BASELINE`), so the person can find it in the file.
 */
import { z } from "zod";
import { UnusableFileError, type ImportMap } from "./import-rows.ts";

/** The largest --map file read. */
export const MAP_FILE_MAX_BYTES = 1024 * 1024;

const code = z.string().regex(/^[A-Z0-9][A-Z0-9_-]{0,31}$/i, "must be a form or visit code (letters, digits, - or _)");
const name = z.string().regex(/^[a-z][a-z0-9_]{0,63}$/i, "must be a field name (letters, digits and _)");
const key = z.string().min(1, "an empty name cannot be mapped").max(200);

export const ImportMapSchema = z.strictObject({
  forms: z.record(key, code).optional(),
  visits: z.record(key, code).optional(),
  fields: z.record(code, z.record(key, name)).optional(),
});

/** Read and check a --map file; an unreadable one is an UnusableFileError naming the key at fault. */
export function parseMapFile(bytes: Uint8Array | string, fileName = "the --map file"): ImportMap {
  if (typeof bytes !== "string" && bytes.byteLength > MAP_FILE_MAX_BYTES)
    throw new UnusableFileError(`${fileName} is larger than ${MAP_FILE_MAX_BYTES / 1024 / 1024} MB`);
  let json: unknown;
  try {
    json = JSON.parse(typeof bytes === "string" ? bytes : new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (err) {
    throw new UnusableFileError(`${fileName} is not JSON: ${(err as Error).message}`);
  }
  const r = ImportMapSchema.safeParse(json);
  if (r.success) {
    const out: ImportMap = {};
    if (r.data.forms)
      out.forms = Object.fromEntries(Object.entries(r.data.forms).map(([k, v]) => [k, v.toUpperCase()]));
    if (r.data.visits)
      out.visits = Object.fromEntries(Object.entries(r.data.visits).map(([k, v]) => [k, v.toUpperCase()]));
    if (r.data.fields)
      out.fields = Object.fromEntries(
        Object.entries(r.data.fields).map(([form, t]) => [
          form.toUpperCase(),
          Object.fromEntries(Object.entries(t).map(([k, v]) => [k, v.toLowerCase()])),
        ]),
      );
    return out;
  }
  const issue = r.error.issues[0];
  const at = issue.path.map(String).join(".") || "(the top level)";
  const message =
    issue.code === "unrecognized_keys"
      ? `unknown key ${issue.keys.join(", ")}: a map has only forms, visits and fields`
      : issue.code === "invalid_type"
        ? `must be ${issue.expected === "record" ? "an object of names" : issue.expected}`
        : issue.message;
  throw new UnusableFileError(`${fileName}, at ${at}: ${message}`);
}
