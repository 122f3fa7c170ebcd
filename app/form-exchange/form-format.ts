/** The formats a file of form definitions may come in, and telling them apart. */
import { REDCAP_COLUMNS } from "./redcap-columns.ts";

export const FORM_FILE_FORMATS = ["json", "redcap", "odm"] as const;
export type FormFileFormat = (typeof FORM_FILE_FORMATS)[number];

/** The largest file of forms read (the CLI, the forms page): a REDCap dictionary of thousands of fields fits. */
export const FORM_FILE_MAX_BYTES = 1024 * 1024;

/** What a file of each format is called, and its media type (exports). */
export const FORM_FILE_TYPES: Record<FormFileFormat, { suffix: string; mediaType: string; label: string }> = {
  json: { suffix: "forms.json", mediaType: "application/json", label: "JSON (TrialSeal definitions)" },
  redcap: { suffix: "redcap-dictionary.csv", mediaType: "text/csv", label: "REDCap data dictionary (CSV)" },
  odm: { suffix: "odm-metadata.xml", mediaType: "application/xml", label: "CDISC ODM 1.3.2 metadata (XML)" },
};

/**
 * The format of a file of forms, from its content first (a JSON object or array; an XML document whose root is ODM;
 * REDCap's dictionary header), else from its name's extension; null when neither tells.
 */
export function detectFormFormat(text: string, fileName?: string): FormFileFormat | null {
  const start = text.replace(/^\uFEFF/, "").trimStart();
  if (start.startsWith("{") || start.startsWith("[")) return "json";
  if (start.startsWith("<")) {
    const root = /<(?:[A-Za-z_][\w.-]*:)?([A-Za-z_][\w.-]*)[\s>/]/.exec(
      start.replace(/<\?[\s\S]*?\?>|<!--[\s\S]*?-->|<![A-Z][^>]*>/g, "").trimStart(),
    );
    if (root?.[1] === "ODM") return "odm";
  }
  const firstCell = start
    .split(/[\r\n]/, 1)[0]
    .split(",", 1)[0]
    .replace(/"/g, "")
    .trim();
  if (firstCell.toLowerCase() === REDCAP_COLUMNS[0].toLowerCase()) return "redcap";
  const ext = /\.([A-Za-z0-9]+)$/.exec(fileName ?? "")?.[1]?.toLowerCase();
  if (ext === "json") return "json";
  if (ext === "xml" || ext === "odm") return "odm";
  if (ext === "csv") return "redcap";
  return null;
}
