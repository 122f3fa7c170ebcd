/**
 * Data-use requests of a study (issue 22, ADR 0068): an external researcher lists their own requests and asks for
 * data (purpose from the code list, fields of the approved forms, period, institution, justification); the data
 * access committee and data_use.view see every request. The one study page an external researcher opens (ADR 0069).
 */
import { json, redirect, type ActionFunctionArgs, type LoaderFunctionArgs, type MetaFunction } from "@remix-run/node";
import { Form, Link, useActionData, useLoaderData, useNavigation } from "@remix-run/react";
import { PURPOSE_CODES, PURPOSES } from "../../data-sharing/purposes.ts";
import {
  holdsRole,
  listDataUseRequests,
  deliverableFields,
  submitDataUseRequest,
} from "../../data-sharing/requests.server.ts";
import { requireDataUseStudy } from "../../platform/require-data-use-study.server.ts";
import { serviceErrorResponse } from "../../platform/error-response.server.ts";
import { FieldError } from "../../ui/error-summary.tsx";
import { StudyPage } from "../../ui/study-page.tsx";

export const meta: MetaFunction = () => [{ title: "Data-use requests · TrialSeal" }];

export async function loader({ request, context, params }: LoaderFunctionArgs) {
  const { study, user } = await requireDataUseStudy(request, context, params);
  const canRequest = holdsRole(user, study.id, "external_researcher");
  const requests = await listDataUseRequests(context.ctx, user, study.code);
  const fields = canRequest ? await deliverableFields(context.ctx, study.id) : [];
  return json(
    {
      user: { fullName: user.fullName, email: user.email },
      study: study.code,
      canRequest,
      fields,
      purposes: PURPOSE_CODES.map((code) => ({ code, words: PURPOSES[code].words })),
      requests: requests.map((r) => ({
        id: r.id,
        purposeWords: r.purposeWords,
        fields: r.fields,
        periodFrom: r.periodFrom,
        periodTo: r.periodTo,
        institution: r.institution,
        requester: r.requester.name,
        createdAt: r.createdAt,
        state: r.state,
      })),
    },
    { headers: { "cache-control": "no-store" } },
  );
}

export async function action({ request, context, params }: ActionFunctionArgs) {
  const { study, user } = await requireDataUseStudy(request, context, params);
  const form = await request.formData();
  const text = (k: string) => String(form.get(k) ?? "");
  const fields = form.getAll("fields").map(String);
  const extra = text("extraFields");
  const values = {
    purpose: text("purpose"),
    fields: [...fields, ...extra.split(/[\s,;]+/).filter(Boolean)],
    periodFrom: text("periodFrom"),
    periodTo: text("periodTo"),
    institution: text("institution"),
    justification: text("justification"),
  };
  try {
    const r = await submitDataUseRequest(context.ctx, user, study.code, values);
    return redirect(`/studies/${study.code}/data-requests/${r.id}`);
  } catch (err) {
    return serviceErrorResponse(err, { values: { ...values, extraFields: extra, fields } });
  }
}

const STATE_CLASS: Record<string, string> = {
  approved: "badge ok",
  declined: "badge bad",
  "awaiting decision": "badge",
};

export default function DataRequests() {
  const d = useLoaderData<typeof loader>();
  const a = useActionData<typeof action>();
  const busy = useNavigation().state === "submitting";
  const err = a && "error" in a ? a : null;
  const v = err?.values;
  const invalid = (f: string) => (err?.field === f ? { "aria-invalid": true, "aria-describedby": `${f}-error` } : {});
  const fieldError = (f: string) => (err?.field === f ? <FieldError target={f} message={err.error} /> : null);
  return (
    <StudyPage
      user={d.user}
      study={d.study}
      title="Data-use requests"
      crumbs={[{ to: `/studies/${d.study}/data-requests`, label: "Data-use requests" }]}
      flash={err ? { error: err.error } : null}
    >
      <p className="muted">
        {d.canRequest
          ? "Ask for this study's data for a purpose. The data access committee decides; a delivery holds only the " +
            "participants who agreed to that purpose and have not withdrawn, under pseudonyms of its own."
          : "Every request for this study's data, with the committee's decision and the deliveries made."}
      </p>
      <section className="card">
        <h2>{d.canRequest ? "Your requests" : "Requests"}</h2>
        {d.requests.length === 0 ? (
          <p className="muted">No requests yet.</p>
        ) : (
          <div className="table-scroll">
            <table>
              <thead>
                <tr>
                  <th>Asked on</th>
                  <th>Purpose</th>
                  <th>Fields</th>
                  <th>Period</th>
                  {d.canRequest ? null : <th>Researcher</th>}
                  <th>State</th>
                </tr>
              </thead>
              <tbody>
                {d.requests.map((r) => (
                  <tr key={r.id}>
                    <td>
                      <Link to={`/studies/${d.study}/data-requests/${r.id}`}>{r.createdAt.slice(0, 10)}</Link>
                    </td>
                    <td>{r.purposeWords}</td>
                    <td>{r.fields.join(", ")}</td>
                    <td>
                      {r.periodFrom} to {r.periodTo}
                    </td>
                    {d.canRequest ? null : (
                      <td>
                        {r.requester} ({r.institution})
                      </td>
                    )}
                    <td>
                      <span className={STATE_CLASS[r.state]}>{r.state}</span>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>
      {d.canRequest ? (
        <section className="card">
          <h2>Ask for data</h2>
          <Form method="post">
            <label htmlFor="purpose">Purpose</label>
            <select id="purpose" name="purpose" defaultValue={v?.purpose ?? ""} required {...invalid("purpose")}>
              <option value="">Choose a purpose</option>
              {d.purposes.map((p) => (
                <option key={p.code} value={p.code}>
                  {p.words} ({p.code})
                </option>
              ))}
            </select>
            {fieldError("purpose")}
            <fieldset {...invalid("fields")}>
              <legend>Fields (coded, numeric and date fields of the approved forms)</legend>
              {d.fields.map((f) => (
                <label key={f.key} className="inline">
                  <input type="checkbox" name="fields" value={f.key} defaultChecked={v?.fields?.includes(f.key)} />{" "}
                  {f.label} <code>{f.key}</code>
                </label>
              ))}
              <label htmlFor="extraFields">Or write them as FORM.field, separated by commas</label>
              <input id="extraFields" name="extraFields" type="text" defaultValue={v?.extraFields ?? ""} />
            </fieldset>
            {fieldError("fields")}
            <label htmlFor="periodFrom">Data collected from</label>
            <input
              id="periodFrom"
              name="periodFrom"
              type="date"
              required
              defaultValue={v?.periodFrom ?? ""}
              {...invalid("periodFrom")}
            />
            {fieldError("periodFrom")}
            <label htmlFor="periodTo">Data collected until</label>
            <input
              id="periodTo"
              name="periodTo"
              type="date"
              required
              defaultValue={v?.periodTo ?? ""}
              {...invalid("periodTo")}
            />
            {fieldError("periodTo")}
            <label htmlFor="institution">Your institution</label>
            <input
              id="institution"
              name="institution"
              type="text"
              maxLength={200}
              required
              defaultValue={v?.institution ?? ""}
              {...invalid("institution")}
            />
            {fieldError("institution")}
            <label htmlFor="justification">Why you need these data</label>
            <textarea
              id="justification"
              name="justification"
              rows={5}
              maxLength={4000}
              required
              defaultValue={v?.justification ?? ""}
              {...invalid("justification")}
            />
            {fieldError("justification")}
            <button type="submit" disabled={busy}>
              Send the request
            </button>
          </Form>
        </section>
      ) : null}
    </StudyPage>
  );
}
