/**
 * Writing one consent signature, for the signer (signing.server.ts) and for the staff countersignature and
 * witness (countersigning.server.ts): the row and its `consent.signed` ledger entry, with the signature's meaning.
 */
import { toHex } from "../../anchoring/log/bytes.ts";
import { consentSignatures, type SignerRole } from "../../db/schema/index.ts";
import type { DbOrTx } from "../../db/client.ts";
import type { AppContext } from "../platform/context.server.ts";
import { refuseUnderDatabaseLock } from "../database-lock/refuse-under-lock.server.ts";
import { ServiceError } from "../platform/errors.server.ts";
import { appendEntry } from "../log/append-entry.server.ts";
import { encryptField } from "../participants/personal-data.server.ts";
import { subjectKey } from "../participants/decrypt-participant.server.ts";
import { tokenHash } from "../accounts/secret-tokens.server.ts";
import { nameHmac, printedNameKey } from "./printed-name.server.ts";

const MEANING: Record<SignerRole, string> = {
  participant: "I agree to take part in this study",
  lar: "As legally authorized representative, I agree to the participant taking part",
  parent: "As parent or guardian, I give permission for my child to take part",
  assent: "I agree to take part in this study (assent)",
  witness: "I witnessed the consent discussion and the participant's signature",
  staff: "I obtained this consent and answered the participant's questions",
};
export const signatureMeaning = (role: SignerRole) => MEANING[role];

/**
 * One signature row and its `consent.signed` ledger entry, in the caller's transaction. The printed name is
 * stored encrypted and reaches the ledger only as an HMAC under the subject's key.
 */
export async function writeSignature(
  ctx: AppContext,
  tx: DbOrTx,
  s: {
    study: { id: string; code: string };
    participant: { id: string; subjectCode: string };
    document: { id: string; code: string; version: string; bodySha256: Uint8Array };
    key: Buffer;
    role: SignerRole;
    printedName: string;
    countersigns: string | null;
    fromStaffDevice: boolean;
    actor: string | null;
    userId: string | null;
    invitationId: string | null;
    signedAt: Date;
    options?: Record<string, boolean>;
    publicToken?: string;
  },
) {
  // Consent is signed for data yet to be collected: not while the study database is locked (ADR 0054).
  await refuseUnderDatabaseLock(tx, s.study.id, "signing a consent");
  const id = crypto.randomUUID();
  const e = await appendEntry(tx, ctx.crypto, s.study, "consent.signed", {
    signature: id,
    subject: s.participant.subjectCode,
    document: s.document.code,
    version: s.document.version,
    documentSha256: toHex(s.document.bodySha256),
    signerRole: s.role,
    meaning: MEANING[s.role],
    nameHmac: nameHmac(s.key, s.printedName),
    options: s.options ?? {},
    countersigns: s.countersigns,
    fromStaffDevice: s.fromStaffDevice,
    actor: s.actor,
  });
  await tx.insert(consentSignatures).values({
    id,
    studyId: s.study.id,
    participantId: s.participant.id,
    documentId: s.document.id,
    signerRole: s.role,
    meaning: MEANING[s.role],
    printedNameEnc: encryptField(printedNameKey(s.key), s.printedName, `consent_signatures.printed_name:${id}`),
    userId: s.userId,
    fromStaffDevice: s.fromStaffDevice,
    options: s.options ?? {},
    signedAt: s.signedAt,
    entryId: e.id,
    invitationId: s.invitationId,
    countersigns: s.countersigns,
    publicTokenHash: s.publicToken ? tokenHash(ctx.crypto, s.publicToken) : null,
    publicTokenEnc: s.publicToken
      ? encryptField(ctx.env.dataKey, s.publicToken, `consent_signatures.public_token:${id}`)
      : null,
  });
  return { id, entryId: e.id };
}

/** The subject key a signature's name is kept under; once the participant's data were erased no consent is taken. */
export function signingKey(ctx: AppContext, p: { id: string; subjectKeyEnc: Uint8Array | null }): Buffer {
  const key = subjectKey(ctx, p);
  if (!key) throw new ServiceError("conflict", "this participant's personal data were erased; no consent can be taken");
  return key;
}
