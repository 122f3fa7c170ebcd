import { describe, expect, it } from "vitest";
import { CELL_STATES, recordState, worstState } from "./cell-state.ts";

const none = { locked: false, openQuery: false, incomplete: false, sdvDone: false, signed: false };

describe("subject matrix state precedence", () => {
  it("shows a complete, unsigned record as awaiting signature, or complete when no signature is expected", () => {
    expect(recordState(none)).toBe("awaiting_signature");
    expect(recordState({ ...none, signatureExpected: false })).toBe("complete");
  });
  it("ranks locked > open_query > incomplete > sdv_done > signed > awaiting_signature", () => {
    const all = { locked: true, openQuery: true, incomplete: true, sdvDone: true, signed: true };
    expect(recordState(all)).toBe("locked");
    expect(recordState({ ...all, locked: false })).toBe("open_query");
    expect(recordState({ ...all, locked: false, openQuery: false })).toBe("incomplete");
    expect(recordState({ ...none, sdvDone: true, signed: true })).toBe("sdv_done");
    expect(recordState({ ...none, signed: true })).toBe("signed");
  });
  it("gives a repeating form's cell the state of highest precedence among its rows, not_started for none", () => {
    expect(worstState([])).toBe("not_started");
    expect(worstState(["signed", "incomplete", "awaiting_signature"])).toBe("incomplete");
    expect(worstState(["complete", "locked"])).toBe("locked");
    expect(CELL_STATES[CELL_STATES.length - 1]).toBe("not_started");
  });
});
