import {
  json,
  redirect,
  type ActionFunctionArgs,
  type LinksFunction,
  type LoaderFunctionArgs,
  type MetaFunction,
} from "@remix-run/node";
import { Form, Link, useActionData, useLoaderData, useLocation } from "@remix-run/react";
import { answerQuery, closeQuery, reopenQuery } from "../../clinical-monitoring/clinical-monitoring.server.ts";
import { ServiceError } from "../../platform/errors.server.ts";
import { serviceErrorResponse } from "../../platform/error-response.server.ts";
import { requireStudy } from "../../platform/require-study.server.ts";
import { parseQueryFilters, queryList, type QueryFilters } from "../../queries/query-list.server.ts";
import queryStyles from "../../queries/queries.css";
import { StudyPage } from "../../ui/study-page.tsx";

export const meta: MetaFunction = () => [{ title: "Queries · TrialSeal" }];
export const links: LinksFunction = () => [{ rel: "stylesheet", href: queryStyles }];

const STATUS_TEXT = { open: "Open", answered: "Answered", closed: "Closed" } as const;
const day = (iso: string | null) => (iso ? `${iso.replace("T", " ").slice(0, 16)} UTC` : "-");

export async function loader({ request, context, params }: LoaderFunctionArgs) {
  const { study, user } = await requireStudy(request, context, params, "records.read");
  const url = new URL(request.url);
  let filters: QueryFilters = {};
  let filterError: { error: string; field: string | null } | null = null;
  try {
    filters = parseQueryFilters(url.searchParams);
  } catch (err) {
    if (!(err instanceof ServiceError)) throw err;
    filterError = { error: err.message, field: err.field ?? null };
  }
  const list = await queryList(context.ctx, user, study.code, filterError ? {} : filters);
  return json(
    {
      user: { fullName: user.fullName, email: user.email },
      study: study.code,
      rows: filterError ? [] : list.rows.map(({ history: _h, ...r }) => r),
      total: list.total,
      options: list.options,
      values: Object.fromEntries(url.searchParams),
      search: url.search,
      filterError,
    },
    { status: filterError ? 400 : 200 },
  );
}

export async function action({ request, context, params }: ActionFunctionArgs) {
  const { study, user } = await requireStudy(request, context, params, "records.read");
  const form = await request.formData();
  const text = (k: string) => String(form.get(k) ?? "");
  const query = text("query");
  const intent = text("intent");
  try {
    if (intent === "answer") await answerQuery(context.ctx, user, study.code, query, text("answer"));
    else if (intent === "close") await closeQuery(context.ctx, user, study.code, query);
    else if (intent === "reopen") await reopenQuery(context.ctx, user, study.code, query, { reason: text("reason") });
    else throw new ServiceError("invalid", "intent: choose answer, close or re-open", "intent");
    return redirect(`/studies/${study.code}/queries${new URL(request.url).search}`);
  } catch (err) {
    return serviceErrorResponse(err, { query, intent, posted: text(intent === "reopen" ? "reason" : "answer") });
  }
}

export default function QueriesPage() {
  const { user, study, rows, total, options, values, search, filterError } = useLoaderData<typeof loader>();
  const r = useActionData<typeof action>();
  const location = useLocation();
  const v = (k: string) => (values as Record<string, string>)[k] ?? "";
  return (
    <StudyPage user={user} study={study} title="Queries">
      <p className="muted">
        Every query of the study you may see. An open query waits for the site (a coordinator or investigator answers
        it); an answered one waits for whoever raised it (monitor or data manager) to close or re-open it.
      </p>
      <Form method="get" className="query-filters card" aria-label="Filter the queries">
        <div>
          <label htmlFor="f-status">Status</label>
          <select id="f-status" name="status" defaultValue={v("status")}>
            <option value="">any</option>
            <option value="open">open</option>
            <option value="answered">answered</option>
            <option value="closed">closed</option>
          </select>
        </div>
        <FilterSelect name="site" label="Site" value={v("site")} options={options.sites} />
        <FilterSelect name="form" label="Form" value={v("form")} options={options.forms} />
        <FilterSelect name="field" label="Field" value={v("field")} options={options.fields} />
        <FilterSelect name="raiser" label="Raised by" value={v("raiser")} options={options.raisers} any="anyone" />
        <div>
          <label>
            <input type="checkbox" name="mine" value="1" defaultChecked={v("mine") === "1"} /> Waiting for me
          </label>
        </div>
        <button type="submit">Filter</button>
        <a href={`/studies/${study}/queries.csv${search}`} download>
          Download as CSV
        </a>
      </Form>
      {filterError ? (
        <p className="error" role="alert" data-error-field={filterError.field ?? ""}>
          {filterError.error}
        </p>
      ) : null}
      {rows.length === 0 ? (
        <p className="muted" data-empty>
          {total === 0
            ? "No queries yet. Monitors and data managers raise one from a record page (open a participant's " +
              'record, then "Raise a query" on a field); values outside a field\'s soft limits raise one ' +
              "automatically."
            : `No queries match these filters. `}
          {total > 0 ? <Link to={location.pathname}>Clear the filters to see all {total}.</Link> : null}
        </p>
      ) : (
        <section className="table-scroll" aria-label="Queries (scrolls sideways)">
          <table className="query-list">
            <thead>
              <tr>
                <th>Subject</th>
                <th>Site</th>
                <th>Visit</th>
                <th>Form</th>
                <th>Field</th>
                <th>Query</th>
                <th>Status</th>
                <th>Raised</th>
                <th>Answered</th>
                <th>Age (days)</th>
                <th>Waiting for</th>
                <th>Action</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((q) => {
                const err = r && "error" in r && r.query === q.id ? r : null;
                return (
                  <tr key={q.id} data-query={q.id} data-status={q.status}>
                    <td>
                      <Link to={`/studies/${study}/records/${q.recordId}#field-${q.field}`}>{q.subject}</Link>
                    </td>
                    <td>{q.site}</td>
                    <td>{q.visit}</td>
                    <td>{q.form}</td>
                    <td data-field={q.field}>{q.fieldText}</td>
                    <td>
                      {q.text}
                      {q.answer ? <div className="muted">Answer: {q.answer}</div> : null}
                    </td>
                    <td>
                      <span className={`badge${q.status === "open" ? " bad" : q.status === "closed" ? " ok" : ""}`}>
                        {STATUS_TEXT[q.status]}
                      </span>
                    </td>
                    <td>
                      {q.raisedBy}
                      <div className="muted">{day(q.raisedAt)}</div>
                    </td>
                    <td>
                      {q.answeredBy ?? "-"}
                      {q.answeredAt ? <div className="muted">{day(q.answeredAt)}</div> : null}
                    </td>
                    <td>{q.ageDays}</td>
                    <td data-waiting={q.waitingFor ?? ""}>
                      {q.waitingForText}
                      {q.waitingForMe ? <strong> (you)</strong> : null}
                    </td>
                    <td className="query-actions">
                      {err ? (
                        <p className="error" role="alert" data-error-field={err.field ?? ""}>
                          {err.error}
                        </p>
                      ) : null}
                      {q.can.answer ? (
                        <Form method="post" noValidate>
                          <input type="hidden" name="intent" value="answer" />
                          <input type="hidden" name="query" value={q.id} />
                          <label htmlFor={`answer-${q.id}`}>Answer</label>
                          <input
                            id={`answer-${q.id}`}
                            name="answer"
                            type="text"
                            aria-invalid={err?.field === "answer" || undefined}
                          />
                          <button type="submit">Answer</button>
                        </Form>
                      ) : null}
                      {q.can.close ? (
                        <Form method="post">
                          <input type="hidden" name="intent" value="close" />
                          <input type="hidden" name="query" value={q.id} />
                          <button type="submit">Close</button>
                        </Form>
                      ) : null}
                      {q.can.reopen ? (
                        <Form method="post" noValidate>
                          <input type="hidden" name="intent" value="reopen" />
                          <input type="hidden" name="query" value={q.id} />
                          <label htmlFor={`reason-${q.id}`}>Reason to re-open</label>
                          <input
                            id={`reason-${q.id}`}
                            name="reason"
                            type="text"
                            aria-invalid={err?.field === "reason" || undefined}
                          />
                          <button type="submit">Re-open</button>
                        </Form>
                      ) : null}
                      {!q.can.answer && !q.can.close && !q.can.reopen ? <span className="muted">-</span> : null}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </section>
      )}
    </StudyPage>
  );
}

/** One filter of the query list: "any" (all) or one of the values present. */
function FilterSelect(props: {
  name: string;
  label: string;
  value: string;
  options: (string | { value: string; label: string })[];
  any?: string;
}) {
  return (
    <div>
      <label htmlFor={`f-${props.name}`}>{props.label}</label>
      <select id={`f-${props.name}`} name={props.name} defaultValue={props.value}>
        <option value="">{props.any ?? "any"}</option>
        {props.options.map((o) =>
          typeof o === "string" ? (
            <option key={o}>{o}</option>
          ) : (
            <option key={o.value} value={o.value}>
              {o.label}
            </option>
          ),
        )}
      </select>
    </div>
  );
}
