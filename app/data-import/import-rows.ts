/**
 * The shape every import format is read into (issue 18): one row per record version to write, whatever the file
 * (a CSV line, an ODM ItemGroupData). The reader (csv-import / odm-clinical-import) maps names to codes and checks
 * values as entry does; the writer (import-writer.server.ts) seals each row as a record.saved v4 version.
 */

/** Where in the file a problem or a value is: a 1-based row (CSV line, or ODM ItemGroupData ordinal) and a column. */
export interface ImportProblem {
  row: number;
  /** The CSV column header or ODM ItemOID; null for a problem of the whole row. */
  column: string | null;
  message: string;
}

/** The source system's own audit record of a value (ODM AuditRecord): its claims, not our accounts. */
export interface SourceClaims {
  user: string | null;
  /** As written in the file (ODM DateTimeStamp). */
  at: string | null;
  reason: string | null;
}

export interface ImportRow {
  /** 1-based position in the file, as in problems (and sealed in the payload's source.row). */
  row: number;
  subject: string;
  /** Our visit code (mapped). */
  visit: string;
  /** Our form code (mapped). */
  form: string;
  /** The row of a repeating form (1 otherwise). */
  instance: number;
  /**
   * Values per field name, converted from the file's text by the field's type exactly as entry converts a form's
   * text (numbers, dates, choices), and already checked as entry checks them; empty cells left out.
   */
  values: Record<string, unknown>;
  /** Missing-data codes the file gives for a field (e.g. REDCap's missing codes), with a reason. */
  missing: Record<string, { code: string; reason: string }>;
  claims: SourceClaims | null;
}

/** The --map file: names in the file to our codes, beyond the case-insensitive matching done by default. */
export interface ImportMap {
  forms?: Record<string, string>;
  visits?: Record<string, string>;
  fields?: Record<string, Record<string, string>>;
}

export interface ParsedImport {
  format: "csv" | "odm";
  rows: ImportRow[];
  problems: ImportProblem[];
  /** The file's columns mapped to field names (the mapping preview): file column -> our field (null: unmapped). */
  mapping: { column: string; form: string | null; field: string | null; note?: string }[];
  /**
   * What the reader left out on purpose, in a sentence each (ADR 0036): the source system's e-signatures, REDCap's
   * form status columns, a file without values. Shown with the preview; never a reason to refuse the file.
   */
  notes?: string[];
}

/**
 * What the reader (readImport in read-import.ts) is given: the file, its format, the form a CSV holds, the --map
 * file, and the study's approved forms (latest version of each) and visit codes. It needs no database; the writer
 * resolves subjects, records and locks and reports those problems with the same row numbers.
 */
export interface ReadImportInput {
  bytes: Uint8Array;
  fileName: string;
  format: "csv" | "odm";
  formCode: string | null;
  map: ImportMap | null;
  forms: { code: string; version: number; definition: import("../../anchoring/forms/definition.ts").FormDefinition }[];
  visits: string[];
  /** The IANA zone in which a date and time without an offset in the file is read (default UTC). */
  timeZone?: string;
}

/** A file that cannot be read at all (not CSV, not XML, no subject column): exit code 2, nothing imported. */
export class UnusableFileError extends Error {
  readonly code = "IMPORT_FILE_UNUSABLE";
}
