import {
  json,
  type ActionFunctionArgs,
  type LinksFunction,
  type LoaderFunctionArgs,
  type MetaFunction,
} from "@remix-run/node";
import { Form, useActionData, useLoaderData } from "@remix-run/react";
import { serviceErrorResponse } from "../../platform/error-response.server.ts";
import { can } from "../../platform/permissions.server.ts";
import { requireStudy } from "../../platform/require-study.server.ts";
import registrationStyles from "../../registration/registration.css";
import { OUTCOME_FIELDS, type Outcome, outcomesFromForm } from "../../study-documents/outcome-list.ts";
import { outcomesPage, setOutcomes } from "../../study-documents/sap-outcomes.server.ts";
import { StudyPage } from "../../ui/study-page.tsx";

export const meta: MetaFunction = () => [{ title: "Outcomes · TrialSeal" }];
export const links: LinksFunction = () => [{ rel: "stylesheet", href: registrationStyles }];

export async function loader({ request, context, params }: LoaderFunctionArgs) {
  const { study, user } = await requireStudy(request, context, params, "documents.read");
  const page = await outcomesPage(context.ctx, study.id);
  return json({
    user: { fullName: user.fullName, email: user.email },
    study: study.code,
    canManage: can(user, "documents.manage", { studyId: study.id }),
    sap: page.sap,
    reasonRequired: page.reasonRequired,
    history: page.history.map((h) => ({
      version: h.version,
      sapVersion: h.sapVersion,
      setAt: h.createdAt,
      by: h.by,
      outcomes: h.outcomes,
      changes: h.changes.map((c) => c.words),
      afterFirstEnrolment: h.afterFirstEnrolment,
      reason: h.reason,
      entryId: h.entryId,
    })),
  });
}

type Row = Partial<Record<keyof Outcome, string>>;
const BLANK: Row = { type: "secondary", name: "", measure: "", timePoint: "", analysis: "" };

export async function action({ request, context, params }: ActionFunctionArgs) {
  const { study, user } = await requireStudy(request, context, params, "documents.manage");
  const form = await request.formData();
  const values = outcomesFromForm(form.entries()) as Row[];
  const reason = String(form.get("reason") ?? "");
  // Another blank row, nothing saved (works without JavaScript): the rows come back as they were typed.
  if (form.get("intent") === "add")
    return json({ message: null, error: null, field: null, values: [...values, BLANK], reason, round: Date.now() });
  try {
    const r = await setOutcomes(context.ctx, user, study.code, { outcomes: values, reason });
    return json({
      message:
        `Outcome list version ${r.version} saved and sealed with SAP version ${r.sapVersion} (${r.count} outcomes)` +
        (r.afterFirstEnrolment ? "; marked as changed after the first enrolment." : "."),
      error: null,
      field: null,
      values: null,
      reason: "",
      round: Date.now(),
    });
  } catch (err) {
    return serviceErrorResponse(err, { message: null, values, reason, round: Date.now() });
  }
}

const when = (iso: string) => `${iso.slice(0, 16).replace("T", " ")} UTC`;

function OutcomeItems({ outcomes }: { outcomes: Outcome[] }) {
  return (
    <ol className="outcomes">
      {outcomes.map((o) => (
        <li key={o.name} data-outcome={o.name}>
          <h3>
            <span className={`badge${o.type === "primary" ? " ok" : ""}`}>{o.type}</span> {o.name}
          </h3>
          <dl className="facts">
            <dt>Measure</dt>
            <dd>{o.measure}</dd>
            <dt>Time point</dt>
            <dd>{o.timePoint}</dd>
            <dt>Analysis</dt>
            <dd>{o.analysis}</dd>
          </dl>
        </li>
      ))}
    </ol>
  );
}

export default function Outcomes() {
  const d = useLoaderData<typeof loader>();
  const r = useActionData<typeof action>();
  const current = d.history[d.history.length - 1] ?? null;
  const rows: Row[] = r?.values ?? [...(current?.outcomes ?? []), BLANK];
  const round = `${current?.version ?? 0}-${r?.round ?? 0}`;
  const bad = (name: string) => r?.field === name || undefined;
  return (
    <StudyPage user={d.user} study={d.study} title="Outcomes of the statistical analysis plan" flash={r}>
      <section className="card" aria-labelledby="current-title">
        <h2 id="current-title">{current ? `Current list (version ${current.version})` : "No outcome list yet"}</h2>
        {current ? (
          <>
            <p className="muted">
              Sealed with SAP version {current.sapVersion} on {when(current.setAt)} by {current.by}.
            </p>
            <OutcomeItems outcomes={current.outcomes} />
          </>
        ) : (
          <p className="muted" data-no-outcomes>
            {d.sap
              ? "Enter the primary and secondary outcomes of the statistical analysis plan below."
              : "Upload the statistical analysis plan first (Protocol and plans); the outcome list is sealed with it."}
          </p>
        )}
      </section>

      {d.history.length ? (
        <section className="card" aria-labelledby="history-title">
          <h2 id="history-title">History</h2>
          <ol className="outcomes" reversed>
            {[...d.history].reverse().map((h) => (
              <li key={h.version} data-outcome-version={h.version}>
                <h3>
                  Version {h.version}{" "}
                  {h.afterFirstEnrolment ? (
                    <span className="badge flag">{h.version === 1 ? "set" : "changed"} after first enrolment</span>
                  ) : null}
                </h3>
                <p className="muted">
                  SAP version {h.sapVersion} · {when(h.setAt)} · {h.by}
                </p>
                <ul className="changes">
                  {h.changes.length ? h.changes.map((c) => <li key={c}>{c}</li>) : <li>no change to the outcomes</li>}
                </ul>
                {h.reason ? (
                  <p>
                    <strong>Reason:</strong> {h.reason}
                  </p>
                ) : null}
              </li>
            ))}
          </ol>
        </section>
      ) : null}

      {d.canManage && d.sap ? (
        <Form method="post" className="card" aria-labelledby="edit-title">
          <h2 id="edit-title">{current ? "Change the outcome list" : "Set the outcome list"}</h2>
          <p className="muted">
            The list is sealed with SAP version {d.sap.version}, the latest uploaded. Fill in the empty row to add an
            outcome; tick “Remove” to take one out.
          </p>
          {rows.map((row, i) => (
            // biome-ignore lint/suspicious/noArrayIndexKey: rows are named by position (o-N-field); `round` renews them
            <fieldset className="outcome-row" key={`${round}-${i}`} data-outcome-row={i}>
              <legend>Outcome {i + 1}</legend>
              <label htmlFor={`o-${i}-type`}>Type</label>
              <select id={`o-${i}-type`} name={`o-${i}-type`} defaultValue={row.type} aria-invalid={bad(`o-${i}-type`)}>
                <option value="primary">Primary</option>
                <option value="secondary">Secondary</option>
              </select>
              {(Object.keys(OUTCOME_FIELDS) as (keyof typeof OUTCOME_FIELDS)[]).map((f) => {
                const id = `o-${i}-${f}`;
                const label = OUTCOME_FIELDS[f].words[0].toUpperCase() + OUTCOME_FIELDS[f].words.slice(1);
                return (
                  <div key={f}>
                    <label htmlFor={id}>{label}</label>
                    {f === "measure" || f === "analysis" ? (
                      <textarea
                        id={id}
                        name={id}
                        rows={2}
                        maxLength={OUTCOME_FIELDS[f].max}
                        defaultValue={row[f] ?? ""}
                        aria-invalid={bad(id)}
                      />
                    ) : (
                      <input
                        id={id}
                        name={id}
                        type="text"
                        maxLength={OUTCOME_FIELDS[f].max}
                        defaultValue={row[f] ?? ""}
                        aria-invalid={bad(id)}
                      />
                    )}
                  </div>
                );
              })}
              <label className="inline">
                <input type="checkbox" name={`o-${i}-remove`} /> Remove this outcome
              </label>
            </fieldset>
          ))}
          <label htmlFor="reason">
            Reason for the change{" "}
            <span className="muted">
              {d.reasonRequired
                ? "(required: a participant is already enrolled, and the change will be flagged on the public page)"
                : "(optional before the first participant is enrolled)"}
            </span>
          </label>
          <textarea
            id="reason"
            name="reason"
            rows={3}
            maxLength={2000}
            defaultValue={r?.reason ?? ""}
            required={d.reasonRequired}
            aria-invalid={bad("reason")}
            key={`reason-${round}`}
          />
          <div className="button-row">
            <button type="submit" name="intent" value="add" className="secondary" formNoValidate>
              Add another outcome
            </button>
            <button type="submit" name="intent" value="save">
              Save and seal the list
            </button>
          </div>
        </Form>
      ) : null}
    </StudyPage>
  );
}
