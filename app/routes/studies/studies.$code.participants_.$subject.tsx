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
import { databaseLockNotice } from "../../database-lock/database-lock.server.ts";
import { entryFromForm, localeOf, mergeProblems, todayIn } from "../../records/form-values.ts";
import { type Posted, postedInputs, RecordFields } from "../../records/record-fields.tsx";
import { StudyPage } from "../../ui/study-page.tsx";
import { DispositionPanel, dispositionLabel } from "../../participants/disposition-panel.tsx";
import { setDisposition } from "../../participants/disposition.server.ts";
import { participantProgress } from "../../participants/participant-page.server.ts";
import { VisitWindows } from "../../visit-schedule/visit-windows-table.tsx";
import { emergencyUnblind } from "../../randomization/emergency-unblinding.server.ts";
import { ParticipantSupplyPanel } from "../../drug-supply/participant-supply-panel.tsx";
import { participantSupplyCard } from "../../drug-supply/participant-supply.server.ts";
import { RandomizationPanel } from "../../randomization/randomization-panel.tsx";
import { participantRandomization } from "../../randomization/randomization-view.server.ts";
import { randomizeParticipant } from "../../randomization/randomize.server.ts";
import type { FormDefinition } from "../../../anchoring/forms/definition.ts";
import { participantAccessLog } from "../../data-sharing/access-log.server.ts";
import { AccessLogView } from "../../data-sharing/access-log-view.tsx";
import { currentChoices } from "../../data-sharing/choices.server.ts";

export const meta: MetaFunction<typeof loader> = ({ data }) => [
  { title: `${data?.casebook.participant.subject ?? "Subject"} · TrialSeal` },
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
  return { study, user, casebook };
}

export async function loader({ request, context, params }: LoaderFunctionArgs) {
  const { study, user, casebook } = await load(request, context, params, "participant.view");
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
  // A database lock (ADR 0054) refuses every write: offer none of them, say since when instead. Read it whatever lock
  // activeLock names: a subject or record lock may be in force under it too.
  const dbLock = await databaseLockNotice(context.ctx, study.id);
  const studyLocked = lock?.scope === "study";
  // Issue 20 (ADR 0053): the randomization number; the arm only when this user may see it.
  const randomization = await participantRandomization(context.ctx, user, study, {
    id: casebook.participant.id,
    siteId: casebook.participant.siteId,
    disposition: progress.disposition.current,
  });
  // Issue 21: the kits dispensed to the participant (numbers only, never a kit type) and their returns.
  const supply = await participantSupplyCard(context.ctx, user, study.code, casebook.participant.subject);
  // Issue 22 (ADR 0067): who used this participant's data (the list the participant sees) and the choices in force.
  const [accessLog, choices] = await Promise.all([
    participantAccessLog(context.ctx, casebook.participant.id, "staff"),
    currentChoices(context.ctx, casebook.participant.id),
  ]);
  return json({
    accessLog,
    choices: choices.map((c) => ({ key: c.key, text: c.text, agreed: c.agreed, since: c.since })),
    randomization,
    supply,
    disposition: { ...progress.disposition, may: can(user, "participants.enroll", scope) && !dbLock },
    visitWindows: progress.visits,
    scheduleSealMismatch: progress.scheduleSealMismatch,
    user: { fullName: user.fullName, email: user.email },
    study: study.code,
    casebook,
    lock: lock ? { id: lock.id, scope: lock.scope, reason: lock.reason } : null,
    entryClosed: dbLock
      ? `${dbLock}: no record can be entered, corrected, signed, queried or verified. A data manager can unlock it, ` +
        "with a reason, on the study's database lock page."
      : entryClosedBecause(
          lock,
          withdrawals.find((w) => w.scope === "full"),
        ),
    databaseLocked: dbLock !== null,
    timeZone,
    today: todayIn(timeZone),
    may: {
      enter: can(user, "records.enter", scope),
      sign: can(user, "records.sign", scope) && casebook.records.length > 0 && !studyLocked && !dbLock,
      lock: can(user, "records.lock", scope),
    },
  });
}

/** The row number (instance) of a record; 1 for a form that does not repeat. */
const instanceOf = (r: object) => ("instance" in r && typeof r.instance === "number" ? r.instance : 1);

export async function action({ request, context, params }: ActionFunctionArgs) {
  const { study, user, casebook } = await load(request, context, params, null);
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
  if (intent === "randomize" || intent === "emergency_unblind") {
    const subject = casebook.participant.subject;
    try {
      if (intent === "randomize") {
        const factors: Record<string, string> = {};
        for (const [k, v] of form.entries()) if (k.startsWith("factor:")) factors[k.slice(7)] = String(v);
        await randomizeParticipant(context.ctx, user, study.code, subject, { factors });
      } else {
        if (form.get("confirm") !== "yes")
          throw new ServiceError("invalid", "confirm: tick the box to confirm the unblinding", "confirm");
        await emergencyUnblind(context.ctx, user, study.code, subject, { reason: form.get("reason") });
      }
      return redirect(`/studies/${study.code}/participants/${subject}#randomization`);
    } catch (err) {
      if (!(err instanceof ServiceError)) throw err;
      return json(
        {
          values: {},
          posted: null as Posted | null,
          problems: null,
          error: null as string | null,
          field: null as string | null,
          randomization: { message: err.message, field: err.field ?? null },
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
    databaseLocked,
    timeZone,
    today,
    may,
    disposition,
    visitWindows,
    scheduleSealMismatch,
    randomization,
    supply,
    accessLog,
    choices,
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
          Subject {casebook.participant.subject}{" "}
          <span className="badge" data-participant-status>
            {/* The disposition (screening, randomized, ...) while the participant is in the study (issue 20). */}
            {casebook.participant.status === "enrolled" && disposition.current
              ? dispositionLabel(disposition.current).toLowerCase()
              : casebook.participant.status.replace("_", " ")}
          </span>{" "}
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
        <p
          className="card notice"
          data-entry-closed={lock ? lock.scope : "withdrawn"}
          data-lock={lock?.scope}
          data-database-locked={databaseLocked || undefined}
        >
          <strong>No data entry.</strong> {entryClosed}
          {databaseLocked ? (
            <>
              {" "}
              <Link to={`/studies/${study}/lock`}>The database lock page</Link>
            </>
          ) : null}
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
      <RandomizationPanel
        {...randomization}
        error={r && "randomization" in r ? (r.randomization as { message: string; field: string | null }) : null}
      />
      {supply.kits.length || supply.canDispense ? <ParticipantSupplyPanel {...supply} /> : null}
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
      <section className="card" aria-labelledby="choices-title" data-testid="choices-in-force">
        <h2 id="choices-title">The participant's choices in force</h2>
        {choices.length === 0 ? (
          <p className="muted">The signed consent has no optional choices.</p>
        ) : (
          <ul>
            {choices.map((c) => (
              <li key={c.key} data-choice={c.key} data-agreed={c.agreed ? "yes" : "no"}>
                <strong>{c.agreed ? "Yes" : "No"}</strong>: {c.text}{" "}
                <span className="muted">
                  ({c.key}, since {new Date(c.since).toISOString().slice(0, 16).replace("T", " ")} UTC)
                </span>
              </li>
            ))}
          </ul>
        )}
      </section>
      <section className="card" aria-labelledby="uses-title" data-testid="data-uses">
        <h2 id="uses-title">Uses of this participant's data</h2>
        <p className="muted">
          What the participant sees on their receipt page: reads by staff, sponsor and regulators (one line per person,
          kind and hour), exports and data-use deliveries that held their data.
        </p>
        <AccessLogView items={accessLog} empty="No use of this participant's data is recorded yet." />
      </section>
    </StudyPage>
  );
}
