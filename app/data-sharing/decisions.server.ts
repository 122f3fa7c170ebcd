/**
 * The data access committee's decision on a data-use request (issue 22, ADR 0068): approved (with how many days a
 * delivery stays downloadable, 1-365) or declined, always with a reason; once per request (a unique row, so two
 * members deciding at the same moment get one decision and one "already decided"). A member of the committee never
 * decides a request they made themselves. The decision row and its `data_use.decided` entry (the reason as a salted
 * hash) commit together with an audit event and the notice to the researcher in the outbox.
 */
import { randomUUID } from "node:crypto";
import { eq } from "drizzle-orm";
import { z } from "zod";
import { saltedTextHash } from "../../anchoring/log/text-hash.ts";
import { dataUseDecisions, users } from "../../db/schema/index.ts";
import { audit } from "../audit-trail/record-event.server.ts";
import { appendEntry } from "../log/append-entry.server.ts";
import { notifyUser } from "../notifications/notify.server.ts";
import { auditActor } from "../platform/attribution.ts";
import type { AppContext } from "../platform/context.server.ts";
import { isUniqueViolation, ServiceError } from "../platform/errors.server.ts";
import type { Principal } from "../platform/permissions.server.ts";
import { getStudyOrThrow } from "../studies/studies.server.ts";
import { holdsRole, requestDetail, typedText } from "./requests.server.ts";

const Reason = z
  .string({ error: "give the reason for the decision" })
  .trim()
  .min(1, "give the reason for the decision")
  .max(4000, "keep the reason under 4000 characters")
  .pipe(typedText("reason"));

export const DecisionInput = z.discriminatedUnion(
  "outcome",
  [
    z.object({
      outcome: z.literal("approved"),
      reason: Reason,
      expiresInDays: z.coerce
        .number({ error: "say for how many days a delivery can be downloaded (1 to 365)" })
        .int("give a whole number of days")
        .min(1, "a delivery must be downloadable for at least 1 day")
        .max(365, "a delivery can be downloadable for at most 365 days"),
    }),
    z.object({
      outcome: z.literal("declined"),
      reason: Reason,
    }),
  ],
  { error: "choose approve or decline" },
);

const LABEL: Record<string, string> = { outcome: "Decision", reason: "Reason", expiresInDays: "Days to download" };

/** The committee decides a request (a signed-in member of the data access committee, not the requester). */
export async function decideDataUseRequest(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  requestId: string,
  input: unknown,
): Promise<{ id: string; entryId: string; outcome: "approved" | "declined" }> {
  const study = await getStudyOrThrow(ctx, studyCode);
  if (!holdsRole(principal, study.id, "data_access_committee"))
    throw new ServiceError("forbidden", "not permitted: data_use.decide (only the study's data access committee)");
  const { request, decision } = await requestDetail(ctx.db, principal, study, requestId);
  if (request.requester.id === principal.userId)
    throw new ServiceError(
      "forbidden",
      "you made this request yourself: another member of the data access committee must decide it",
    );
  const already = () =>
    new ServiceError("conflict", "this request has already been decided: a decision is made once", "outcome");
  if (decision) throw already();
  const r = DecisionInput.safeParse(input);
  if (!r.success) {
    const i = r.error.issues[0];
    const field = String(i.path[0] ?? "outcome");
    throw new ServiceError("invalid", `${LABEL[field] ?? field}: ${i.message}`, field);
  }
  const v = r.data;
  const expiresInDays = v.outcome === "approved" ? v.expiresInDays : null;
  const userId = principal.userId as string;
  const id = randomUUID();
  try {
    return await ctx.db.transaction(async (tx) => {
      const e = await appendEntry(tx, ctx.crypto, study, "data_use.decided", (salt) => ({
        decision: id,
        request: request.id,
        outcome: v.outcome,
        reasonHash: saltedTextHash(ctx.crypto, salt, v.reason),
        expiresInDays,
        actor: userId,
      }));
      await tx.insert(dataUseDecisions).values({
        id,
        studyId: study.id,
        requestId: request.id,
        outcome: v.outcome,
        reason: v.reason,
        expiresInDays,
        actorUserId: userId,
        entryId: e.id,
      });
      await audit(tx, {
        action: "data_use.decided",
        ...auditActor(principal),
        studyId: study.id,
        detail: { request: request.id, decision: id, outcome: v.outcome, expiresInDays, entry: e.id },
      });
      const [who] = await tx.select({ name: users.fullName }).from(users).where(eq(users.id, userId));
      await notifyUser(tx, request.requester.id, {
        studyId: study.id,
        kind: "data_use_decided",
        subject: `${study.code}: your data-use request was ${v.outcome}`,
        body: [
          `The data access committee of study ${study.code} ${v.outcome} your request of ` +
            `${request.createdAt.slice(0, 10)} for ${request.purposeWords}.`,
          `Reason: ${v.reason}`,
          ...(expiresInDays
            ? ["", `Each delivery made for it can be downloaded for ${expiresInDays} days after it is made.`]
            : []),
          "",
          `Decided by ${who?.name ?? principal.label}.`,
        ].join("\n"),
      });
      return { id, entryId: e.id, outcome: v.outcome };
    });
  } catch (err) {
    if (isUniqueViolation(err)) throw already();
    throw err;
  }
}
