/** How a signer's printed name is kept without personal data in clear, both keyed by the subject's key. */
import { createHmac } from "node:crypto";

/** The name as it reaches the ledger: an HMAC under the subject key of the NFC-normalised, space-collapsed name. */
export const nameHmac = (key: Buffer, name: string) =>
  createHmac("sha256", key).update(name.normalize("NFC").trim().replace(/\s+/g, " ")).digest("hex");

/**
 * Printed names sit in the append-only consent_signatures table, so they are encrypted under a key derived from
 * the subject's key: destroying that key (the erasure procedure) shreds them without touching the rows.
 */
export const printedNameKey = (subjectKey: Buffer) =>
  createHmac("sha256", subjectKey).update("trialseal/consent-printed-name/v1").digest();
