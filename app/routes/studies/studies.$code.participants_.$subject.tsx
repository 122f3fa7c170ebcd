import { json, redirect, type ActionFunctionArgs, type LoaderFunctionArgs, type MetaFunction } from "@remix-run/node";
import { Form, Link, useActionData, useLoaderData, useSearchParams } from "@remix-run/react";
import { serviceErrorResponse } from "../../platform/error-response.server.ts";
import { saveRecord, subjectCasebook } from "../../records/records.server.ts";
import {
  activeLock,
  releaseLock,
  setLock,
  signCasebook,
} from "../../clinical-monitoring/clinical-monitoring.server.ts";
import { can } from "../../platform/permissions.server.ts";
import { requestMeta } from "../../platform/session.server.ts";
import { requireStudy } from "../../platform/require-study.server.ts";
import { valuesFromForm } from "../../records/form-values.ts";
import { RecordFields } from "../../records/record-fields.tsx";
import { StudyPage } from "../../ui/study-page.tsx";
import type { FormDefinition } from "../../../anchoring/forms/definition.ts";

export const meta: MetaFunction<typeof loader> = ({ data }) => [
  { title: `${data?.casebook.participant.subject ?? "Subject"} · TrialSeal` },
];

async function load(request: Request, context: LoaderFunctionArgs["context"], params: LoaderFunctionArgs["params"]) {
  const { study, user } = await requireStudy(request, context, params, "records.read");
  const casebook = await subjectCasebook(context.ctx, user, study.id, params.subject ?? "");
  if (!casebook) throw new Response("No such subject", { status: 404 });
  return { study, user, casebook };
}

export async function loader({ request, context, params }: LoaderFunctionArgs) {
  const { study, user, casebook } = await load(request, context, params);
  const scope = { studyId: study.id, siteId: casebook.participant.siteId };
  const lock = await activeLock(context.ctx, {
    id: "00000000-0000-0000-0000-000000000000",
    studyId: study.id,
    participantId: casebook.participant.id,
  });
  return json({
    user: { fullName: user.fullName, email: user.email },
    study: study.code,
    casebook,
    lock: lock ? { id: lock.id, scope: lock.scope, reason: lock.reason } : null,
    may: {
      sign: can(user, "records.sign", scope) && casebook.records.length > 0,
      lock: can(user, "records.lock", scope),
    },
  });
}

export async function action({ request, context, params }: ActionFunctionArgs) {
  const { study, user, casebook } = await load(request, context, params);
  const form = await request.formData();
  const intent = String(form.get("intent") ?? "enter");
  if (intent !== "enter") {
    try {
      if (intent === "sign")
        await signCasebook(
          context.ctx,
          user,
          study.code,
          casebook.participant.subject,
          {
            meaning: String(form.get("meaning") ?? ""),
            password: String(form.get("password") ?? ""),
            code: String(form.get("code") ?? "") || undefined,
          },
          requestMeta(request),
        );
      else if (intent === "lock")
        await setLock(context.ctx, user, study.code, {
          scope: "subject",
          target: casebook.participant.subject,
          reason: String(form.get("reason") ?? ""),
        });
      else if (intent === "unlock")
        await releaseLock(
          context.ctx,
          user,
          study.code,
          String(form.get("lock") ?? ""),
          String(form.get("reason") ?? ""),
        );
      return redirect(`/studies/${study.code}/participants/${casebook.participant.subject}`);
    } catch (err) {
      return serviceErrorResponse(err, { values: {} });
    }
  }
  const def = casebook.forms.find((f) => f.code === String(form.get("form")));
  if (!def) return json({ values: {}, error: "choose a form", field: "form" }, { status: 422 });
  const values = valuesFromForm(def, form);
  try {
    const r = await saveRecord(context.ctx, user, study.code, {
      subject: casebook.participant.subject,
      form: def.code,
      formVersion: def.version,
      visit: String(form.get("visit") ?? ""),
      data: values,
    });
    return redirect(`/studies/${study.code}/records/${r.id}`);
  } catch (err) {
    return serviceErrorResponse(err, { values });
  }
}

export default function Subject() {
  const { user, study, casebook, lock, may } = useLoaderData<typeof loader>();
  const r = useActionData<typeof action>();
  const [params] = useSearchParams();
  const forms = casebook.forms as FormDefinition[];
  const entering = forms.find((f) => f.code === params.get("form"));
  const visit = params.get("visit");
  const recordOf = (form: string, v: string) => casebook.records.find((x) => x.form === form && x.visit === v);
  return (
    <StudyPage
      user={user}
      study={study}
      crumbs={[{ to: `/studies/${study}/participants`, label: "Participants" }]}
      title={
        <>
          Subject {casebook.participant.subject} <span className="badge">{casebook.participant.status}</span>{" "}
          <span className="muted">site {casebook.participant.site}</span>
        </>
      }
    >
      <p>
        <a href={`/studies/${study}/participants/${casebook.participant.subject}/casebook.pdf`} download>
          Certified copy (PDF)
        </a>{" "}
        · <Link to={`/studies/${study}/participants/${casebook.participant.subject}/consent`}>Consent</Link>
      </p>
      <table>
        <thead>
          <tr>
            <th>Form</th>
            <th>Visits</th>
          </tr>
        </thead>
        <tbody>
          {forms.map((f) => (
            <tr key={f.code}>
              <td>
                {f.title}{" "}
                <span className="muted">
                  {f.code} v{f.version}
                </span>
              </td>
              <td>
                {f.visits.map((v) => {
                  const rec = recordOf(f.code, v);
                  return (
                    <span key={v} className="visit">
                      {rec ? (
                        <Link to={`/studies/${study}/records/${rec.id}`} data-record={`${f.code}-${v}`}>
                          {v} (v{rec.version}
                          {rec.status === "locked" ? ", locked" : ""})
                          {rec.matchesSeal ? null : (
                            <>
                              {" "}
                              <span className="badge bad" data-seal="mismatch">
                                does not match its sealed entry
                              </span>
                            </>
                          )}
                        </Link>
                      ) : (
                        <Link to={`?form=${f.code}&visit=${v}`} data-enter={`${f.code}-${v}`}>
                          {v}: enter
                        </Link>
                      )}
                    </span>
                  );
                })}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {lock ? (
        <p className="error" data-lock={lock.scope}>
          Locked ({lock.scope}): {lock.reason}
        </p>
      ) : null}
      {r?.error && !entering ? (
        <p className="error" role="alert">
          {r.error}
        </p>
      ) : null}
      <div className="grid">
        {may.sign ? (
          <Form method="post" className="card" noValidate>
            <input type="hidden" name="intent" value="sign" />
            <h2>Sign the casebook</h2>
            <label htmlFor="cb-meaning">Meaning of this signature</label>
            <select id="cb-meaning" name="meaning">
              <option value="approved">approved</option>
              <option value="reviewed">reviewed</option>
            </select>
            <label htmlFor="cb-password">Your password</label>
            <input id="cb-password" name="password" type="password" autoComplete="current-password" />
            <label htmlFor="cb-code">Authenticator code</label>
            <input id="cb-code" name="code" type="text" inputMode="numeric" autoComplete="one-time-code" />
            <button type="submit">Sign all records</button>
          </Form>
        ) : null}
        {may.lock && (!lock || lock.scope === "subject") ? (
          <Form method="post" className="card" noValidate>
            <input type="hidden" name="intent" value={lock ? "unlock" : "lock"} />
            {lock ? <input type="hidden" name="lock" value={lock.id} /> : null}
            <h2>{lock ? "Unlock this casebook" : "Lock this casebook"}</h2>
            <label htmlFor="cb-reason">Reason</label>
            <input id="cb-reason" name="reason" type="text" />
            <button type="submit">{lock ? "Unlock" : "Lock casebook"}</button>
          </Form>
        ) : null}
      </div>
      {entering && visit ? (
        <section className="card">
          <h2>
            {entering.title}, visit {visit}
          </h2>
          {r?.error && !r.field?.startsWith("data.") ? (
            <p className="error" role="alert">
              {r.error}
            </p>
          ) : null}
          <Form method="post" noValidate>
            <input type="hidden" name="form" value={entering.code} />
            <input type="hidden" name="visit" value={visit} />
            <RecordFields
              def={entering}
              values={r?.values}
              error={r?.error ? { field: r.field, message: r.error } : null}
            />
            <button type="submit">Save</button>
          </Form>
        </section>
      ) : null}
    </StudyPage>
  );
}
