/**
 * One data-use request (issue 22, ADR 0068, 0070): what was asked, the committee's decision (a form for a member of
 * the committee who did not make the request), the deliveries (made by the committee on an approved request; each
 * with its counts, manifest SHA-256 and expiry; the researcher who asked downloads them until they expire). A delivery
 * refused because nobody may be delivered shows the reason. Another researcher's request is not found.
 */
import { json, type ActionFunctionArgs, type LoaderFunctionArgs, type MetaFunction } from "@remix-run/node";
import { Form, useActionData, useLoaderData, useNavigation } from "@remix-run/react";
import { decideDataUseRequest } from "../../data-sharing/decisions.server.ts";
import { makeDelivery } from "../../data-sharing/deliveries.server.ts";
import { getDataUseRequest, holdsRole } from "../../data-sharing/requests.server.ts";
import { requireDataUseStudy } from "../../platform/require-data-use-study.server.ts";
import { serviceErrorResponse } from "../../platform/error-response.server.ts";
import { ServiceError } from "../../platform/errors.server.ts";
import { FieldError } from "../../ui/error-summary.tsx";
import { StudyPage } from "../../ui/study-page.tsx";

export const meta: MetaFunction = () => [{ title: "Data-use request · TrialSeal" }];

async function detailOrNotFound(...args: Parameters<typeof getDataUseRequest>) {
  try {
    return await getDataUseRequest(...args);
  } catch (err) {
    if (err instanceof ServiceError && err.code === "not_found")
      throw new Response("No such data-use request", { status: 404 });
    throw err;
  }
}

export async function loader({ request, context, params }: LoaderFunctionArgs) {
  const { study, user } = await requireDataUseStudy(request, context, params);
  const d = await detailOrNotFound(context.ctx, user, study.code, params.id ?? "");
  const committee = holdsRole(user, study.id, "data_access_committee");
  const isRequester = d.request.requester.id === user.userId;
  return json(
    {
      user: { fullName: user.fullName, email: user.email },
      study: study.code,
      request: d.request,
      decision: d.decision,
      deliveries: d.deliveries,
      eligibleNow: d.eligibleNow,
      canDecide: committee && !isRequester && !d.decision,
      ownRequestNote: committee && isRequester && !d.decision,
      canDeliver: committee && d.decision?.outcome === "approved",
      canDownload: isRequester && holdsRole(user, study.id, "external_researcher"),
    },
    { headers: { "cache-control": "no-store" } },
  );
}

export async function action({ request, context, params }: ActionFunctionArgs) {
  const { study, user } = await requireDataUseStudy(request, context, params);
  const form = await request.formData();
  const text = (k: string) => String(form.get(k) ?? "");
  const intent = text("intent");
  const id = params.id ?? "";
  try {
    if (intent === "decide") {
      const outcome = text("outcome");
      const d = await decideDataUseRequest(context.ctx, user, study.code, id, {
        outcome,
        reason: text("reason"),
        ...(outcome === "approved" ? { expiresInDays: text("expiresInDays") } : {}),
      });
      return json({ intent, error: null, field: null, message: `Request ${d.outcome}; the researcher is told.` });
    }
    if (intent === "deliver") {
      const d = await makeDelivery(context.ctx, user, study.code, id);
      return json({
        intent,
        error: null,
        field: null,
        message:
          `Delivery made for ${d.participantCount} ${d.participantCount === 1 ? "participant" : "participants"}; ` +
          `downloadable until ${d.expiresAt.slice(0, 16).replace("T", " ")} UTC. ` +
          `Manifest SHA-256 ${d.manifestSha256}.`,
      });
    }
    return json({ intent, error: "Unknown action", field: null, message: null }, { status: 400 });
  } catch (err) {
    return serviceErrorResponse(err, { intent, message: null });
  }
}

const OUTCOME_CLASS = { approved: "badge ok", declined: "badge bad" } as const;

export default function DataRequest() {
  const d = useLoaderData<typeof loader>();
  const a = useActionData<typeof action>();
  const busy = useNavigation().state === "submitting";
  const r = d.request;
  const err = a?.error ? a : null;
  const invalid = (f: string) => (err?.field === f ? { "aria-invalid": true, "aria-describedby": `${f}-error` } : {});
  const fieldError = (f: string) => (err?.field === f ? <FieldError target={f} message={String(err.error)} /> : null);
  return (
    <StudyPage
      user={d.user}
      study={d.study}
      title={`Data-use request of ${r.createdAt.slice(0, 10)}`}
      crumbs={[
        { to: `/studies/${d.study}/data-requests`, label: "Data-use requests" },
        { to: `/studies/${d.study}/data-requests/${r.id}`, label: r.createdAt.slice(0, 10) },
      ]}
      // A refused delivery's reason is shown in the deliveries section, next to its button.
      flash={a ? { error: a.intent === "deliver" ? null : a.error, message: a.message } : null}
    >
      <section className="card">
        <h2>What was asked</h2>
        <dl>
          <dt>Purpose</dt>
          <dd>{r.purposeWords}</dd>
          <dt>Fields</dt>
          <dd>{r.fields.join(", ")}</dd>
          <dt>Data collected</dt>
          <dd>
            from {r.periodFrom} to {r.periodTo}
          </dd>
          <dt>Researcher</dt>
          <dd>
            {r.requester.name} ({r.requester.email}), {r.institution}
          </dd>
          <dt>Why</dt>
          <dd className="prewrap">{r.justification}</dd>
          <dt>Participants who allow this purpose now</dt>
          <dd id="eligible-now">
            {d.eligibleNow.allowed > 0 ? (
              d.eligibleNow.allowed
            ) : (
              <>None: {d.eligibleNow.reason}. A delivery would be empty.</>
            )}
          </dd>
          <dt>Sealed</dt>
          <dd>{r.seq === null ? "pending (sealed within moments)" : `ledger entry ${r.seq}`}</dd>
        </dl>
      </section>
      <section className="card">
        <h2>Decision</h2>
        {d.decision ? (
          <p>
            <span className={OUTCOME_CLASS[d.decision.outcome]}>{d.decision.outcome}</span> on{" "}
            {d.decision.createdAt.slice(0, 10)} by {d.decision.decidedBy}. Reason: {d.decision.reason}
            {d.decision.expiresInDays
              ? ` Each delivery can be downloaded for ${d.decision.expiresInDays} days after it is made.`
              : ""}
          </p>
        ) : (
          <p className="muted">Awaiting the data access committee's decision.</p>
        )}
        {d.ownRequestNote ? (
          <p className="muted">You made this request: another member of the committee decides it.</p>
        ) : null}
        {d.canDecide ? (
          <Form method="post">
            <input type="hidden" name="intent" value="decide" />
            <fieldset {...invalid("outcome")}>
              <legend>Decision</legend>
              <label className="inline">
                <input type="radio" name="outcome" value="approved" required /> Approve
              </label>
              <label className="inline">
                <input type="radio" name="outcome" value="declined" /> Decline
              </label>
            </fieldset>
            {fieldError("outcome")}
            <label htmlFor="expiresInDays">If approved: days a delivery can be downloaded (1 to 365)</label>
            <input
              id="expiresInDays"
              name="expiresInDays"
              type="number"
              min={1}
              max={365}
              defaultValue={30}
              {...invalid("expiresInDays")}
            />
            {fieldError("expiresInDays")}
            <label htmlFor="reason">Reason (shown to the researcher)</label>
            <textarea id="reason" name="reason" rows={3} maxLength={4000} required {...invalid("reason")} />
            {fieldError("reason")}
            <button type="submit" disabled={busy}>
              Record the decision
            </button>
          </Form>
        ) : null}
      </section>
      <section className="card">
        <h2>Deliveries</h2>
        <p className="muted">
          Each delivery holds only the participants who said yes to this purpose and have not withdrawn, under
          pseudonyms of its own (two deliveries cannot be linked). Only its manifest's SHA-256 is sealed.
        </p>
        {a?.intent === "deliver" && a.error ? (
          <p className="error" role="alert" id="delivery-error">
            {a.error}
          </p>
        ) : null}
        {d.deliveries.length === 0 ? <p className="muted">No delivery yet.</p> : null}
        {d.deliveries.length ? (
          <div className="table-scroll">
            <table>
              <thead>
                <tr>
                  <th>Made</th>
                  <th>Participants</th>
                  <th>Left out</th>
                  <th>Manifest SHA-256</th>
                  <th>Available until</th>
                  {d.canDownload ? <th>Package</th> : null}
                </tr>
              </thead>
              <tbody>
                {d.deliveries.map((x) => (
                  <tr key={x.id}>
                    <td>{x.createdAt.slice(0, 16).replace("T", " ")} UTC</td>
                    <td>{x.participantCount}</td>
                    <td>
                      {x.excluded.declined} said no, {x.excluded.withdrawn} withdrew, {x.excluded.notAsked} not asked
                    </td>
                    <td>
                      <code className="hash">{x.manifestSha256}</code>
                    </td>
                    <td>
                      {x.expiresAt.slice(0, 16).replace("T", " ")} UTC
                      {x.expired ? (
                        <>
                          {" "}
                          <span className="badge bad">expired</span>
                        </>
                      ) : null}
                    </td>
                    {d.canDownload ? (
                      <td>
                        {x.expired ? (
                          <span className="muted">no longer available</span>
                        ) : (
                          <a href={`/studies/${d.study}/data-requests/${r.id}/deliveries/${x.id}.zip`} download>
                            Download ZIP ({Math.ceil(x.bytes / 1024)} KiB)
                          </a>
                        )}
                      </td>
                    ) : null}
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        ) : null}
        {d.canDeliver ? (
          <Form method="post">
            <input type="hidden" name="intent" value="deliver" />
            <button type="submit" disabled={busy}>
              Make a delivery now
            </button>
          </Form>
        ) : null}
      </section>
    </StudyPage>
  );
}
