/**
 * The state of one form at one visit of one participant in the subject matrix (ADR 0039), and the precedence when
 * several hold. Pure: shared by the server (computing and filtering) and the page (legend, icons, labels).
 */

/** The states, from the one that wins (first) to the one that loses (last) when several hold. */
export const CELL_STATES = [
  "locked",
  "open_query",
  "incomplete",
  "sdv_done",
  "signed",
  "awaiting_signature",
  "complete",
  "not_started",
] as const;
export type CellState = (typeof CELL_STATES)[number];

/** Short text and icon of each state: a state is never shown by its colour alone. */
export const STATE_LABELS: Record<CellState, { label: string; icon: string; help: string }> = {
  locked: { label: "Locked", icon: "⊠", help: "the record, its subject or the study is locked" },
  open_query: { label: "Open query", icon: "?", help: "a query is open or answered and not yet closed" },
  incomplete: { label: "Incomplete", icon: "◐", help: "a required field shown is empty and has no missing-data code" },
  sdv_done: { label: "SDV done", icon: "✔✔", help: "the current version is source-data verified" },
  signed: { label: "Signed", icon: "✍", help: "an investigator signed the current version" },
  awaiting_signature: { label: "Awaiting signature", icon: "✎", help: "complete; current version not yet signed" },
  complete: { label: "Complete", icon: "✓", help: "every required field holds a value or a missing-data code" },
  not_started: { label: "Not started", icon: "○", help: "no record yet: the link opens the entry form" },
};

/** What is known of one record (one row of a form at a visit). */
export interface RecordFacts {
  /** A lock on the record, its subject or the whole study is in force. */
  locked: boolean;
  /** A query on the record is open or answered (not closed). */
  openQuery: boolean;
  /** A required field shown (under the form as approved now) is empty and has no missing-data code. */
  incomplete: boolean;
  /** The current version carries an SDV mark. */
  sdvDone: boolean;
  /** An investigator signed the current version (a signature over an older version does not count). */
  signed: boolean;
  /** Whether the record is expected to be signed; every record of the portal is (default true). */
  signatureExpected?: boolean;
}

/**
 * The one state shown for a record. Precedence (first that holds wins):
 * locked > open_query > incomplete > sdv_done > signed > awaiting_signature > complete.
 * Locked wins because nothing can be done to a locked record; an open query is the next thing someone must act on;
 * an incomplete record needs data before anyone reviews it; SDV (the monitor's step) comes after the signature
 * in most SOPs but both are shown only for a complete record, SDV ranking higher as the later step.
 */
export function recordState(f: RecordFacts): Exclude<CellState, "not_started"> {
  if (f.locked) return "locked";
  if (f.openQuery) return "open_query";
  if (f.incomplete) return "incomplete";
  if (f.sdvDone) return "sdv_done";
  if (f.signed) return "signed";
  if (f.signatureExpected ?? true) return "awaiting_signature";
  return "complete";
}

/** The state of a cell holding several rows (a repeating form): the row state of highest precedence. */
export function worstState(states: readonly CellState[]): CellState {
  if (states.length === 0) return "not_started";
  return states.reduce((a, b) => (CELL_STATES.indexOf(a) <= CELL_STATES.indexOf(b) ? a : b));
}

export function isCellState(s: string): s is CellState {
  return (CELL_STATES as readonly string[]).includes(s);
}
