/**
 * The demo's data sharing (issue 22, ADR 0066-0070), so the demo study shows every part of it: three participants
 * (SITE-01-007 to -009) consent electronically and agree to future research (the consent's optional item governing
 * DSRCH and BIORCH), each with vital signs; the second says no afterwards on their receipt page (a sealed choice
 * change through their verified link); the external researcher asks for vital signs for research on the same disease
 * (DSRCH); the data access committee approves with a reason and makes one delivery, which holds the two participants
 * who still agree. Their invitation links are in the outbox (the demo's participants can open their pages).
 */
import { and, desc, eq } from "drizzle-orm";
import { outbox } from "../../db/schema/index.ts";
import type { AppContext } from "../platform/context.server.ts";
import type { Principal } from "../platform/permissions.server.ts";
import { enrollParticipant } from "../participants/participants.server.ts";
import { confirmContact } from "../consent/contact-confirmation.server.ts";
import { createInvitation } from "../consent/invitations.server.ts";
import { sendIdentityCode, verifyIdentityCode } from "../consent/identity-code.server.ts";
import { signConsent } from "../consent/signing.server.ts";
import { countersignConsent } from "../consent/countersigning.server.ts";
import { saveRecord } from "../records/records.server.ts";
import { changeChoicesByParticipant } from "./choices.server.ts";
import { submitDataUseRequest } from "./requests.server.ts";
import { decideDataUseRequest } from "./decisions.server.ts";
import { makeDelivery } from "./deliveries.server.ts";

export interface DemoDataSharingActors {
  coordinator: Principal;
  /** Confirms the participants' contacts (a second member of staff, ADR 0018). */
  investigator: Principal;
  committee: Principal;
  researcher: Principal;
  /** The demo password (the coordinator re-enters it to countersign). */
  password: string;
}

const META = { ip: "127.0.0.1", userAgent: "trialseal demo seed" };

/** The demo consent's sections and question, answered as a participant who read it would (app/studies/demo). */
const ACKNOWLEDGED = ["s1", "s2", "s3", "s4", "s5"];

export async function seedDemoDataSharing(
  ctx: AppContext,
  who: DemoDataSharingActors,
  study: string,
  site: string,
): Promise<{ subjects: string[]; requestId: string; deliveryId: string }> {
  const day = new Date(Date.now() - 24 * 3600_000).toISOString().slice(0, 10);
  const people = [
    { fullName: "Nora Lindqvist", email: "nora.lindqvist@example.org", sbp: 141, dbp: 88, height: 168, weight: 70 },
    { fullName: "Omar Haddad", email: "omar.haddad@example.org", sbp: 133, dbp: 84, height: 181, weight: 79 },
    { fullName: "Priya Raman", email: "priya.raman@example.org", sbp: 126, dbp: 79, height: 160, weight: 58 },
  ];
  const links: { subject: string; token: string; verified: string }[] = [];
  for (const person of people) {
    const { subjectCode: subject } = await enrollParticipant(ctx, who.coordinator, {
      study,
      site,
      personal: { fullName: person.fullName, email: person.email },
    });
    await confirmContact(ctx, who.investigator, study, subject, { method: "staff" });
    const { token } = await createInvitation(ctx, who.coordinator, study, { subject }, ctx.env.publicUrl);
    await sendIdentityCode(ctx, token);
    const [sent] = await ctx.db
      .select({ body: outbox.body })
      .from(outbox)
      .where(and(eq(outbox.toAddress, person.email), eq(outbox.kind, "consent_code")))
      .orderBy(desc(outbox.createdAt))
      .limit(1);
    const code = /is (\d{6})\./.exec(sent.body)?.[1] ?? "";
    const verified = await verifyIdentityCode(ctx, token, code, META);
    await signConsent(
      ctx,
      token,
      verified,
      {
        acknowledged: ACKNOWLEDGED,
        answers: { q1: "yes" },
        options: { future_research: "yes" },
        typedName: person.fullName,
        confirm: true,
      },
      { fromStaffDevice: false, meta: META },
    );
    await countersignConsent(ctx, who.coordinator, study, subject, { password: who.password }, META);
    await saveRecord(ctx, who.coordinator, study, {
      subject,
      form: "VITALS",
      visit: "SCREENING",
      data: {
        visit_date: day,
        sbp: person.sbp,
        dbp: person.dbp,
        temp: 36.6,
        height: person.height,
        weight: person.weight,
        smoker: "N",
      },
    });
    links.push({ subject, token, verified });
  }
  // The second participant changes their mind on their receipt page: no more future research.
  const changed = links[1];
  await changeChoicesByParticipant(ctx, changed.token, changed.verified, { choices: { future_research: "no" } });
  const { id: requestId } = await submitDataUseRequest(ctx, who.researcher, study, {
    purpose: "DSRCH",
    fields: ["VITALS.sbp", "VITALS.dbp", "VITALS.weight"],
    periodFrom: new Date(Date.now() - 365 * 24 * 3600_000).toISOString().slice(0, 10),
    periodTo: new Date(Date.now() + 365 * 24 * 3600_000).toISOString().slice(0, 10),
    institution: "Institute of Cardiovascular Epidemiology (demo)",
    justification: "Blood pressure at screening across trials of the same condition, for a pooled analysis.",
  });
  await decideDataUseRequest(ctx, who.committee, study, requestId, {
    outcome: "approved",
    reason: "The purpose matches the consent's optional item; only coded vital signs are asked for.",
    expiresInDays: 30,
  });
  const { id: deliveryId } = await makeDelivery(ctx, who.committee, study, requestId);
  return { subjects: links.map((l) => l.subject), requestId, deliveryId };
}
