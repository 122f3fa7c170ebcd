import { json, type LoaderFunctionArgs, type MetaFunction } from "@remix-run/node";
import { Form, useLoaderData } from "@remix-run/react";
import { parseAuditFilters, queryAuditTrail, type AuditFilters } from "../../audit-trail/audit-trail.server.ts";
import { ServiceError } from "../../platform/errors.server.ts";
import { requireStudy } from "../../platform/require-study.server.ts";
import { StudyPage } from "../../ui/study-page.tsx";

export const meta: MetaFunction = () => [{ title: "Audit trail · TrialSeal" }];

type Row = {
  id: number;
  at: string;
  action: string;
  outcome: string;
  who: string;
  site: string | null;
  subject: string | null;
  detail: string;
};

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
    rows: rows.map(
      (r): Row => ({
        id: r.id,
        at: r.at.toISOString(),
        action: r.action,
        outcome: r.outcome,
        who: r.who,
        site: r.site,
        subject: r.subject,
        detail: JSON.stringify(r.detail),
      }),
    ),
  });
}

export default function AuditTrail() {
  const d = useLoaderData<typeof loader>();
  return (
    <StudyPage user={d.user} study={d.study} title="Audit trail">
      <Form method="get" className="card filters">
        <div className="grid">
          {(
            [
              ["site", "Site"],
              ["subject", "Subject"],
              ["user", "User email"],
              ["action", "Action (prefix)"],
              ["from", "From (YYYY-MM-DD)"],
              ["to", "To (YYYY-MM-DD)"],
            ] as const
          ).map(([name, label]) => (
            <div key={name}>
              <label htmlFor={name}>{label}</label>
              <input id={name} name={name} type="text" aria-invalid={d.field === name || undefined} />
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
      <table>
        <thead>
          <tr>
            <th>Time (UTC)</th>
            <th>Action</th>
            <th>Outcome</th>
            <th>Who</th>
            <th>Site</th>
            <th>Subject</th>
            <th>Detail</th>
          </tr>
        </thead>
        <tbody>
          {d.rows.map((r) => (
            <tr key={r.id}>
              <td>{r.at.replace("T", " ").slice(0, 19)}</td>
              <td>{r.action}</td>
              <td>{r.outcome}</td>
              <td>{r.who}</td>
              <td>{r.site ?? ""}</td>
              <td>{r.subject ?? ""}</td>
              <td>
                <code>{r.detail}</code>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {d.rows.length === 0 && !d.error ? <p className="muted">No events match.</p> : null}
    </StudyPage>
  );
}
