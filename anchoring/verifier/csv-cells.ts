/**
 * CSV cells (RFC 4180 quoting), defused against spreadsheet formula injection. Shared by the CSV export
 * (app/platform/csv.ts re-exports them) and the evidence package's CSV cross-check, which renders each sealed value
 * the same way and compares it with the file's cell.
 */

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

/** The rows of a CSV text as raw cells (quotes kept, so a cell compares byte for byte), each with its line. */
export function csvRawRows(text: string): { line: number; cells: string[] }[] {
  const rows: { line: number; cells: string[] }[] = [];
  let cells: string[] = [];
  let cell = "";
  let quoted = false;
  let line = 1;
  let rowLine = 1;
  const endRow = () => {
    cells.push(cell);
    rows.push({ line: rowLine, cells });
    cells = [];
    cell = "";
    line++;
    rowLine = line;
  };
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      cell += ch;
      if (ch === "\n") line++;
      if (ch === '"') {
        if (text[i + 1] === '"') {
          cell += '"';
          i++;
        } else quoted = false;
      }
    } else if (ch === '"') {
      quoted = true;
      cell += ch;
    } else if (ch === ",") {
      cells.push(cell);
      cell = "";
    } else if (ch === "\r" && text[i + 1] === "\n") {
      i++;
      endRow();
    } else if (ch === "\n") endRow();
    else cell += ch;
  }
  if (cell !== "" || cells.length) endRow();
  return rows;
}

/** A raw cell's text: unquoted, doubled quotes undone. */
export const csvUnquote = (raw: string) =>
  raw.length >= 2 && raw.startsWith('"') && raw.endsWith('"') ? raw.slice(1, -1).replace(/""/g, '"') : raw;
