/** The missing-data report (ADR 0038): per record, required fields shown and empty, and coded missing values. */
import { json, type LoaderFunctionArgs, type MetaFunction } from "@remix-run/node";
import { Link, useLoaderData } from "@remix-run/react";
import { missingDataReport } from "../../exports/study-operations.server.ts";
import { requireStudy } from "../../platform/require-study.server.ts";
import { StudyPage } from "../../ui/study-page.tsx";

export const meta: MetaFunction = () => [{ title: "Missing data · TrialSeal" }];

export async function loader({ request, context, params }: LoaderFunctionArgs) {
  const { study, user } = await requireStudy(request, context, params, "records.read");
  const report = await missingDataReport(context.ctx, user, study.code);
  return json(
    { user: { fullName: user.fullName, email: user.email }, study: study.code, report },
    { headers: { "cache-control": "no-store" } },
  );
}

export default function MissingData() {
  const { user, study, report: r } = useLoaderData<typeof loader>();
  const empty = r.rows.filter((x) => x.kind === "empty").length;
  const coded = r.rows.length - empty;
  return (
    <StudyPage
      user={user}
      study={study}
      title="Missing data"
      crumbs={[{ to: `/studies/${study}/missing-data`, label: "Missing data" }]}
    >
      <p>
        Every record you may read, checked against the latest approved version of its form: required fields that are
        shown and empty, and fields given a missing-data code (with its reason). Forms not yet started are not listed.
      </p>
      <p>
        <a href={`/studies/${study}/missing-data.csv`} download data-export="missing-data">
          Download as CSV
        </a>
      </p>
      <p data-missing-summary={`${empty} ${coded}`}>
        {r.records} record{r.records === 1 ? "" : "s"} checked: <strong>{empty}</strong> required field
        {empty === 1 ? "" : "s"} empty, <strong>{coded}</strong> coded as missing.
      </p>
      {r.rows.length === 0 ? (
        <p className="muted" data-empty="missing-data">
          {r.records === 0
            ? "No records yet: once sites enter data, the fields they leave empty are listed here."
            : "Nothing is missing: every required field shown holds a value, and no field is coded as missing."}{" "}
          <Link to={`/studies/${study}/participants`}>Go to the participants</Link>.
        </p>
      ) : (
        <div className="table-scroll">
          <table data-missing-rows={r.rows.length}>
            <thead>
              <tr>
                <th>Subject</th>
                <th>Visit</th>
                <th>Form</th>
                <th>Field</th>
                <th>Status</th>
                <th>Code and reason</th>
              </tr>
            </thead>
            <tbody>
              {r.rows.map((x) => (
                <tr key={`${x.recordId}-${x.field}-${x.kind}`} data-missing={`${x.subject} ${x.field} ${x.kind}`}>
                  <td>{x.subject}</td>
                  <td>{x.visit}</td>
                  <td>
                    <Link to={`/studies/${study}/records/${x.recordId}`}>
                      {x.form}
                      {x.instance > 1 ? ` #${x.instance}` : ""}
                    </Link>
                  </td>
                  <td>
                    {x.label} <span className="muted">({x.field})</span>
                  </td>
                  <td>
                    <span className={`badge ${x.kind === "empty" ? "bad" : ""}`}>
                      {x.kind === "empty" ? "empty (required)" : "coded missing"}
                    </span>
                  </td>
                  <td>{x.code ? `${x.code}${x.reason ? `: ${x.reason}` : ""}` : "-"}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </StudyPage>
  );
}
