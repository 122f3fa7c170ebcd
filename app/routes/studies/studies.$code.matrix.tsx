import { json, type LoaderFunctionArgs, type MetaFunction } from "@remix-run/node";
import { Form, Link, useLoaderData } from "@remix-run/react";
import { requireStudy } from "../../platform/require-study.server.ts";
import { ServiceError } from "../../platform/errors.server.ts";
import { subjectMatrix } from "../../subject-matrix/subject-matrix.server.ts";
import { CELL_STATES, type CellState, STATE_LABELS } from "../../subject-matrix/cell-state.ts";
import { StudyPage } from "../../ui/study-page.tsx";

export const meta: MetaFunction = () => [{ title: "Subject matrix · TrialSeal" }];

export async function loader({ request, context, params }: LoaderFunctionArgs) {
  const { study, user } = await requireStudy(request, context, params, "records.read");
  const q = new URL(request.url).searchParams;
  const filter = {
    site: q.get("site") || undefined,
    subject: q.get("subject") || undefined,
    state: q.get("state") || undefined,
    form: q.get("form") || undefined,
  };
  try {
    const matrix = await subjectMatrix(context.ctx, user, study.code, filter);
    return json({ user: { fullName: user.fullName, email: user.email }, matrix, filter, error: null });
  } catch (err) {
    if (err instanceof ServiceError) throw new Response(err.message, { status: err.status });
    throw err;
  }
}

function cellLabel(subject: string, visit: string, form: string, state: CellState, count: number) {
  const rows = count > 1 ? `, ${count} rows` : "";
  return `${subject}, visit ${visit}, form ${form}: ${STATE_LABELS[state].label}${rows}`;
}

export default function SubjectMatrixPage() {
  const { user, matrix, filter } = useLoaderData<typeof loader>();
  const code = matrix.study;
  const filtered = Boolean(filter.site || filter.subject || filter.state || filter.form);
  return (
    <StudyPage
      user={user}
      study={code}
      title="Subject matrix"
      crumbs={[{ to: `/studies/${code}/matrix`, label: "Matrix" }]}
    >
      {matrix.scheduleSealMismatch ? (
        <p className="error" role="alert" data-schedule-seal-mismatch>
          <strong>{matrix.scheduleSealMismatch}.</strong> It was changed outside TrialSeal: its visits are shown, but
          visit windows are not checked against it; run the integrity audit.
        </p>
      ) : null}
      {matrix.scheduled ? null : (
        <p className="muted" data-no-schedule>
          No visit schedule is set for this study: the visits are those listed in the approved forms.
        </p>
      )}
      <Form method="get" className="card matrix-filters" role="search" aria-label="Filter the subject matrix">
        <div className="grid">
          <div>
            <label htmlFor="m-subject">Subject code</label>
            <input id="m-subject" name="subject" type="search" defaultValue={filter.subject ?? ""} />
          </div>
          <div>
            <label htmlFor="m-site">Site</label>
            <select id="m-site" name="site" defaultValue={filter.site ?? ""}>
              <option value="">All sites</option>
              {matrix.sites.map((s) => (
                <option key={s}>{s}</option>
              ))}
            </select>
          </div>
          <div>
            <label htmlFor="m-state">State</label>
            <select id="m-state" name="state" defaultValue={filter.state ?? ""}>
              <option value="">Any state</option>
              {CELL_STATES.map((s) => (
                <option key={s} value={s}>
                  {STATE_LABELS[s].label}
                </option>
              ))}
            </select>
          </div>
          <div>
            <label htmlFor="m-form">Form</label>
            <select id="m-form" name="form" defaultValue={filter.form ?? ""}>
              <option value="">All forms</option>
              {matrix.forms.map((f) => (
                <option key={f}>{f}</option>
              ))}
            </select>
          </div>
        </div>
        <button type="submit">Show</button>{" "}
        {filtered ? <Link to={`/studies/${code}/matrix`}>Clear filters</Link> : null}
      </Form>
      <details className="matrix-legend" open>
        <summary>Legend</summary>
        <ul>
          {CELL_STATES.map((s) => (
            <li key={s}>
              <span className={`cell-state state-${s}`}>
                <span aria-hidden="true">{STATE_LABELS[s].icon}</span> {STATE_LABELS[s].label}
              </span>{" "}
              <span className="muted">{STATE_LABELS[s].help}</span>
            </li>
          ))}
        </ul>
      </details>
      {matrix.total === 0 ? (
        <p className="muted" data-empty>
          No participants yet: enrol one on the <Link to={`/studies/${code}/participants`}>Participants</Link> page.
        </p>
      ) : matrix.visits.length === 0 ? (
        <p className="muted" data-empty>
          No visits yet: approve a form on the <Link to={`/studies/${code}/forms`}>CRF forms</Link> page.
        </p>
      ) : matrix.rows.length === 0 ? (
        <p className="muted" data-empty>
          No participant matches these filters: <Link to={`/studies/${code}/matrix`}>clear the filters</Link>.
        </p>
      ) : (
        <>
          <p className="muted table-scroll-hint">Scroll the table sideways to see every visit.</p>
          {/* biome-ignore lint/a11y/noNoninteractiveTabindex: a scrolling region must be reachable by keyboard */}
          <section className="table-scroll" tabIndex={0} aria-label="Subject matrix, scrolls sideways">
            <table className="subject-matrix">
              <thead>
                <tr>
                  <th scope="col">Subject</th>
                  {matrix.visits.map((v) => (
                    <th key={v.code} scope="col">
                      {v.name === v.code ? v.code : `${v.name} (${v.code})`}
                    </th>
                  ))}
                </tr>
              </thead>
              <tbody>
                {matrix.rows.map((r) => (
                  <tr key={r.subject} data-subject={r.subject}>
                    <th scope="row">
                      <Link to={`/studies/${code}/participants/${r.subject}`}>{r.subject}</Link>
                      <div className="muted">{r.site}</div>
                    </th>
                    {r.cells.map((c) => (
                      <td key={c.visit}>
                        <ul className="matrix-cell">
                          {c.forms.map((f) => {
                            const label = cellLabel(r.subject, c.visit, f.form, f.state, f.count);
                            const to =
                              f.recordId === null
                                ? `/studies/${code}/participants/${r.subject}?form=${f.form}&visit=${c.visit}`
                                : f.repeating
                                  ? `/studies/${code}/participants/${r.subject}`
                                  : `/studies/${code}/records/${f.recordId}`;
                            return (
                              <li key={f.form}>
                                <Link
                                  to={to}
                                  className={`cell-state state-${f.state}`}
                                  aria-label={label}
                                  title={label}
                                  data-cell={`${r.subject}-${c.visit}-${f.form}`}
                                  data-state={f.state}
                                >
                                  <span aria-hidden="true">{STATE_LABELS[f.state].icon}</span> {f.form}
                                  {f.repeating ? ` (${f.count})` : ""}
                                  <span className="cell-text"> {STATE_LABELS[f.state].label}</span>
                                </Link>
                              </li>
                            );
                          })}
                        </ul>
                      </td>
                    ))}
                  </tr>
                ))}
              </tbody>
            </table>
          </section>
        </>
      )}
    </StudyPage>
  );
}
