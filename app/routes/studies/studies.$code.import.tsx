/**
 * Importing existing data (issue 18, ADR 0037): data managers and admins (`records.import`) upload a CSV file of one
 * form or CDISC ODM ClinicalData, check it (a dry run: every problem with its row and column), then import it; the
 * job runs in the background and its progress (percent, rows per second) is polled from
 * /studies/:code/import/:id without reloading. Past imports list who, when, the file's SHA-256 and counts.
 */
import {
  json,
  redirect,
  unstable_createMemoryUploadHandler,
  unstable_parseMultipartFormData,
  type ActionFunctionArgs,
  type LoaderFunctionArgs,
  type MetaFunction,
} from "@remix-run/node";
import { Form, useActionData, useLoaderData, useRevalidator } from "@remix-run/react";
import { useEffect, useState } from "react";
import { requireStudy } from "../../platform/require-study.server.ts";
import { serviceErrorResponse } from "../../platform/error-response.server.ts";
import { ServiceError } from "../../platform/errors.server.ts";
import {
  IMPORT_FILE_MAX_BYTES,
  createImportJob,
  importJobsOf,
  type ImportJobView,
} from "../../data-import/import-jobs.server.ts";
import { studyForms } from "../../records/forms.server.ts";
import { StudyPage } from "../../ui/study-page.tsx";

export const meta: MetaFunction = () => [{ title: "Import data · TrialSeal" }];

export async function loader({ request, context, params }: LoaderFunctionArgs) {
  const { study, user } = await requireStudy(request, context, params, "records.import");
  const jobs = await importJobsOf(context.ctx, user, study.code);
  const current = new URL(request.url).searchParams.get("job");
  const approved = (await studyForms(context.ctx, study.id)).filter((f) => f.status === "approved");
  const forms = [...new Map(approved.map((f) => [f.code, { code: f.code, title: f.title }])).values()];
  return json(
    {
      user: { fullName: user.fullName, email: user.email },
      study: study.code,
      jobs,
      forms,
      current,
      // From the loader: the constant lives in a server module, which the browser bundle does not have.
      maxMb: IMPORT_FILE_MAX_BYTES / 1024 / 1024,
    },
    { headers: { "cache-control": "no-store" } },
  );
}

export async function action({ request, context, params }: ActionFunctionArgs) {
  const { study, user } = await requireStudy(request, context, params, "records.import");
  let form: FormData;
  try {
    form = await unstable_parseMultipartFormData(request, async (part) =>
      part.name === "file" || part.name === "map"
        ? unstable_createMemoryUploadHandler({ maxPartSize: IMPORT_FILE_MAX_BYTES })(part)
        : unstable_createMemoryUploadHandler({ maxPartSize: 4096 })(part),
    );
  } catch (err) {
    if (err instanceof Error && /exceeded upload size/i.test(err.message))
      return json(
        { error: `file: the file is larger than ${IMPORT_FILE_MAX_BYTES / 1024 / 1024} MB`, field: "file" },
        { status: 413 },
      );
    throw err;
  }
  const file = form.get("file");
  if (!file || typeof file === "string" || file.size === 0)
    return json({ error: "file: choose a CSV or ODM (XML) file", field: "file" }, { status: 422 });
  const map = form.get("map");
  try {
    const job = await createImportJob(context.ctx, user, study.code, {
      fileName: file.name || "upload",
      bytes: new Uint8Array(await file.arrayBuffer()),
      format: String(form.get("format") ?? "") || null,
      formCode: String(form.get("form") ?? "") || null,
      mapText: map && typeof map !== "string" && map.size > 0 ? await map.text() : null,
      dryRun: form.get("intent") !== "import",
    });
    return redirect(`/studies/${study.code}/import?job=${job.id}`);
  } catch (err) {
    if (err instanceof ServiceError) return json({ error: err.message, field: err.field ?? "file" }, { status: 422 });
    return serviceErrorResponse(err);
  }
}

/** The mapping preview: each column (CSV header, ODM ItemOID) and the form and field it goes to, or why not. */
function MappingPreview({ mapping }: { mapping: ImportJobView["mapping"] }) {
  return (
    <details className="import-mapping" open>
      <summary>Mapping preview: {mapping.length} columns of the file</summary>
      <div className="table-scroll">
        <table data-import-mapping>
          <thead>
            <tr>
              <th>Column in the file</th>
              <th>Goes to</th>
            </tr>
          </thead>
          <tbody>
            {mapping.map((m) => (
              <tr key={`${m.form}-${m.column}`} data-column={m.column}>
                <td>
                  <code>{m.column}</code>
                </td>
                <td>
                  {m.field ? (
                    <>
                      {m.form} · <code>{m.field}</code>
                    </>
                  ) : (
                    <>
                      <span className="muted">not imported</span>
                      {m.note ? `: ${m.note}` : `: no field of ${m.form ?? "the study"} has this name (use a map file)`}
                    </>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </details>
  );
}

function Progress({ study, job }: { study: string; job: ImportJobView }) {
  const [j, setJ] = useState(job);
  const revalidator = useRevalidator();
  useEffect(() => {
    setJ(job);
  }, [job]);
  // When the job ends, the past imports below are read again (its status and counts there too).
  const ended = j.status !== "queued" && j.status !== "running";
  const endedHere = job.status === "queued" || job.status === "running";
  useEffect(() => {
    if (ended && endedHere) revalidator.revalidate();
  }, [ended, endedHere, revalidator.revalidate]);
  useEffect(() => {
    if (j.status !== "queued" && j.status !== "running") return;
    const t = setTimeout(async () => {
      const r = await fetch(`/studies/${study}/import/${j.id}`, { headers: { accept: "application/json" } });
      if (r.ok) setJ((await r.json()).job);
    }, 400);
    return () => clearTimeout(t);
  }, [j, study]);
  const label =
    j.status === "done"
      ? j.dryRun
        ? "Checked: no problem, nothing written"
        : "Imported"
      : j.status === "problems"
        ? "Problems found: nothing imported"
        : j.status === "failed"
          ? "The file could not be used"
          : j.status === "queued"
            ? "Waiting to start"
            : j.dryRun
              ? "Checking"
              : "Importing";
  return (
    <section aria-live="polite" data-import-job={j.id} data-import-status={j.status}>
      <h2>
        {j.dryRun ? "Check of " : "Import of "}
        {j.fileName}: {label}
      </h2>
      <progress max={100} value={j.percent} aria-label="Import progress">
        {j.percent}%
      </progress>
      <p data-import-progress>
        {j.percent}% · {j.done} of {j.total} rows · {j.rowsPerSecond} rows/s
      </p>
      {j.status === "done" && !j.dryRun && (
        <p data-import-result>
          ✓ {j.values} values in {j.records} records, sealed. File SHA-256 <code>{j.fileSha256}</code>
        </p>
      )}
      {j.error && <p className="error">✗ {j.error}</p>}
      {j.notes.length > 0 && (
        <ul data-import-notes>
          {j.notes.map((n) => (
            <li key={n}>ℹ {n}</li>
          ))}
        </ul>
      )}
      {j.mapping.length > 0 && <MappingPreview mapping={j.mapping} />}
      {j.problems.length > 0 && (
        <div className="table-scroll">
          <table data-import-problems>
            <caption>
              {j.problemCount} problem{j.problemCount === 1 ? "" : "s"}: correct the file and check it again
            </caption>
            <thead>
              <tr>
                <th>Row</th>
                <th>Column</th>
                <th>Problem</th>
              </tr>
            </thead>
            <tbody>
              {j.problems.map((p) => (
                <tr key={`${p.row}-${p.column}-${p.message}`}>
                  <td>{p.row}</td>
                  <td>{p.column ?? "(whole row)"}</td>
                  <td>{p.message}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

export default function ImportPage() {
  const { user, study, jobs, forms, current, maxMb } = useLoaderData<typeof loader>();
  const a = useActionData<typeof action>();
  const job = jobs.find((j) => j.id === current);
  return (
    <StudyPage
      user={user}
      study={study}
      title="Import data"
      crumbs={[{ to: `/studies/${study}/import`, label: "Import data" }]}
    >
      <p>
        Import existing data: a CSV file of one form (columns <code>subject</code>, <code>visit</code>, then one per
        field; REDCap's <code>record_id</code> and <code>redcap_event_name</code> too) or CDISC ODM ClinicalData as
        REDCap and OpenClinica export it. Check the file first: every problem is listed with its row and column. A file
        is imported whole or not at all; each value becomes a sealed version naming the file's SHA-256 and row.
      </p>
      <Form method="post" encType="multipart/form-data" className="import-upload">
        <label>
          File (CSV or ODM XML, at most {maxMb} MB)
          <input type="file" name="file" accept=".csv,.xml,.odm,text/csv,application/xml" required />
        </label>
        <label>
          Form (CSV files)
          <select name="form" defaultValue="">
            <option value="">From the file name (e.g. VITALS.csv)</option>
            {forms.map((f) => (
              <option key={f.code} value={f.code}>
                {f.title} ({f.code})
              </option>
            ))}
          </select>
        </label>
        <label>
          Map file (optional, JSON)
          <input type="file" name="map" accept=".json,application/json" />
        </label>
        {a && "error" in a && (
          <p className="error" role="alert">
            {a.error}
          </p>
        )}
        <p>
          <button type="submit" name="intent" value="check">
            Check (dry run)
          </button>{" "}
          <button type="submit" name="intent" value="import">
            Import
          </button>
        </p>
      </Form>
      {job && <Progress study={study} job={job} />}
      <h2>Past imports</h2>
      {jobs.length === 0 ? (
        <p>No import yet: choose a file above, check it, then import it.</p>
      ) : (
        <div className="table-scroll">
          <table data-import-jobs>
            <thead>
              <tr>
                <th>When</th>
                <th>Who</th>
                <th>File</th>
                <th>SHA-256</th>
                <th>Status</th>
                <th>Records</th>
                <th>Values</th>
                <th>Problems</th>
              </tr>
            </thead>
            <tbody>
              {jobs.map((j) => (
                <tr key={j.id}>
                  <td>{j.createdAt.slice(0, 16).replace("T", " ")}</td>
                  <td>{j.by ?? "operator"}</td>
                  <td>
                    <a href={`/studies/${study}/import?job=${j.id}`}>{j.fileName}</a>
                    {j.dryRun ? " (check)" : ""}
                  </td>
                  <td>
                    <code title={j.fileSha256}>{j.fileSha256.slice(0, 12)}…</code>
                  </td>
                  <td>{j.status}</td>
                  <td>{j.records}</td>
                  <td>{j.values}</td>
                  <td>{j.problemCount}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </StudyPage>
  );
}
