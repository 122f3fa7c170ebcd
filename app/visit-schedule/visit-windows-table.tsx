/**
 * The participant page's visit windows (issue 18, ADR 0032): each scheduled visit's planned date, window, actual
 * date and state. The state is said in words with an icon; the badge colour only adds to them.
 */
import { Link } from "@remix-run/react";

export interface VisitWindowRow {
  visit: string;
  name: string;
  planned: string | null;
  from: string | null;
  to: string | null;
  actual: string | null;
  state: string;
  stateLabel: string;
}

const ICONS: Record<string, string> = {
  in_window: "✓",
  out_of_window: "!",
  overdue: "!",
  due: "●",
  not_due: "○",
};
const TONE: Record<string, string> = { in_window: "ok", out_of_window: "bad", overdue: "bad" };

export function VisitWindows({
  study,
  visits,
  sealMismatch = null,
}: {
  study: string;
  visits: VisitWindowRow[];
  /** The schedule in force does not match its sealed entry (its windows are not relied on for queries). */
  sealMismatch?: string | null;
}) {
  return (
    <section className="card" aria-labelledby="visit-windows-title" data-visit-windows>
      <h2 id="visit-windows-title">Visit windows</h2>
      {sealMismatch ? (
        <p className="error" role="alert" data-schedule-seal-mismatch>
          {sealMismatch}
        </p>
      ) : null}
      {visits.length === 0 ? (
        <p className="muted" data-empty-visit-windows>
          This study has no visit schedule yet: an administrator sets one on the{" "}
          <Link to={`/studies/${study}/schedule`}>visit schedule page</Link>; each visit's window is then shown here.
        </p>
      ) : (
        <>
          <p className="muted">
            Dates on the site's clock. A visit without a planned date waits for its baseline (see the{" "}
            <Link to={`/studies/${study}/schedule`}>visit schedule</Link>).
          </p>
          <div className="table-scroll">
            <table data-visit-window-table>
              <thead>
                <tr>
                  <th scope="col">Visit</th>
                  <th scope="col">Planned</th>
                  <th scope="col">Window</th>
                  <th scope="col">Actual date</th>
                  <th scope="col">State</th>
                </tr>
              </thead>
              <tbody>
                {visits.map((v) => (
                  <tr key={v.visit} data-visit-window={v.visit} data-state={v.state}>
                    <td>
                      {v.name} <span className="muted">({v.visit})</span>
                    </td>
                    <td>{v.planned ?? "no baseline yet"}</td>
                    <td>{v.from && v.to ? (v.from === v.to ? `on ${v.from}` : `${v.from} to ${v.to}`) : "—"}</td>
                    <td>{v.actual ?? "not entered"}</td>
                    <td>
                      <span className={`badge ${TONE[v.state] ?? ""}`.trim()}>
                        <span aria-hidden="true">{ICONS[v.state] ?? ""} </span>
                        {v.stateLabel}
                      </span>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </>
      )}
    </section>
  );
}
