/**
 * No CRF data before a complete consent (ADR 0021). A new record is refused (409, naming the participant and the
 * reason) unless the participant's consent is complete: signed and countersigned (or obtained on paper with its
 * scan sealed and attested by an investigator), to the current document version, not withdrawn. A study may allow
 * named forms before consent (pre-screening) in its settings. Corrections of existing records are not gated.
 */
import type { DbOrTx } from "../../db/client.ts";
import type { AppContext } from "../platform/context.server.ts";
import { ServiceError } from "../platform/errors.server.ts";
import { studySettingsOf } from "../studies/settings.server.ts";
import { consentStatus } from "./status.server.ts";

/** Why new data is refused, in words (null when it is allowed). */
export function consentGateReason(subject: string, st: { state: string; summary: string }): string | null {
  switch (st.state) {
    case "consented":
    case "partially_withdrawn":
      return null;
    case "none":
      return `subject ${subject} has not consented yet`;
    case "awaiting_countersign":
      return `subject ${subject}'s consent is awaiting countersignature (${st.summary})`;
    case "awaiting_attestation":
      return `subject ${subject}'s paper consent is awaiting an investigator's attestation (${st.summary})`;
    case "reconsent_needed":
      return `subject ${subject} must re-consent to the current document version (${st.summary})`;
    default:
      return `subject ${subject}'s consent is not complete (${st.summary})`;
  }
}

/**
 * Inside the record's transaction, after the study and participant rows are held FOR SHARE (a settings change takes
 * the study row FOR UPDATE, so the settings read here are the ones in force when the record commits).
 */
export async function assertConsentBeforeData(
  ctx: AppContext,
  tx: DbOrTx,
  o: { studyId: string; studyCode: string; participantId: string; subject: string; form: string },
) {
  const settings = await studySettingsOf(ctx, o.studyId, tx);
  if (settings.formsBeforeConsent.includes(o.form)) return;
  const st = await consentStatus(ctx, o.participantId, { db: tx });
  const reason = consentGateReason(o.subject, st);
  if (reason)
    throw new ServiceError(
      "conflict",
      `${reason}: no CRF data may be recorded before a complete consent ` +
        `(form ${o.form} is not allowed before consent in ${o.studyCode})`,
      "subject",
    );
}
