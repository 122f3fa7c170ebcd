/**
 * eConsent step 4: the person obtaining consent (delegated, re-authenticated) countersigns the participant's
 * signature, optionally with an impartial witness; each is a signature of its own (signatures.server.ts).
 */
import { eq } from "drizzle-orm";
import { z } from "zod";
import { consentDocuments } from "../../db/schema/index.ts";
import type { AppContext } from "../platform/context.server.ts";
import { ServiceError } from "../platform/errors.server.ts";
import type { Principal } from "../platform/permissions.server.ts";
import { audit } from "../audit-trail/record-event.server.ts";
import { reauthenticate, type RequestMeta } from "../accounts/auth.server.ts";
import { requireSiteAction } from "../studies/delegations.server.ts";
import { getStudyOrThrow } from "../studies/studies.server.ts";
import { participantBySubject } from "../participants/find-participant.server.ts";
import { signingKey, writeSignature } from "./signatures.server.ts";
import { consentStatus } from "./status.server.ts";

function invalid(message: string, field: string): never {
  throw new ServiceError("invalid", message, field);
}

export const CountersignInput = z.object({
  password: z.string().min(1, "enter your password"),
  code: z.string().trim().optional(),
  witnessName: z.string().trim().max(200).optional(),
});

export async function countersignConsent(
  ctx: AppContext,
  principal: Principal & { fullName?: string },
  studyCode: string,
  subject: string,
  input: unknown,
  meta: RequestMeta,
) {
  const r = CountersignInput.safeParse(input);
  if (!r.success)
    invalid(`${r.error.issues[0].path.join(".")}: ${r.error.issues[0].message}`, String(r.error.issues[0].path[0]));
  const study = await getStudyOrThrow(ctx, studyCode);
  const p = await participantBySubject(ctx, study.id, subject);
  if (!p) invalid(`subject: no subject ${subject}`, "subject");
  await requireSiteAction(ctx, principal, "consent.obtain", { studyId: study.id, siteId: p.siteId });
  const status = await consentStatus(ctx, p.id);
  const awaiting = [...status.signatures].reverse().find((s) => s.primary && !s.countersignedBy);
  if (!awaiting)
    throw new ServiceError("conflict", "there is no participant signature awaiting countersignature", "subject");
  const user = await reauthenticate(ctx, principal.userId!, r.data.password, r.data.code, meta);
  const key = signingKey(ctx, p);
  const [doc] = await ctx.db.select().from(consentDocuments).where(eq(consentDocuments.id, awaiting.documentId));
  const signedAt = new Date();
  return ctx.db.transaction(async (tx) => {
    const sign = (role: "staff" | "witness", printedName: string, userId: string | null) =>
      writeSignature(ctx, tx, {
        study,
        participant: p,
        document: doc,
        key,
        role,
        printedName,
        countersigns: awaiting.id,
        fromStaffDevice: true,
        actor: principal.userId,
        userId,
        invitationId: null,
        signedAt,
      });
    const { id } = await sign("staff", user.fullName, principal.userId);
    if (r.data.witnessName) await sign("witness", r.data.witnessName, null);
    await audit(tx, {
      action: "consent.countersign",
      actorUserId: principal.userId,
      actorLabel: principal.label,
      studyId: study.id,
      siteId: p.siteId,
      participantId: p.id,
      detail: { signature: id, countersigns: awaiting.id, witness: !!r.data.witnessName },
    });
    return { signature: id };
  });
}
