/**
 * Reading an import file (issue 18, ADR 0036): the entry point of the readers. It checks the size before anything
 * is parsed, decodes UTF-8 strictly and hands the text to the CSV or ODM reader. A file that cannot be read at all
 * throws UnusableFileError (one sentence; the CLI exits 2); anything else about the file is a problem with its row
 * and column in the result (the CLI exits 1 and imports nothing). No database: the writer resolves subjects.
 */
import { readCsvImport } from "./csv-import.ts";
import { type ParsedImport, type ReadImportInput, UnusableFileError } from "./import-rows.ts";
import { readOdmClinicalImport } from "./odm-clinical-import.ts";

/** The largest file an import reads (a CSV of 100,000 values is about 2 MB; an ODM file of them about 15 MB). */
export const IMPORT_MAX_BYTES = 64 * 1024 * 1024;

const mb = (n: number) => `${Math.round(n / 1024 / 1024)} MB`;

/** The file's text: strict UTF-8 (a byte-order mark taken off); anything else is unusable. */
function decode(bytes: Uint8Array, what: string): string {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    throw new UnusableFileError(
      `The file is not UTF-8 text: save the ${what} as UTF-8 (REDCap and spreadsheets offer "CSV UTF-8")`,
    );
  }
  if (text.includes("\u0000"))
    throw new UnusableFileError(`The file holds binary data (a NUL byte), not a ${what}: check that it is the export`);
  return text;
}

/** Read an import file into rows and problems; throws UnusableFileError for a file that cannot be read at all. */
export function readImport(input: ReadImportInput): ParsedImport {
  if (input.bytes.byteLength > IMPORT_MAX_BYTES)
    throw new UnusableFileError(
      `The file is ${mb(input.bytes.byteLength)}, larger than the ${mb(IMPORT_MAX_BYTES)} an import reads; ` +
        "split it into smaller files",
    );
  if (input.bytes.byteLength === 0) throw new UnusableFileError("The file is empty");
  if (input.forms.length === 0)
    throw new UnusableFileError("The study has no approved form: approve the forms before importing data");
  if (input.format === "csv") {
    const text = decode(input.bytes, "CSV file");
    if (/^\s*</.test(text.replace(/^\uFEFF/, "")))
      throw new UnusableFileError("The file is XML, not CSV: import it with --format odm");
    return readCsvImport(input, text);
  }
  const text = decode(input.bytes, "ODM file");
  if (!/^\s*</.test(text.replace(/^\uFEFF/, "")))
    throw new UnusableFileError("The file is not XML, so not CDISC ODM: for a CSV file use --format csv");
  return readOdmClinicalImport(input, text.replace(/^\uFEFF/, ""));
}

/** The format a file name suggests: `.xml`/`.odm` -> odm, anything else csv (the CLI's default for --format). */
export function formatOfFileName(fileName: string): "csv" | "odm" {
  return /\.(xml|odm)$/i.test(fileName) ? "odm" : "csv";
}
