import { json, redirect, type ActionFunctionArgs, type LoaderFunctionArgs, type MetaFunction } from "@remix-run/node";
import { Form, Link, useActionData, useLoaderData, useSearchParams } from "@remix-run/react";
import { serviceErrorResponse } from "../../platform/error-response.server.ts";
import { ServiceError } from "../../platform/errors.server.ts";
import { saveRecord, subjectCasebook } from "../../records/records.server.ts";
import {
  activeLock,
  releaseLock,
  setLock,
  casebookSigningText,
  signCasebook,
} from "../../clinical-monitoring/clinical-monitoring.server.ts";
import { withdrawalsOf } from "../../consent/status.server.ts";
import { can } from "../../platform/permissions.server.ts";
import { requestMeta } from "../../platform/session.server.ts";
import { requireStudy } from "../../platform/require-study.server.ts";
import { siteTimeZone } from "../../studies/studies.server.ts";
import { entryClosedBecause } from "../../records/entry-closed.ts";
import { entryFromForm, localeOf, mergeProblems, todayIn } from "../../records/form-values.ts";
import { type Posted, postedInputs, RecordFields } from "../../records/record-fields.tsx";
import { StudyPage } from "../../ui/study-page.tsx";
import { DispositionPanel } from "../../participants/disposition-panel.tsx";
import { setDisposition } from "../../participants/disposition.server.ts";
import { participantProgress } from "../../participants/participant-page.server.ts";
import { VisitWindows } from "../../visit-schedule/visit-windows-table.tsx";
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
  const [lock, withdrawals, timeZone] = await Promise.all([
    activeLock(context.ctx, {
      id: "00000000-0000-0000-0000-000000000000",
      studyId: study.id,
      participantId: casebook.participant.id,
    }),
    withdrawalsOf(context.ctx, casebook.participant.id),
    siteTimeZone(context.ctx, casebook.participant.siteId),
  ]);
  const progress = await participantProgress(context.ctx, study.id, casebook.participant.id);
  return json({
    disposition: { ...progress.disposition, may: can(user, "participants.enroll", scope) },
    visitWindows: progress.visits,
    scheduleSealMismatch: progress.scheduleSealMismatch,
    user: { fullName: user.fullName, email: user.email },
    study: study.code,
    casebook,
    lock: lock ? { id: lock.id, scope: lock.scope, reason: lock.reason } : null,
    entryClosed: entryClosedBecause(
      lock,
      withdrawals.find((w) => w.scope === "full"),
    ),
    timeZone,
    today: todayIn(timeZone),
    may: {
      enter: can(user, "records.enter", scope),
      sign: can(user, "records.sign", scope) && casebook.records.length > 0,
      lock: can(user, "records.lock", scope),
    },
  });
}

/** The row number (instance) of a record; 1 for a form that does not repeat. */
const instanceOf = (r: object) => ("instance" in r && typeof r.instance === "number" ? r.instance : 1);

export async function action({ request, context, params }: ActionFunctionArgs) {
  const { study, user, casebook } = await load(request, context, params);
  const form = await request.formData();
  const intent = String(form.get("intent") ?? "enter");
  if (intent === "disposition") {
    try {
      await setDisposition(context.ctx, user, study.code, casebook.participant.subject, {
        status: form.get("status"),
        date: form.get("date"),
        reason: form.get("reason"),
      });
      return redirect(`/studies/${study.code}/participants/${casebook.participant.subject}`);
    } catch (err) {
      if (!(err instanceof ServiceError)) throw err;
      return json(
        {
          values: {},
          posted: null as Posted | null,
          problems: null,
          error: null as string | null,
          field: null as string | null,
          disposition: { message: err.message, field: err.field ?? null },
        },
        { status: err.status },
      );
    }
  }
  if (intent !== "enter") {
    try {
      if (intent === "sign") {
        const meaning = String(form.get("meaning") ?? "");
        const out = await signCasebook(
          context.ctx,
          user,
          study.code,
          casebook.participant.subject,
          {
            meaning,
            password: String(form.get("password") ?? ""),
            code: String(form.get("code") ?? "") || undefined,
          },
          requestMeta(request),
        );
        // Records already signed with that meaning were left as they are: say which (issue 17).
        if (out.skipped.length)
          return json({
            values: {},
            posted: null as Posted | null,
            problems: null,
            error: null as string | null,
            field: null as string | null,
            signed: casebookSigningText(out, meaning),
          });
      } else if (intent === "lock")
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
      return serviceErrorResponse(err, { values: {}, posted: null as Posted | null, problems: null });
    }
  }
  const def = casebook.forms.find((f) => f.code === String(form.get("form")));
  if (!def)
    return json(
      { values: {}, posted: null as Posted | null, error: "Choose a form", field: "form", problems: null },
      { status: 422 },
    );
  const timeZone = await siteTimeZone(context.ctx, casebook.participant.siteId);
  const entry = entryFromForm(def, form, { timeZone, locale: localeOf(request.headers.get("accept-language")) });
  const posted = postedInputs(form);
  try {
    const r = await saveRecord(context.ctx, user, study.code, {
      subject: casebook.participant.subject,
      form: def.code,
      formVersion: def.version,
      visit: String(form.get("visit") ?? ""),
      data: entry.data,
      // A repeating form's row number is assigned by the service (the next one).
      ...(Object.keys(entry.missing).length ? { missing: entry.missing } : {}),
      ...(entry.confirmed.length ? { confirmed: entry.confirmed } : {}),
    });
    return redirect(`/studies/${study.code}/records/${r.id}`);
  } catch (err) {
    if (!(err instanceof ServiceError)) throw err;
    const service = err.problems?.length ? err.problems : [{ field: err.field ?? "", message: err.message }];
    return json(
      {
        values: entry.data,
        posted,
        error: err.message,
        field: err.field ?? null,
        problems: mergeProblems(service, entry.problems),
      },
      { status: err.status },
    );
  }
}

export default function Subject() {
  const {
    user,
    study,
    casebook,
    lock,
    entryClosed,
    timeZone,
    today,
    may,
    disposition,
    visitWindows,
    scheduleSealMismatch,
  } = useLoaderData<typeof loader>();
  const r = useActionData<typeof action>();
  const [params] = useSearchParams();
  const forms = casebook.forms as FormDefinition[];
  const entering = forms.find((f) => f.code === params.get("form"));
  const visit = params.get("visit");
  const rowsOf = (form: string, v: string) =>
    casebook.records.filter((x) => x.form === form && x.visit === v).sort((a, b) => instanceOf(a) - instanceOf(b));
  const newRow = Number(params.get("row") ?? "1");
  const mayEnter = may.enter && !entryClosed;
  // Problems of the entry's fields go to the form's summary; a refusal of the whole save (no consent yet, a lock,
  // a conflict) is said above the form.
  const fieldProblems = (r?.problems ?? []).filter((p) => p.field.startsWith("data."));
  const wholeError = r?.error && fieldProblems.length === 0 ? r.error : null;
  const recordLink = (rec: (typeof casebook.records)[number], label: string) => (
    <Link
      to={`/studies/${study}/records/${rec.id}`}
      data-record={`${rec.form}-${rec.visit}${instanceOf(rec) > 1 ? `-${instanceOf(rec)}` : ""}`}
    >
      {label} (v{rec.version}
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
  );
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
      {entryClosed ? (
        <p className="card notice" data-entry-closed={lock ? lock.scope : "withdrawn"} data-lock={lock?.scope}>
          <strong>No data entry.</strong> {entryClosed}
        </p>
      ) : null}
      <table className="casebook">
        <thead>
          <tr>
            <th>Form</th>
            <th>Visits</th>
          </tr>
        </thead>
        <tbody>
          {forms.map((f) => (
            <tr key={f.code} data-form={f.code}>
              <td>
                {f.title}{" "}
                <span className="muted">
                  {f.code} v{f.version}
                  {f.repeating ? ", one row per entry" : ""}
                </span>
              </td>
              <td>
                {f.visits.map((v) => {
                  const rows = rowsOf(f.code, v);
                  if (f.repeating)
                    return (
                      <span key={v} className="visit repeating" data-visit={`${f.code}-${v}`}>
                        <strong>{v}:</strong> {rows.length === 0 ? <span className="muted">no rows yet </span> : null}
                        {rows.map((rec) => (
                          <span key={rec.id} className="row-link">
                            {recordLink(rec, `row ${instanceOf(rec)}`)}{" "}
                          </span>
                        ))}
                        {mayEnter ? (
                          <Link
                            to={`?form=${f.code}&visit=${v}&row=${Math.max(0, ...rows.map(instanceOf)) + 1}`}
                            data-enter={`${f.code}-${v}`}
                          >
                            Add a row
                          </Link>
                        ) : null}
                      </span>
                    );
                  const rec = rows[0];
                  return (
                    <span key={v} className="visit">
                      {rec ? (
                        recordLink(rec, v)
                      ) : mayEnter ? (
                        <Link to={`?form=${f.code}&visit=${v}`} data-enter={`${f.code}-${v}`}>
                          {v}: enter
                        </Link>
                      ) : (
                        <span className="muted">{v}: not entered</span>
                      )}
                    </span>
                  );
                })}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {lock && !entryClosed ? (
        <p className="error" data-lock={lock.scope}>
          Locked ({lock.scope}): {lock.reason}
        </p>
      ) : null}
      {r?.error && !entering ? (
        <p className="error" role="alert">
          {r.error}
        </p>
      ) : null}
      {r && "signed" in r ? (
        <p className="card notice" role="status" data-casebook-signed>
          {r.signed}
        </p>
      ) : null}
      <VisitWindows study={study} visits={visitWindows} sealMismatch={scheduleSealMismatch} />
      <DispositionPanel
        {...disposition}
        today={today}
        error={r && "disposition" in r ? (r.disposition as { message: string; field: string | null }) : null}
      />
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
      {entering && visit && !may.enter ? (
        <p className="card notice" data-entry-refused>
          Entering data for this participant is not part of your role at this site.
        </p>
      ) : null}
      {entering && visit && mayEnter ? (
        <section className="card entry" aria-labelledby="entry-title">
          <h2 id="entry-title">
            {entering.title}, visit {visit}
            {entering.repeating ? `, row ${newRow}` : ""}
          </h2>
          <p className="muted">Fields marked * are required. Dates and times are on the site's clock ({timeZone}).</p>
          {wholeError ? (
            <p className="error" role="alert" data-field={r?.field ?? ""}>
              {wholeError}
            </p>
          ) : null}
          <Form method="post" noValidate>
            <input type="hidden" name="form" value={entering.code} />
            <input type="hidden" name="visit" value={visit} />
            <RecordFields
              key={`${entering.code}-${entering.version}-${visit}-${newRow}`}
              def={entering}
              posted={r?.posted ?? null}
              problems={fieldProblems}
              timeZone={timeZone}
              today={today}
            />
            <button type="submit">Save</button>
          </Form>
        </section>
      ) : null}
    </StudyPage>
  );
}
