import { json, type LoaderFunctionArgs, type MetaFunction } from "@remix-run/node";
import { Form, useLoaderData } from "@remix-run/react";
import {
  auditTrailLines,
  parseAuditFilters,
  queryAuditTrail,
  type AuditFilters,
  type AuditLine,
} from "../../audit-trail/audit-trail.server.ts";
import { ServiceError } from "../../platform/errors.server.ts";
import { requireStudy } from "../../platform/require-study.server.ts";
import { UtcAndLocal } from "../../ui/local-time.tsx";
import { StudyPage } from "../../ui/study-page.tsx";

export const meta: MetaFunction = () => [{ title: "Audit trail · TrialSeal" }];

type Row = AuditLine;

const FILTERS = [
  ["site", "Site"],
  ["subject", "Participant (subject code)"],
  ["form", "Form (code)"],
  ["field", "Field (code)"],
  ["user", "User email"],
  ["action", "Action (prefix)"],
  ["from", "From (YYYY-MM-DD, UTC)"],
  ["to", "To (YYYY-MM-DD, UTC)"],
] as const;

const text = (v: string | number | null) => (v === null ? "" : String(v));

export async function loader({ request, context, params }: LoaderFunctionArgs) {
  const { study, user } = await requireStudy(request, context, params, "audit.view");
  const url = new URL(request.url);
  let filters: AuditFilters;
  try {
    filters = parseAuditFilters(url.searchParams);
  } catch (err) {
    if (err instanceof ServiceError)
      return json(
        {
          user: { fullName: user.fullName, email: user.email },
          study: study.code,
          error: err.message,
          field: err.field ?? null,
          rows: [] as Row[],
          query: url.search,
          values: Object.fromEntries(url.searchParams),
        },
        { status: 400 },
      );
    throw err;
  }
  const rows = await queryAuditTrail(context.ctx, study.id, filters);
  return json({
    user: { fullName: user.fullName, email: user.email },
    study: study.code,
    error: null,
    field: null,
    query: url.search,
    values: Object.fromEntries(url.searchParams),
    rows: auditTrailLines(rows),
  });
}

export default function AuditTrail() {
  const d = useLoaderData<typeof loader>();
  return (
    <StudyPage user={d.user} study={d.study} title="Audit trail">
      <Form method="get" className="card filters">
        <div className="grid">
          {FILTERS.map(([name, label]) => (
            <div key={name}>
              <label htmlFor={name}>{label}</label>
              <input
                id={name}
                name={name}
                type="text"
                defaultValue={d.values[name] ?? ""}
                aria-invalid={d.field === name || undefined}
              />
            </div>
          ))}
        </div>
        <button type="submit">Filter</button> <a href={`/studies/${d.study}/audit.csv${d.query}`}>Download CSV</a>
      </Form>
      {d.error ? (
        <p className="error" role="alert">
          {d.error}
        </p>
      ) : null}
      <p className="muted">
        Times are UTC (your local time beside). A data change is one line per field: the value before and after, with
        the field&apos;s label from the form version used and its code; values are read from the record versions and
        checked against their sealed entries.
      </p>
      <table className="stack audit-trail">
        <thead>
          <tr>
            <th>Time</th>
            <th>Action</th>
            <th>Who</th>
            <th>Site / subject</th>
            <th>Form</th>
            <th>Field</th>
            <th>Old → new</th>
            <th>Reason for change</th>
            <th>Seal / detail</th>
          </tr>
        </thead>
        <tbody>
          {d.rows.map((r) => (
            <tr key={`${r.event}-${r.field ?? ""}`} data-event={r.event} data-action={r.action}>
              <td data-label="Time">
                <UtcAndLocal iso={r.time_utc} />
              </td>
              <td data-label="Action">
                {r.action}
                {r.outcome !== "success" ? <span className="error"> ({r.outcome})</span> : null}
              </td>
              <td data-label="Who">{text(r.user)}</td>
              <td data-label="Site / subject">{[r.site, r.subject].filter(Boolean).join(" / ")}</td>
              <td data-label="Form">
                {r.form ? `${r.form}${r.form_version ? ` v${r.form_version}` : ""}` : ""}
                {r.visit ? ` · ${r.visit}` : ""}
                {r.record_version ? ` · record version ${r.record_version}` : ""}
              </td>
              <td data-label="Field">{text(r.field)}</td>
              <td data-label="Old → new">
                {r.field ? (
                  <>
                    <span className="old-value">{r.old_value === null ? "(empty)" : text(r.old_value)}</span>
                    {" → "}
                    <span className="new-value">{r.new_value === null ? "(empty)" : text(r.new_value)}</span>
                  </>
                ) : null}
              </td>
              <td data-label="Reason">{text(r.reason)}</td>
              <td data-label="Seal / detail">
                {r.seal ? (
                  <span className={r.seal === "matches its sealed entry" ? "ok" : "error"}>{r.seal}</span>
                ) : null}
                {r.detail ? <span className="detail">{r.detail}</span> : null}
                {r.ip ? <span className="muted"> · IP {r.ip}</span> : null}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {d.rows.length === 0 && !d.error ? (
        <p className="muted" data-empty="audit">
          No events match these filters: clear a filter or widen the dates.
        </p>
      ) : null}
    </StudyPage>
  );
}
