/** CSV cells (RFC 4180 quoting), defused against spreadsheet formula injection. */

/** A text cell: quoted; a leading = + - @ tab or CR gets a ' so spreadsheets do not run it as a formula. */
export function csvCell(v: unknown): string {
  let s =
    v === null || v === undefined
      ? ""
      : v instanceof Date
        ? v.toISOString()
        : typeof v === "object"
          ? JSON.stringify(v)
          : String(v);
  if (/^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return `"${s.replace(/"/g, '""')}"`;
}

/** A data cell: numbers stay numbers (a negative value is not a formula), everything else as csvCell. */
export function csvValue(v: unknown): string {
  return typeof v === "number" && Number.isFinite(v)
    ? JSON.stringify(v)
    : typeof v === "boolean"
      ? v
        ? "true"
        : "false"
      : csvCell(v);
}
