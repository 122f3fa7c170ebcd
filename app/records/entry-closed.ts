/**
 * Why no new CRF data may be entered for a participant, in words for the participant page (null when entry is
 * open): a lock of the study, site or casebook, or a full withdrawal of consent. The services refuse such a save
 * anyway (assertUnlocked, assertConsentAllowsNewData); the page does not offer the form and says why.
 */
const LOCKED_WHAT: Record<string, string> = {
  study: "The study is locked",
  site: "The site is locked",
  subject: "This participant's casebook is locked",
};

export function entryClosedBecause(
  lock: { scope: string; reason: string } | null,
  fullWithdrawal: { withdrawnAt: Date } | undefined,
): string | null {
  if (lock && lock.scope !== "record")
    return (
      `${LOCKED_WHAT[lock.scope] ?? "This casebook is locked"} (${lock.reason}): no data can be entered or ` +
      "corrected until a data manager unlocks it."
    );
  if (fullWithdrawal)
    return (
      `The participant withdrew consent in full on ${fullWithdrawal.withdrawnAt.toISOString().slice(0, 10)}: no new ` +
      "data may be collected. Data collected before the withdrawal are kept and may still be corrected on each " +
      "record's page."
    );
  return null;
}
