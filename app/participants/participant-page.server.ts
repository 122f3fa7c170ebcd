/**
 * What the participant page shows beside the casebook (issue 18): the disposition, its history and the visit windows
 * of the schedule in force. Routes call this instead of reading the database (ADR 0010).
 */
import type { AppContext } from "../platform/context.server.ts";
import { participantVisitWindows, WINDOW_STATE_LABELS } from "../visit-schedule/visit-windows.server.ts";
import { currentSchedule } from "../visit-schedule/schedule.server.ts";
import { currentDisposition, dispositionHistory, NEEDS_REASON, TRANSITIONS } from "./disposition.server.ts";

/** The participant's disposition (current, allowed changes, history) and each scheduled visit's window and state. */
export async function participantProgress(ctx: AppContext, studyId: string, participantId: string) {
  const current = await currentDisposition(ctx.db, participantId);
  const history = await dispositionHistory(ctx.db, participantId);
  const windows = await participantVisitWindows(ctx.db, studyId, participantId);
  // A schedule that does not match its sealed entry is still shown, with the mismatch beside it (never hidden).
  const scheduleSealMismatch = (await currentSchedule(ctx.db, studyId))?.sealMismatch ?? null;
  return {
    scheduleSealMismatch,
    disposition: {
      current,
      allowed: [...TRANSITIONS[current]],
      needsReason: [...NEEDS_REASON],
      history: history.map((h) => ({ ...h, at: h.at.toISOString() })),
    },
    visits: windows.map((w) => ({ ...w, stateLabel: WINDOW_STATE_LABELS[w.state] })),
  };
}
