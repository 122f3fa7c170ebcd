/** The participant page's disposition: the current one, a change form and the history (ADR 0033). */
import { Form } from "@remix-run/react";

type Status = "screening" | "screen_failed" | "enrolled" | "randomized" | "discontinued" | "completed";
const LABELS: Record<Status, string> = {
  screening: "Screening",
  screen_failed: "Screen failure",
  enrolled: "Enrolled",
  randomized: "Randomized",
  discontinued: "Discontinued",
  completed: "Completed",
};
export const dispositionLabel = (s: string) => LABELS[s as Status] ?? s;

export interface DispositionPanelProps {
  current: string;
  allowed: string[];
  needsReason: string[];
  history: {
    id: string;
    status: string;
    previous: string | null;
    date: string;
    reason: string | null;
    by: string;
    at: string;
  }[];
  may: boolean;
  today: string;
  error: { message: string; field: string | null } | null;
}

/** The form's fields: an error naming one of them is said next to it (and the field is marked invalid). */
const FIELDS = ["status", "date", "reason"];

export function DispositionPanel({ current, allowed, needsReason, history, may, today, error }: DispositionPanelProps) {
  const fieldError = (field: string) =>
    error?.field === field ? (
      <p className="error" role="alert" id={`disp-${field}-error`} data-field={field}>
        {error.message}
      </p>
    ) : null;
  const invalid = (field: string) =>
    error?.field === field ? { "aria-invalid": true, "aria-describedby": `disp-${field}-error` } : {};
  return (
    <section className="card" aria-labelledby="disposition-title" data-disposition={current}>
      <h2 id="disposition-title">Disposition: {dispositionLabel(current)}</h2>
      {may && allowed.length ? (
        <Form method="post" noValidate>
          <input type="hidden" name="intent" value="disposition" />
          {error && !FIELDS.includes(error.field ?? "") ? (
            <p className="error" role="alert" data-field={error.field ?? ""}>
              {error.message}
            </p>
          ) : null}
          <label htmlFor="disp-status">New disposition</label>
          {fieldError("status")}
          <select id="disp-status" name="status" {...invalid("status")}>
            {allowed.map((s) => (
              <option key={s} value={s}>
                {dispositionLabel(s)}
                {needsReason.includes(s) ? " (reason required)" : ""}
              </option>
            ))}
          </select>
          <label htmlFor="disp-date">Date it took effect (site's clock)</label>
          {fieldError("date")}
          <input id="disp-date" name="date" type="date" defaultValue={today} max={today} {...invalid("date")} />
          <label htmlFor="disp-reason">Reason (required for a screen failure or a discontinuation)</label>
          {fieldError("reason")}
          <input id="disp-reason" name="reason" type="text" maxLength={2000} {...invalid("reason")} />
          <button type="submit">Change disposition</button>
        </Form>
      ) : (
        <p className="muted">
          {allowed.length
            ? "Changing the disposition is not part of your role at this site."
            : "This disposition is final."}
        </p>
      )}
      <h3>History</h3>
      {history.length ? (
        <div className="table-scroll">
          <table data-disposition-history>
            <thead>
              <tr>
                <th scope="col">Disposition</th>
                <th scope="col">Date</th>
                <th scope="col">Reason</th>
                <th scope="col">By</th>
                <th scope="col">Recorded</th>
              </tr>
            </thead>
            <tbody>
              {history.map((h) => (
                <tr key={h.id}>
                  <td>
                    {h.previous ? `${dispositionLabel(h.previous)} → ` : ""}
                    {dispositionLabel(h.status)}
                  </td>
                  <td>{h.date}</td>
                  <td>{h.reason ?? "—"}</td>
                  <td>{h.by}</td>
                  <td>{h.at.slice(0, 16).replace("T", " ")} UTC</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : (
        <p className="muted">
          No change recorded yet: the participant is enrolled. Use the form above when they are randomized, complete or
          discontinue.
        </p>
      )}
    </section>
  );
}
