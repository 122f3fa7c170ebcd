/**
 * A participant's consent, for study staff: status and every signature, invitations (create one: link + QR
 * code, sent to the signer's own contact), countersignature by the person obtaining consent (re-authenticated,
 * optionally with an impartial witness), and withdrawals the participant reports to the site.
 */
import { json, type ActionFunctionArgs, type LoaderFunctionArgs, type MetaFunction } from "@remix-run/node";
import { Form, Link, useActionData, useLoaderData } from "@remix-run/react";
import { subjectCasebook } from "../../records/records.server.ts";
import { consentStatus } from "../../consent/status.server.ts";
import { countersignConsent } from "../../consent/countersigning.server.ts";
import { createInvitation } from "../../consent/invitations.server.ts";
import { invitationsOf } from "../../consent/invitation-state.server.ts";
import { recordWithdrawal } from "../../consent/withdrawal.server.ts";
import { confirmContact, contactPanel, registerRepresentative } from "../../consent/contact-confirmation.server.ts";
import { serviceErrorResponse } from "../../platform/error-response.server.ts";
import { can } from "../../platform/permissions.server.ts";
import { qrDataUrl } from "../../platform/qr.server.ts";
import { requestMeta } from "../../platform/session.server.ts";
import { requireStudy } from "../../platform/require-study.server.ts";
import { StudyPage } from "../../ui/study-page.tsx";

export const meta: MetaFunction<typeof loader> = ({ data }) => [
  { title: `Consent of ${data?.subject ?? "subject"} · TrialSeal` },
];

async function load(
  request: Request,
  context: LoaderFunctionArgs["context"],
  params: LoaderFunctionArgs["params"],
  // The read the page records (ADR 0067); null for a form POST (the loader records it when the page shows again).
  read: "participant.view" | "consent.view" | null,
) {
  const { study, user } = await requireStudy(request, context, params, "records.read");
  const casebook = await subjectCasebook(context.ctx, user, study.id, params.subject ?? "", { read });
  if (!casebook) throw new Response("No such subject", { status: 404 });
  return { study, user, participant: casebook.participant };
}

export async function loader({ request, context, params }: LoaderFunctionArgs) {
  const { study, user, participant } = await load(request, context, params, "consent.view");
  const scope = { studyId: study.id, siteId: participant.siteId };
  const names = can(user, "personal_data.view", scope);
  const status = await consentStatus(context.ctx, participant.id, { withNames: names });
  return json({
    user: { fullName: user.fullName, email: user.email },
    study: study.code,
    subject: participant.subject,
    site: participant.site,
    status,
    invitations: await invitationsOf(context.ctx, participant.id),
    // Signer contacts and their confirmation by a second member of staff (ADR 0018).
    ...(names ? await contactPanel(context.ctx, user, participant.id) : { contacts: [], inviteBlock: null }),
    may: { obtain: can(user, "consent.obtain", scope), confirm: names },
  });
}

export async function action({ request, context, params }: ActionFunctionArgs) {
  const { study, user, participant } = await load(request, context, params, null);
  const f = await request.formData();
  const intent = String(f.get("intent") ?? "");
  try {
    if (intent === "invite") {
      const inv = await createInvitation(
        context.ctx,
        user,
        study.code,
        {
          subject: participant.subject,
          signerRole: String(f.get("signerRole") || "participant"),
          representativeName: String(f.get("representativeName") ?? "") || undefined,
          representativeContact: String(f.get("representativeContact") ?? "") || undefined,
          assent: f.get("assent") === "on",
        },
        context.ctx.env.publicUrl,
      );
      const until = inv.expiresAt.slice(0, 16).replace("T", " ");
      return json({
        error: null,
        field: null,
        message: `Invitation sent by ${inv.channel} to ${inv.sentTo}; valid until ${until} UTC.`,
        invitation: { url: inv.url, qr: await qrDataUrl(inv.url) },
      });
    }
    if (intent === "confirm-contact") {
      const method = String(f.get("method") ?? "");
      await confirmContact(context.ctx, user, study.code, participant.subject, {
        contact: String(f.get("contact") ?? "") || undefined,
        method: method || undefined,
      });
      const how = method === "in_person" ? "Identity verified in person: recorded" : "Contact confirmed";
      return json({ error: null, field: null, message: `${how} and sealed into the log.`, invitation: null });
    }
    if (intent === "register-representative") {
      await registerRepresentative(context.ctx, user, study.code, participant.subject, {
        role: String(f.get("role") ?? "") || undefined,
        name: String(f.get("name") ?? ""),
        contact: String(f.get("contact") ?? ""),
      });
      return json({
        error: null,
        field: null,
        message: "Representative registered; an investigator of the site other than you must confirm the contact.",
        invitation: null,
      });
    }
    if (intent === "countersign") {
      await countersignConsent(
        context.ctx,
        user,
        study.code,
        participant.subject,
        {
          password: String(f.get("password") ?? ""),
          code: String(f.get("code") ?? "") || undefined,
          witnessName: String(f.get("witnessName") ?? "") || undefined,
        },
        requestMeta(request),
      );
      return json({
        error: null,
        field: null,
        message: "Countersigned; the signature is sealed into the log.",
        invitation: null,
      });
    }
    if (intent === "withdraw") {
      const scope = String(f.get("scope") ?? "");
      await recordWithdrawal(context.ctx, user, study.code, participant.subject, {
        scope: scope || undefined,
        followUp: scope === "partial" && f.get("followUp") === "on",
        optionalWithdrawn: f.getAll("optionalWithdrawn").map(String),
        reason: String(f.get("reason") ?? "") || undefined,
      });
      return json({ error: null, field: null, message: "Withdrawal recorded.", invitation: null });
    }
    return json({ message: null, invitation: null, error: "unknown action", field: null }, { status: 400 });
  } catch (err) {
    return serviceErrorResponse(err, { message: null, invitation: null });
  }
}

export default function SubjectConsent() {
  const d = useLoaderData<typeof loader>();
  const r = useActionData<typeof action>();
  const awaiting = d.status.signatures.some((s) => s.primary && !s.countersignedBy);
  const optional = [...new Set(d.status.signatures.filter((s) => s.primary).flatMap((s) => Object.keys(s.options)))];
  return (
    <StudyPage
      user={d.user}
      study={d.study}
      crumbs={[
        { to: `/studies/${d.study}/participants`, label: "Participants" },
        { to: `/studies/${d.study}/participants/${d.subject}`, label: d.subject },
      ]}
      title={
        <>
          Consent of {d.subject}{" "}
          <span className="badge" data-consent-state={d.status.state}>
            {d.status.summary}
          </span>
        </>
      }
      flash={r}
    >
      {r?.invitation ? (
        <section className="card" data-invitation>
          <h2>Invitation link</h2>
          <p>Shown once. Give it to the signer (it was also sent to their own contact), or let them scan the code:</p>
          <p>
            <code data-invitation-url>{r.invitation.url}</code>
          </p>
          <img src={r.invitation.qr} alt="QR code of the invitation link" width={180} height={180} />
        </section>
      ) : null}
      <h2>Signatures</h2>
      <p>
        <Link to={`/studies/${d.study}/participants/${d.subject}/paper-consent`}>Consent obtained on paper</Link>
        {d.status.paper.length ? ` (${d.status.paper.length} recorded)` : ""}
      </p>
      {d.status.signatures.length === 0 ? <p className="muted">No consent signed yet.</p> : null}
      <table>
        <thead>
          <tr>
            <th>Document</th>
            <th>Role</th>
            <th>Printed name</th>
            <th>Meaning</th>
            <th>Signed (UTC)</th>
            <th>Options</th>
          </tr>
        </thead>
        <tbody>
          {d.status.signatures.map((s) => (
            <tr key={s.id} data-signature={s.role}>
              <td>
                {s.document.code} {s.document.version}
              </td>
              <td>
                {s.role}
                {s.fromStaffDevice && s.role !== "staff" && s.role !== "witness" ? (
                  <span className="badge bad"> signed on a staff device</span>
                ) : null}
              </td>
              <td>{s.printedName ?? <span className="muted">hidden</span>}</td>
              <td>{s.meaning}</td>
              <td>{s.signedAt.replace("T", " ").slice(0, 19)}</td>
              <td>
                {Object.entries(s.options)
                  .map(([k, v]) => `${k}: ${v ? "yes" : "no"}`)
                  .join(", ")}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {d.status.withdrawals.length ? (
        <>
          <h2>Withdrawals</h2>
          <ul>
            {d.status.withdrawals.map((w) => (
              <li key={w.id} data-withdrawal={w.scope}>
                {w.at.replace("T", " ").slice(0, 19)} UTC: {w.scope}
                {w.scope === "partial"
                  ? ` (${w.allows.followUp ? "follow-up continues" : "no follow-up"}${
                      w.allows.optionalWithdrawn.length ? `; withdrawn: ${w.allows.optionalWithdrawn.join(", ")}` : ""
                    })`
                  : ""}{" "}
                {w.byParticipant ? "by the participant" : "recorded by site staff"}
                {w.reason ? `: ${w.reason}` : ""}
              </li>
            ))}
          </ul>
        </>
      ) : null}
      <h2>Signer contacts</h2>
      <p className="muted">
        The one-time code goes to this contact. A second member of staff (not the one who entered it, and not the one
        who invites) confirms it, or records that the signer's identity was verified in person at a visit. A
        representative's or parent's contact is confirmed by an investigator of the site.
      </p>
      <table>
        <thead>
          <tr>
            <th>Signer</th>
            <th>Contact</th>
            <th>Entered by</th>
            <th>Confirmed</th>
          </tr>
        </thead>
        <tbody>
          {d.contacts.map((c) => (
            <tr key={c.id} data-signer-contact={c.role}>
              <td>{c.role === "participant" ? "the participant" : `${c.role}: ${c.name ?? ""}`}</td>
              <td>{c.contact}</td>
              <td>{c.enteredBy}</td>
              <td data-confirmed-by={c.confirmedBy ?? ""}>
                {c.confirmedAt ? (
                  `${c.method === "in_person" ? "identity verified in person" : "confirmed"} ` +
                  `by ${c.confirmedBy} on ${c.confirmedAt.replace("T", " ").slice(0, 16)} UTC`
                ) : d.may.confirm ? (
                  <Form method="post" className="inline">
                    <input type="hidden" name="intent" value="confirm-contact" />
                    {c.role === "participant" ? null : <input type="hidden" name="contact" value={c.id} />}
                    <button type="submit" name="method" value="staff">
                      Confirm contact
                    </button>{" "}
                    <button type="submit" name="method" value="in_person">
                      Identity verified in person
                    </button>
                  </Form>
                ) : (
                  <span className="badge bad">not confirmed</span>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {d.may.confirm && d.status.state !== "withdrawn" ? (
        <Form method="post" className="card" noValidate>
          <input type="hidden" name="intent" value="register-representative" />
          <h2>Register a representative or parent</h2>
          <label htmlFor="rep-role">Role</label>
          <select id="rep-role" name="role">
            <option value="lar">legally authorized representative</option>
            <option value="parent">parent or guardian (minor)</option>
          </select>
          <label htmlFor="rep-name">Full name</label>
          <input id="rep-name" name="name" type="text" />
          <label htmlFor="rep-contact">Email or phone</label>
          <input id="rep-contact" name="contact" type="text" />
          <button type="submit">Register</button>
        </Form>
      ) : null}
      <h2>Invitations</h2>
      <table>
        <thead>
          <tr>
            <th>Document</th>
            <th>Signer</th>
            <th>Created</th>
            <th>Expires</th>
            <th>State</th>
          </tr>
        </thead>
        <tbody>
          {d.invitations.map((i) => (
            <tr key={i.id} data-invitation-state={i.state}>
              <td>{i.document}</td>
              <td>{i.signerRole}</td>
              <td>
                {i.createdAt.replace("T", " ").slice(0, 16)} by {i.createdBy}
              </td>
              <td>{i.expiresAt.replace("T", " ").slice(0, 16)}</td>
              <td>{i.state}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {d.may.obtain ? (
        <div className="grid">
          {d.status.state !== "withdrawn" ? (
            <Form method="post" className="card" noValidate>
              <input type="hidden" name="intent" value="invite" />
              <h2>Invite to sign</h2>
              <label htmlFor="signerRole">Who signs</label>
              <select id="signerRole" name="signerRole">
                <option value="participant">the participant</option>
                <option value="lar">a legally authorized representative</option>
                <option value="parent">a parent or guardian (minor)</option>
              </select>
              <label htmlFor="representativeName">Representative's full name (not for the participant)</label>
              <input id="representativeName" name="representativeName" type="text" />
              <label htmlFor="representativeContact">Representative's email or phone</label>
              <input id="representativeContact" name="representativeContact" type="text" />
              <label className="ack">
                <input type="checkbox" name="assent" /> Also take the minor's assent (with a parent)
              </label>
              {d.inviteBlock ? (
                <p className="muted" data-invite-blocked>
                  {d.inviteBlock}
                </p>
              ) : null}
              <button type="submit" disabled={!!d.inviteBlock}>
                Create invitation
              </button>
            </Form>
          ) : null}
          {awaiting ? (
            <Form method="post" className="card" noValidate>
              <input type="hidden" name="intent" value="countersign" />
              <h2>Countersign</h2>
              <p>
                As the person obtaining consent, confirm that you explained the study and answered the signer's
                questions.
              </p>
              <label htmlFor="witnessName">Impartial witness's full name (if one was present)</label>
              <input id="witnessName" name="witnessName" type="text" />
              <label htmlFor="cs-password">Your password</label>
              <input id="cs-password" name="password" type="password" autoComplete="current-password" />
              <label htmlFor="cs-code">Authenticator code</label>
              <input id="cs-code" name="code" type="text" inputMode="numeric" autoComplete="one-time-code" />
              <button type="submit">Countersign</button>
            </Form>
          ) : null}
          {d.status.signatures.some((s) => s.primary) && d.status.state !== "withdrawn" ? (
            <Form method="post" className="card" noValidate>
              <input type="hidden" name="intent" value="withdraw" />
              <h2>Record a withdrawal</h2>
              <label htmlFor="w-scope">Scope</label>
              <select id="w-scope" name="scope">
                <option value="">choose…</option>
                <option value="partial">partial</option>
                <option value="full">full</option>
              </select>
              <label className="ack">
                <input type="checkbox" name="followUp" /> follow-up continues (partial)
              </label>
              {optional.map((k) => (
                <label key={k} className="ack">
                  <input type="checkbox" name="optionalWithdrawn" value={k} /> withdraw optional item {k}
                </label>
              ))}
              <label htmlFor="w-reason">Reason (optional)</label>
              <input id="w-reason" name="reason" type="text" />
              <button type="submit">Record withdrawal</button>
            </Form>
          ) : null}
        </div>
      ) : null}
    </StudyPage>
  );
}
