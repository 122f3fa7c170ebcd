/**
 * The participant's consent page, reached from the invitation link (no account): identity check with a
 * one-time code, the document with acknowledgements, questions and optional items, the typed-name signature;
 * afterwards the receipt (seal status, QR code to the public verification page, PDF) and withdrawal.
 */
import { json, redirect, type ActionFunctionArgs, type LoaderFunctionArgs, type MetaFunction } from "@remix-run/node";
import { Form, useActionData, useLoaderData, useRevalidator } from "@remix-run/react";
import { useEffect } from "react";
import { z } from "zod";
import { consentReceipt } from "../../consent/receipt.server.ts";
import { openInvitation } from "../../consent/invitation-state.server.ts";
import { sendIdentityCode, verifyIdentityCode } from "../../consent/identity-code.server.ts";
import { signConsent } from "../../consent/signing.server.ts";
import { signatureMeaning } from "../../consent/signatures.server.ts";
import { withdrawByParticipant } from "../../consent/withdrawal.server.ts";
import { changeChoicesByParticipant, currentChoices } from "../../data-sharing/choices.server.ts";
import { participantAccessLog } from "../../data-sharing/access-log.server.ts";
import { AccessLogView } from "../../data-sharing/access-log-view.tsx";
import { purposeInPlainWords } from "../../data-sharing/purposes.ts";
import { serviceErrorResponse } from "../../platform/error-response.server.ts";
import { ServiceError } from "../../platform/errors.server.ts";
import { fromStaffDevice, rememberVerified, verifiedInvitation } from "../../consent/consent-session.server.ts";
import { requestMeta } from "../../platform/session.server.ts";
import { parseConsentDocument } from "../../consent/consent-document.ts";
import { ConsentDocumentView } from "../../consent/consent-document-view.tsx";
import { qrDataUrl } from "../../platform/qr.server.ts";
import { SealBadge } from "../../log/seal-badge.tsx";
import { ErrorSummary } from "../../ui/error-summary.tsx";

/** The signing inputs a problem can point at (their element ids are the problem's field). */
const SIGN_TARGET = /^(ack-|answer-|option-|typedName$|confirm$|assentName$|assentConfirm$)/;

export const meta: MetaFunction = () => [{ title: "Your consent · TrialSeal" }, { name: "robots", content: "noindex" }];

export async function loader({ request, context, params }: LoaderFunctionArgs) {
  const ctx = context.ctx;
  const o = await openInvitation(ctx, params.token ?? "");
  if (!o)
    throw new Response("This link is not valid. Check that you copied all of it, or ask the study team.", {
      status: 404,
    });
  const verified = (await verifiedInvitation(request, ctx)) === o.invitation.id;
  const base = {
    token: params.token ?? "",
    study: { code: o.study.code, title: o.study.title },
    documentTitle: o.document.title,
    version: o.document.version,
    sentTo: o.sentTo,
    channel: o.invitation.channel,
    state: o.state,
    message: o.message,
  };
  if (o.state !== "open" && o.state !== "used")
    return json(
      { ...base, step: "closed" as const, doc: null, receipt: null, signer: null, choices: null, uses: null },
      { status: 410 },
    );
  if (!verified)
    return json({
      ...base,
      step: "identity" as const,
      doc: null,
      receipt: null,
      signer: null,
      choices: null,
      uses: null,
    });
  if (o.state === "open") {
    const parsed = parseConsentDocument(o.document.bodyMarkdown);
    if (!parsed.ok) throw new Error("the approved consent document no longer parses");
    return json({
      ...base,
      step: "sign" as const,
      doc: parsed.doc,
      receipt: null,
      signer: {
        role: o.invitation.signerRole,
        assent: o.invitation.assent,
        meaning: signatureMeaning(o.invitation.signerRole),
      },
      choices: null,
      uses: null,
    });
  }
  const origin = ctx.env.publicUrl;
  const receipt = await consentReceipt(ctx, o, origin);
  const parsed = parseConsentDocument(receipt.document.body);
  return json({
    ...base,
    step: "receipt" as const,
    doc: parsed.ok ? parsed.doc : null,
    receipt: { ...receipt, qr: receipt.verifyUrl ? await qrDataUrl(receipt.verifyUrl) : null },
    signer: null,
    // Only after the one-time code: the choices in force and who used the participant's data (issue 22).
    choices: (await currentChoices(ctx, o.participant.id)).map((i) => ({
      ...i,
      allows: i.purposes.map(purposeInPlainWords),
    })),
    uses: await participantAccessLog(ctx, o.participant.id, "participant"),
  });
}

const WithdrawForm = z.object({ scope: z.enum(["full", "partial"]).optional(), reason: z.string().optional() });

export async function action({ request, context, params }: ActionFunctionArgs) {
  const ctx = context.ctx;
  const token = params.token ?? "";
  const form = await request.formData();
  const intent = String(form.get("intent") ?? "");
  const verified = await verifiedInvitation(request, ctx);
  try {
    if (intent === "send") {
      const r = await sendIdentityCode(ctx, token);
      return json({
        ok: `We sent a 6-digit code by ${r.channel === "sms" ? "text message" : "email"} to ${r.sentTo}.`,
        error: null,
        field: null,
        problems: null,
      });
    }
    if (intent === "verify") {
      const id = await verifyIdentityCode(ctx, token, String(form.get("code") ?? ""), requestMeta(request));
      return redirect(`/consent/${token}`, { headers: { "set-cookie": await rememberVerified(ctx, id) } });
    }
    if (intent === "sign") {
      const options: Record<string, string> = {};
      const answers: Record<string, string> = {};
      for (const [k, v] of form.entries()) {
        if (k.startsWith("option-")) options[k.slice(7)] = String(v);
        if (k.startsWith("answer-")) answers[k.slice(7)] = String(v);
      }
      await signConsent(
        ctx,
        token,
        verified,
        {
          acknowledged: form.getAll("ack").map(String),
          answers,
          options,
          typedName: String(form.get("typedName") ?? ""),
          confirm: form.get("confirm") === "on",
          assentName: form.get("assentName") === null ? undefined : String(form.get("assentName")),
          assentConfirm: form.get("assentConfirm") === "on",
        },
        { fromStaffDevice: await fromStaffDevice(request, ctx), meta: requestMeta(request) },
      );
      return redirect(`/consent/${token}`);
    }
    if (intent === "choices") {
      const choices: Record<string, string> = {};
      for (const [k, v] of form.entries()) if (k.startsWith("choice-")) choices[k.slice(7)] = String(v);
      const r = await changeChoicesByParticipant(ctx, token, verified, { choices });
      const n = Object.keys(r.changed).length;
      return json({
        ok: `Your choices are saved (${n} ${n === 1 ? "change" : "changes"}). They apply from now on.`,
        error: null,
        field: null,
        problems: null,
      });
    }
    if (intent === "withdraw") {
      const f = WithdrawForm.parse({ scope: form.get("scope") ?? undefined, reason: form.get("reason") ?? undefined });
      // A full withdrawal cannot be undone here: it asks for an explicit confirmation (works without JavaScript).
      if (f.scope === "full" && form.get("confirmFull") !== "on")
        throw new ServiceError(
          "invalid",
          'To withdraw in full, tick "I understand that I leave the study" and press Withdraw again',
          "confirmFull",
        );
      await withdrawByParticipant(ctx, token, verified, {
        scope: f.scope,
        followUp: f.scope === "partial" && form.get("followUp") === "on",
        optionalWithdrawn: form.getAll("optionalWithdrawn").map(String),
        reason: f.reason || undefined,
      });
      return redirect(`/consent/${token}`);
    }
    return json({ ok: null, error: "unknown action", field: null, problems: null }, { status: 400 });
  } catch (err) {
    return serviceErrorResponse(err, { ok: null });
  }
}

export default function ConsentPage() {
  const d = useLoaderData<typeof loader>();
  const codeChannel = d.channel === "sms" ? "phone" : "email";
  const r = useActionData<typeof action>();
  const revalidator = useRevalidator();
  const pending =
    d.step === "receipt" &&
    d.receipt?.signatures.some((s) => s.seal.status !== "sealed" || s.seal.anchoredOn.length === 0);
  useEffect(() => {
    if (!pending) return;
    const t = setInterval(() => revalidator.state === "idle" && revalidator.revalidate(), 3000);
    return () => clearInterval(t);
  }, [pending, revalidator]);
  const error = r?.error ? { field: r.field, message: r.error } : null;
  const fullUnconfirmed = r?.field === "confirmFull" || undefined;
  // On the signing step every problem is listed next to the Sign button (where the participant is, on a phone),
  // focused, and shown at its question or box; elsewhere the error is said at the top.
  const signProblems =
    d.step === "sign" && error
      ? (r?.problems?.length ? r.problems : [{ field: error.field ?? "", message: error.message }]).map((p) => ({
          field: p.field,
          message: p.message,
        }))
      : [];
  const topError = signProblems.length ? null : error;
  const messageOf = (f: string) => signProblems.find((p) => p.field === f)?.message;
  const invalid = (f: string) => (messageOf(f) ? true : undefined);
  const fieldError = (f: string) =>
    messageOf(f) ? (
      <p className="field-error" id={`${f}-error`}>
        {messageOf(f)}
      </p>
    ) : null;
  return (
    <main className="page narrow participant">
      <p className="muted">
        {d.study.code}: {d.study.title}
      </p>
      <h1>{d.documentTitle}</h1>
      <p className="muted">Version {d.version}</p>
      {topError ? (
        <p className="error" role="alert" data-field={topError.field ?? ""}>
          {topError.message}
        </p>
      ) : null}
      {r?.ok ? <p role="status">{r.ok}</p> : null}

      {d.step === "closed" ? (
        <p className="error" role="alert" data-state={d.state}>
          {d.message}
        </p>
      ) : null}

      {d.step === "identity" ? (
        <section className="card" data-step="identity">
          <h2>First, confirm it is you</h2>
          <p>
            We send a one-time code to your {codeChannel} ({d.sentTo}). Enter it below to{" "}
            {d.state === "used" ? "see your signed consent" : "open the document"}.
          </p>
          <Form method="post">
            <input type="hidden" name="intent" value="send" />
            <button type="submit">Send me a code</button>
          </Form>
          <Form method="post" noValidate>
            <input type="hidden" name="intent" value="verify" />
            <label htmlFor="code">Code</label>
            <input
              id="code"
              name="code"
              type="text"
              inputMode="numeric"
              autoComplete="one-time-code"
              maxLength={6}
              aria-invalid={error?.field === "code" ? true : undefined}
            />
            <button type="submit">Continue</button>
          </Form>
        </section>
      ) : null}

      {d.step === "sign" && d.doc && d.signer ? (
        <Form method="post" noValidate data-step="sign">
          <input type="hidden" name="intent" value="sign" />
          <ConsentDocumentView doc={d.doc} signing problems={signProblems} />
          <section className="card signature-block">
            <h2>Your signature</h2>
            {d.signer.role !== "participant" ? (
              <p>
                You sign as the participant's{" "}
                {d.signer.role === "lar" ? "legally authorized representative" : "parent or guardian"}.
              </p>
            ) : null}
            <label htmlFor="typedName">Type your full name</label>
            {fieldError("typedName")}
            <input
              id="typedName"
              name="typedName"
              type="text"
              autoComplete="name"
              aria-invalid={invalid("typedName")}
              aria-describedby={messageOf("typedName") ? "typedName-error" : undefined}
            />
            {fieldError("confirm")}
            <label className="ack" aria-invalid={invalid("confirm")}>
              <input
                type="checkbox"
                id="confirm"
                name="confirm"
                aria-describedby={messageOf("confirm") ? "confirm-error" : undefined}
              />{" "}
              {d.signer.meaning}. I understand that typing my name is my electronic signature, the legally binding
              equivalent of my handwritten signature.
            </label>
            {d.signer.assent ? (
              <>
                <h3>The child's assent</h3>
                <label htmlFor="assentName">The child types their full name</label>
                {fieldError("assentName")}
                <input
                  id="assentName"
                  name="assentName"
                  type="text"
                  aria-invalid={invalid("assentName")}
                  aria-describedby={messageOf("assentName") ? "assentName-error" : undefined}
                />
                {fieldError("assentConfirm")}
                <label className="ack" aria-invalid={invalid("assentConfirm")}>
                  <input type="checkbox" id="assentConfirm" name="assentConfirm" /> I understand what the study is about
                  and I agree to take part.
                </label>
              </>
            ) : null}
            <ErrorSummary
              id="sign-problems"
              title={
                signProblems.length === 1
                  ? "Before you sign, 1 thing to fix:"
                  : `Before you sign, ${signProblems.length} things to fix:`
              }
              problems={signProblems.map((p) => ({
                target: SIGN_TARGET.test(p.field) ? p.field : null,
                message: p.message,
              }))}
            />
            <button type="submit">Sign</button>
          </section>
        </Form>
      ) : null}

      {d.step === "receipt" && d.receipt ? (
        <section data-step="receipt">
          <p className="card" data-consent-state={d.receipt.state}>
            <strong>Status:</strong> {d.receipt.summary}
          </p>
          <h2>Signatures</h2>
          <table className="stack">
            <thead>
              <tr>
                <th>Name</th>
                <th>Role</th>
                <th>Meaning</th>
                <th>Signed (UTC)</th>
                <th>Proof</th>
              </tr>
            </thead>
            <tbody>
              {d.receipt.signatures.map((s) => (
                <tr key={s.id} data-signature={s.role}>
                  <td>{s.printedName}</td>
                  <td>{s.role}</td>
                  <td>{s.meaning}</td>
                  <td>{s.signedAt.replace("T", " ").slice(0, 19)}</td>
                  <td>
                    <SealBadge seal={s.seal} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          <p>
            <a href={`/consent/${d.token}/receipt.pdf`} data-receipt-pdf download>
              Download your receipt (PDF)
            </a>
          </p>
          {d.receipt.qr && d.receipt.verifyUrl ? (
            <figure className="qr">
              <img
                src={d.receipt.qr}
                alt="QR code to the public verification page of this consent"
                width={160}
                height={160}
              />
              <figcaption>
                Anyone can check this consent, without seeing your name, at{" "}
                <a href={d.receipt.verifyUrl}>{d.receipt.verifyUrl}</a>
              </figcaption>
            </figure>
          ) : null}
          <p className="muted">
            Document SHA-256 <code>{d.receipt.document.sha256}</code>, approved by {d.receipt.document.irbName} on{" "}
            {d.receipt.document.irbApprovedOn}.
          </p>
          {d.receipt.withdrawals.length ? (
            <>
              <h2>Withdrawals</h2>
              <ul>
                {d.receipt.withdrawals.map((w) => (
                  <li key={w.id} data-withdrawal={w.scope}>
                    {w.at.replace("T", " ").slice(0, 19)} UTC:{" "}
                    {w.scope === "full"
                      ? "full withdrawal"
                      : `partial: ${w.allows.followUp ? "follow-up continues" : "no follow-up"}${
                          w.allows.optionalWithdrawn.length
                            ? `; withdrawn: ${w.allows.optionalWithdrawn.join(", ")}`
                            : ""
                        }`}
                  </li>
                ))}
              </ul>
            </>
          ) : null}
          {d.choices?.length ? (
            <section className="card" data-choices>
              <h2>Your choices</h2>
              <p>
                These are the optional parts of your consent. You can change them at any time; a change applies from the
                moment you save it.
              </p>
              {d.receipt.state === "withdrawn" ? (
                <ul>
                  {d.choices.map((c) => (
                    <li key={c.key} data-choice={c.key}>
                      {c.text}: {c.agreed ? "yes" : "no"}
                    </li>
                  ))}
                </ul>
              ) : (
                <Form method="post" noValidate>
                  <input type="hidden" name="intent" value="choices" />
                  {d.choices.map((c) => (
                    <fieldset key={c.key} data-choice={c.key} aria-invalid={r?.field === "choices" || undefined}>
                      <legend>{c.text}</legend>
                      <p className="muted">
                        {c.allows.length
                          ? `"Yes" allows your data to be used for: ${c.allows.join("; ")}.`
                          : "This choice does not allow any use of your data by others."}{" "}
                        Your answer now: <strong>{c.agreed ? "yes" : "no"}</strong>, since{" "}
                        {c.since.replace("T", " ").slice(0, 16)} UTC.
                      </p>
                      <label className="inline">
                        <input type="radio" name={`choice-${c.key}`} value="yes" defaultChecked={c.agreed} /> Yes
                      </label>
                      <label className="inline">
                        <input type="radio" name={`choice-${c.key}`} value="no" defaultChecked={!c.agreed} /> No
                      </label>
                    </fieldset>
                  ))}
                  <button type="submit">Save my choices</button>
                </Form>
              )}
              {d.choices.some((c) => c.history.length > 1) ? (
                <details>
                  <summary>History of your choices</summary>
                  <ul data-choice-history>
                    {d.choices
                      .flatMap((c) => c.history.map((h) => ({ ...h, key: c.key, text: c.text })))
                      .sort((a, b) => a.at.localeCompare(b.at))
                      .map((h) => (
                        <li key={`${h.key}-${h.entryId}`}>
                          {h.at.replace("T", " ").slice(0, 16)} UTC: {h.agreed ? "yes" : "no"} to "{h.text}" (
                          {h.by === "participant" ? "by you" : "recorded by the study team"})
                        </li>
                      ))}
                  </ul>
                </details>
              ) : null}
            </section>
          ) : null}
          <section className="card" data-access-log>
            <h2>Who used your data</h2>
            <AccessLogView items={d.uses ?? []} />
          </section>
          {d.receipt.state !== "withdrawn" ? (
            <details className="card" open={r?.field === "confirmFull" || undefined}>
              <summary>Withdraw from the study</summary>
              <p>
                You may withdraw at any time, without giving a reason. Data collected before you withdraw are kept, as
                the regulations require.
              </p>
              <Form method="post" noValidate>
                <input type="hidden" name="intent" value="withdraw" />
                <fieldset>
                  <legend>What do you want to stop?</legend>
                  <label className="inline">
                    <input type="radio" name="scope" value="partial" /> Part of it
                  </label>
                  <label className="inline">
                    <input type="radio" name="scope" value="full" /> Everything (full withdrawal)
                  </label>
                </fieldset>
                <label className="ack">
                  <input type="checkbox" name="followUp" /> I stop the study treatment but agree to follow-up visits and
                  data collection (partial)
                </label>
                {d.doc
                  ? d.doc.sections
                      .flatMap((s) => s.optional)
                      .map((o) => (
                        <label key={o.key} className="ack">
                          <input type="checkbox" name="optionalWithdrawn" value={o.key} />
                          {" Withdraw my agreement to:"} {o.text}
                        </label>
                      ))
                  : null}
                <label htmlFor="reason">Reason (optional)</label>
                <input id="reason" name="reason" type="text" />
                <label className="ack danger-zone">
                  <input type="checkbox" name="confirmFull" aria-invalid={fullUnconfirmed} /> For a full withdrawal: I
                  understand that I leave the study and that this cannot be undone on this page (data collected before
                  stay in the study)
                </label>
                {r?.field === "confirmFull" ? (
                  <p className="field-error" id="confirmFull-error">
                    {r.error}
                  </p>
                ) : null}
                <button type="submit" className="button-danger">
                  Withdraw
                </button>
              </Form>
            </details>
          ) : null}
          {d.doc ? (
            <details>
              <summary>The document you signed</summary>
              <ConsentDocumentView doc={d.doc} />
            </details>
          ) : null}
        </section>
      ) : null}
    </main>
  );
}
