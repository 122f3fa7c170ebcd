/**
 * Reading a participant's secrets, stored under DATA_KEY (see personal-data.server.ts): the per-subject key and
 * the personal details. Both are gone once the participant's personal data were erased.
 */
import type { participants } from "../../db/schema/index.ts";
import type { AppContext } from "../platform/context.server.ts";
import { decryptField } from "./personal-data.server.ts";

/** The per-subject HMAC key (destroying it is the erasure procedure); null once erased. */
export function subjectKey(ctx: AppContext, p: { id: string; subjectKeyEnc: Uint8Array | null }): Buffer | null {
  if (!p.subjectKeyEnc) return null;
  return Buffer.from(decryptField(ctx.env.dataKey, p.subjectKeyEnc, `participants.subject_key:${p.id}`), "base64");
}

/** The participant's name, email and phone in clear (null where not recorded or erased). */
export function decryptParticipant(ctx: AppContext, p: typeof participants.$inferSelect) {
  const dec = (field: string, v: Uint8Array | null) =>
    v ? decryptField(ctx.env.dataKey, v, `participants.${field}:${p.id}`) : null;
  return { name: dec("name", p.nameEnc), email: dec("email", p.emailEnc), phone: dec("phone", p.phoneEnc) };
}
