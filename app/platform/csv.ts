/**
 * CSV cells (RFC 4180 quoting), defused against spreadsheet formula injection. Defined in the core
 * (anchoring/verifier/csv-cells.ts) because the evidence package's check renders sealed values the same way.
 */
export { csvCell, csvValue } from "../../anchoring/verifier/csv-cells.ts";
