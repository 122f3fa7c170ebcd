/**
 * The outbox (issue 18, ADR 0035), for platform administrators: every notification with its state (queued, sent,
 * retrying with the last error and the next attempt, failed with "Send again", SMS not sent). Without SMTP_URL
 * nothing is sent and the page is the development mailbox (bodies shown).
 */
import { json, redirect, type ActionFunctionArgs, type LoaderFunctionArgs, type MetaFunction } from "@remix-run/node";
import { Form, Link, useActionData, useLoaderData } from "@remix-run/react";
import { listOutbox, sendAgain, type OutboxState } from "../../notifications/outbox-sender.server.ts";
import { serviceErrorResponse } from "../../platform/error-response.server.ts";
import { requireUser } from "../../platform/session.server.ts";
import { TopBar } from "../../ui/top-bar.tsx";

export const meta: MetaFunction = () => [{ title: "Outbox · TrialSeal" }];

const STATES: { state: OutboxState; label: string; icon: string }[] = [
  { state: "queued", label: "Queued", icon: "…" },
  { state: "retrying", label: "Retrying", icon: "↻" },
  { state: "failed", label: "Failed", icon: "✗" },
  { state: "sent", label: "Sent", icon: "✓" },
  { state: "not_sent_sms", label: "SMS not sent", icon: "–" },
];
const isState = (s: string | null): s is OutboxState => STATES.some((x) => x.state === s);

async function admin(request: Request, context: LoaderFunctionArgs["context"]) {
  const user = await requireUser(request, context);
  if (!user.platformAdmin) throw new Response("The outbox is for platform administrators", { status: 403 });
  return user;
}

export async function loader({ request, context }: LoaderFunctionArgs) {
  const user = await admin(request, context);
  const state = new URL(request.url).searchParams.get("state");
  const out = await listOutbox(context.ctx, user, { state: isState(state) ? state : undefined });
  return json({ user: { fullName: user.fullName, email: user.email }, state: isState(state) ? state : null, ...out });
}

export async function action({ request, context }: ActionFunctionArgs) {
  const user = await admin(request, context);
  const form = await request.formData();
  try {
    await sendAgain(context.ctx, user, String(form.get("message") ?? ""));
  } catch (err) {
    return serviceErrorResponse(err);
  }
  return redirect(`/outbox${new URL(request.url).search}`);
}

const when = (iso: string | null) => (iso ? `${iso.replace("T", " ").slice(0, 19)} UTC` : "-");

export default function Outbox() {
  const { user, state, smtpConfigured, messages, counts } = useLoaderData<typeof loader>();
  const r = useActionData<typeof action>();
  return (
    <>
      <TopBar user={user} />
      <main className="page">
        <h1>Outbox</h1>
        {smtpConfigured ? (
          <p>
            Notifications are sent by SMTP every few seconds. A message that fails is retried with a growing wait and
            marked failed after its last attempt; nothing is ever deleted.
          </p>
        ) : (
          <p role="status" data-smtp="off">
            <strong>SMTP_URL is not set: nothing is sent.</strong> This page is the development mailbox (message texts
            shown below).
          </p>
        )}
        <p className="muted">SMS messages are not sent: no SMS gateway is configured.</p>
        {r && "error" in r ? (
          <p className="error" role="alert">
            {r.error}
          </p>
        ) : null}
        <nav aria-label="Filter by state" className="outbox-filters">
          <Link to="/outbox" aria-current={state === null ? "page" : undefined}>
            All
          </Link>
          {STATES.map((s) => (
            <Link key={s.state} to={`/outbox?state=${s.state}`} aria-current={state === s.state ? "page" : undefined}>
              {s.icon} {s.label} ({counts[s.state]})
            </Link>
          ))}
        </nav>
        {messages.length === 0 ? (
          <p data-empty>
            No messages{state ? " in this state" : ""}. Invitations, queries, signature requests and re-consent notices
            appear here as soon as they are queued.
          </p>
        ) : (
          <section aria-label="Messages">
            {/* On a phone each message is a card (table.stack), so the subject and state are never off screen. */}
            <table className="stack">
              <thead>
                <tr>
                  <th>Queued</th>
                  <th>To</th>
                  <th>What</th>
                  <th>State</th>
                  <th>Attempts</th>
                  <th />
                </tr>
              </thead>
              <tbody>
                {messages.map((m) => {
                  const s = STATES.find((x) => x.state === m.state)!;
                  return (
                    <tr key={m.id} data-message={m.id} data-state={m.state}>
                      <td>{when(m.createdAt)}</td>
                      <td>
                        {m.to}
                        {m.channel === "sms" ? " (SMS)" : ""}
                      </td>
                      <td>
                        <strong>{m.subject}</strong>
                        <div className="muted">{m.kind}</div>
                        {m.body !== null ? (
                          <details>
                            <summary>Message text</summary>
                            <pre className="mail-body">{m.body}</pre>
                          </details>
                        ) : null}
                      </td>
                      <td>
                        <span className={`badge${m.state === "sent" ? " ok" : m.state === "failed" ? " bad" : ""}`}>
                          {s.icon} {s.label}
                        </span>
                        {m.sentAt ? <div className="muted">sent {when(m.sentAt)}</div> : null}
                        {m.lastError ? <div data-last-error>{m.lastError}</div> : null}
                        {m.state === "retrying" ? (
                          <div className="muted">next attempt {when(m.nextAttemptAt)}</div>
                        ) : null}
                        {m.failedAt ? <div className="muted">gave up {when(m.failedAt)}</div> : null}
                      </td>
                      <td>{m.attempts === 1 ? "1 attempt" : `${m.attempts} attempts`}</td>
                      <td>
                        {m.state === "failed" || m.state === "retrying" ? (
                          <Form method="post">
                            <input type="hidden" name="message" value={m.id} />
                            <button type="submit">Send again</button>
                          </Form>
                        ) : null}
                      </td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </section>
        )}
        <p className="muted">The newest 200 messages are listed; filter by state to see older ones.</p>
      </main>
    </>
  );
}
