import {
  json,
  unstable_createMemoryUploadHandler,
  unstable_parseMultipartFormData,
  type ActionFunctionArgs,
  type LoaderFunctionArgs,
  type MetaFunction,
} from "@remix-run/node";
import { Form, useActionData, useLoaderData } from "@remix-run/react";
import { useEffect, useMemo, useRef, useState } from "react";
import { approveForm, importForm, studyForms } from "../../records/forms.server.ts";
import { serviceErrorResponse } from "../../platform/error-response.server.ts";
import { can, type Principal } from "../../platform/permissions.server.ts";
import type { AppContext } from "../../platform/context.server.ts";
import { requireStudy } from "../../platform/require-study.server.ts";
import { parseFormDefinition } from "../../../anchoring/forms/definition.ts";
import { FormPreview } from "../../records/form-preview.tsx";
import { StudyPage } from "../../ui/study-page.tsx";
import { FormFileError, importFormsFile, type FormFileProblem } from "../../form-exchange/form-files.server.ts";
import { FORM_FILE_FORMATS, FORM_FILE_MAX_BYTES, FORM_FILE_TYPES } from "../../form-exchange/form-format.ts";

export const meta: MetaFunction = () => [{ title: "CRF forms · TrialSeal" }];

export async function loader({ request, context, params }: LoaderFunctionArgs) {
  const { study, user } = await requireStudy(request, context, params, "study.view");
  const forms = await studyForms(context.ctx, study.id);
  const latest = forms[forms.length - 1];
  const starter = latest
    ? { ...JSON.parse(latest.definitionText), version: latest.version + 1 }
    : {
        code: "VITALS",
        title: "Vital signs",
        version: 1,
        visits: ["SCREENING"],
        fields: [
          {
            name: "sbp",
            label: "Systolic BP",
            type: "number",
            integer: true,
            unit: "mmHg",
            min: 50,
            max: 250,
            required: true,
          },
        ],
      };
  return json({
    user: { fullName: user.fullName, email: user.email },
    study: study.code,
    canManage: can(user, "forms.manage", { studyId: study.id }),
    forms: forms.map((f) => ({
      code: f.code,
      version: f.version,
      title: f.title,
      status: f.status,
      sha256: Buffer.from(f.definitionSha256).toString("hex"),
      approvedAt: f.approvedAt?.toISOString() ?? null,
    })),
    starter: JSON.stringify(starter, null, 2),
    fileFormats: FORM_FILE_FORMATS.map((f) => ({ format: f, label: FORM_FILE_TYPES[f].label })),
    maxFileMiB: FORM_FILE_MAX_BYTES / (1024 * 1024),
  });
}

const list = (v: FormDataEntryValue | null) =>
  String(v ?? "")
    .split(/[,\s]+/)
    .map((s) => s.trim())
    .filter(Boolean);

/**
 * A file of forms (JSON, REDCap data dictionary, CDISC ODM) posted as multipart/form-data: the file part is read
 * into memory up to FORM_FILE_MAX_BYTES (1 MiB; app/platform/body-limit.server.ts lets the request that large), every
 * other part up to 4 KiB; all its forms are imported or none, and every problem is returned with its row.
 */
async function importUpload(request: Request, ctx: AppContext, user: Principal, studyCode: string) {
  let form: FormData;
  try {
    form = await unstable_parseMultipartFormData(request, async (part) =>
      part.name === "file"
        ? unstable_createMemoryUploadHandler({ maxPartSize: FORM_FILE_MAX_BYTES })(part)
        : unstable_createMemoryUploadHandler({ maxPartSize: 4096 })(part),
    );
  } catch (err) {
    if (err instanceof Error && /exceeded upload size/i.test(err.message))
      return json(
        {
          ok: false,
          message: null,
          error: `the file is larger than ${FORM_FILE_MAX_BYTES / (1024 * 1024)} MB; nothing was imported`,
          field: "file",
          problems: null,
        },
        { status: 413 },
      );
    throw err;
  }
  const file = form.get("file");
  if (!file || typeof file === "string" || file.size === 0)
    return json(
      { ok: false, message: null, error: "choose a file to import", field: "file", problems: null },
      { status: 422 },
    );
  const format = String(form.get("format") ?? "");
  try {
    const r = await importFormsFile(ctx, user, studyCode, {
      text: await file.text(),
      fileName: file.name,
      format: format ? (format as never) : undefined,
      draft: form.get("approve") !== "on",
      repeating: list(form.get("repeating")),
      visits: list(form.get("visits")).length ? list(form.get("visits")).map((v) => v.toUpperCase()) : undefined,
    });
    const status =
      r.forms[0]?.status === "approved"
        ? "approved (each approval sealed into the log)"
        : "saved as drafts: approve each below";
    return json({
      ok: true,
      message:
        `Imported ${r.forms.length} form${r.forms.length > 1 ? "s" : ""} from ${FORM_FILE_TYPES[r.format].label} ` +
        `${file.name}: ${r.forms.map((f) => `${f.code} version ${f.version}`).join(", ")}; ${status}.`,
      error: null,
      field: null,
      problems: null,
    });
  } catch (err) {
    if (err instanceof FormFileError)
      return json(
        {
          ok: false,
          message: null,
          error: `${file.name}: ${err.message}`,
          field: "file",
          problems: err.fileProblems as FormFileProblem[] | null,
        },
        { status: err.unusable ? 400 : 422 },
      );
    return serviceErrorResponse(err, { ok: false, message: null, problems: null });
  }
}

export async function action({ request, context, params }: ActionFunctionArgs) {
  const { study, user } = await requireStudy(request, context, params, "forms.manage");
  if ((request.headers.get("content-type") ?? "").startsWith("multipart/form-data"))
    return importUpload(request, context.ctx, user, study.code);
  const form = await request.formData();
  const text = (k: string) => String(form.get(k) ?? "");
  try {
    if (text("intent") === "approve") {
      const f = await approveForm(context.ctx, user, {
        study: study.code,
        code: text("code"),
        version: Number(text("version")),
      });
      return json({
        ok: true,
        message: `Approved ${f.code} version ${f.version}; the approval is sealed into the log.`,
        error: null,
        field: null,
      });
    }
    let definition: unknown;
    try {
      definition = JSON.parse(text("definition"));
    } catch (err) {
      return json(
        {
          ok: false,
          message: null,
          error: `the definition is not JSON: ${(err as Error).message}`,
          field: "definition",
        },
        { status: 400 },
      );
    }
    const f = await importForm(context.ctx, study.code, definition, {
      draft: text("approve") !== "on",
      actorId: user.userId,
    });
    return json({
      ok: true,
      message: `Saved ${f.code} version ${f.version} as ${f.status}.`,
      error: null,
      field: null,
    });
  } catch (err) {
    return serviceErrorResponse(err, { ok: false, message: null });
  }
}

export default function Forms() {
  const d = useLoaderData<typeof loader>();
  const r = useActionData<typeof action>();
  const [source, setSource] = useState(d.starter);
  const parsed = useMemo(() => {
    try {
      return parseFormDefinition(JSON.parse(source));
    } catch (err) {
      return { ok: false as const, path: "$", message: `not JSON: ${(err as Error).message}` };
    }
  }, [source]);
  return (
    <StudyPage user={d.user} study={d.study} title="CRF forms" flash={r}>
      <table className="stack forms-list">
        <thead>
          <tr>
            <th>Form</th>
            <th>Version</th>
            <th>Title</th>
            <th>Status</th>
            <th>SHA-256</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {d.forms.map((f) => (
            <tr key={`${f.code}-${f.version}`} data-form={`${f.code}-${f.version}`}>
              <td>{f.code}</td>
              <td>{f.version}</td>
              <td>{f.title}</td>
              <td>
                <span className={`badge ${f.status === "approved" ? "ok" : ""}`}>{f.status}</span>
              </td>
              <td>
                <code>{f.sha256.slice(0, 16)}…</code>
              </td>
              <td>
                {d.canManage && f.status === "draft" ? (
                  <Form method="post">
                    <input type="hidden" name="intent" value="approve" />
                    <input type="hidden" name="code" value={f.code} />
                    <input type="hidden" name="version" value={f.version} />
                    <button type="submit">Approve</button>
                  </Form>
                ) : null}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {d.forms.length === 0 ? (
        <p className="muted" data-empty="forms">
          No CRF forms yet.{" "}
          {d.canManage
            ? "Import a REDCap data dictionary or an ODM file below, or write a definition in the editor, " +
              "then approve it."
            : "A study administrator imports and approves the forms here."}
        </p>
      ) : null}
      <FormFiles study={d.study} formats={d.fileFormats} maxMiB={d.maxFileMiB} canManage={d.canManage} result={r} />
      {d.canManage ? (
        <section className="card">
          <h2>New form version</h2>
          <div className="editor">
            <Form method="post">
              <input type="hidden" name="intent" value="import" />
              <label htmlFor="definition">Definition (JSON)</label>
              <textarea
                id="definition"
                name="definition"
                rows={22}
                spellCheck={false}
                value={source}
                onChange={(e) => setSource(e.target.value)}
                aria-invalid={!parsed.ok || r?.field === "definition" || undefined}
                aria-describedby="definition-check"
              />
              <p id="definition-check" className={parsed.ok ? "muted" : "error"} role="status">
                {parsed.ok ? "Valid definition." : `${parsed.path}: ${parsed.message}`}
              </p>
              <label className="inline">
                <input type="checkbox" name="approve" /> Approve now (sealed into the log)
              </label>
              <button type="submit">Save version</button>
            </Form>
            <div>
              <h3>Preview</h3>
              {parsed.ok ? (
                <FormPreview def={parsed.definition} />
              ) : (
                <p className="muted">Fix the definition to see the form.</p>
              )}
            </div>
          </div>
        </section>
      ) : null}
    </StudyPage>
  );
}

/** Import a file of forms (JSON, REDCap data dictionary, ODM) and the export links; every problem shown by row. */
function FormFiles({
  study,
  formats,
  maxMiB,
  canManage,
  result,
}: {
  study: string;
  formats: { format: string; label: string }[];
  maxMiB: number;
  canManage: boolean;
  result?: object | null;
}) {
  const given = result && "problems" in result ? result.problems : null;
  const summary = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (Array.isArray(given) && given.length) summary.current?.focus();
  }, [given]);
  const problems = (Array.isArray(given) ? given : []) as {
    where?: string;
    field?: string;
    row?: number;
    column?: string;
    message: string;
  }[];
  return (
    <section className="card form-files" aria-labelledby="form-files-title">
      <h2 id="form-files-title">Import and export forms</h2>
      {problems.length ? (
        <div className="error-summary" id="file-problems" tabIndex={-1} ref={summary}>
          <h2>
            The file was refused: {problems.length} problem{problems.length > 1 ? "s" : ""}. Nothing was imported.
          </h2>
          <table className="stack file-problems">
            <thead>
              <tr>
                <th>Row</th>
                <th>Column or place</th>
                <th>Problem</th>
              </tr>
            </thead>
            <tbody>
              {problems.map((p) => (
                <tr key={`${p.where ?? p.field}: ${p.message}`} data-row={p.row ?? ""}>
                  <td>{p.row !== undefined ? `Row ${p.row}` : ""}</td>
                  <td>{p.row !== undefined ? (p.column ?? "") : (p.where ?? p.field)}</td>
                  <td>{p.message}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
      {canManage ? (
        <Form method="post" encType="multipart/form-data" className="form-file-upload">
          <label htmlFor="forms-file">File of forms</label>
          <input
            id="forms-file"
            name="file"
            type="file"
            required
            accept=".json,.csv,.xml,application/json,text/csv,application/xml,text/xml"
            aria-describedby="forms-file-help"
          />
          <p id="forms-file-help" className="muted">
            {`A TrialSeal JSON definition, a REDCap data dictionary (its 18-column CSV) or a CDISC ODM 1.3.2 file, `}
            {`at most ${maxMiB} MB. All its forms are imported, or none.`}
          </p>
          <label htmlFor="forms-format">Format</label>
          <select id="forms-format" name="format" defaultValue="">
            <option value="">Detect from the file</option>
            {formats.map((f) => (
              <option key={f.format} value={f.format}>
                {f.label}
              </option>
            ))}
          </select>
          <label htmlFor="forms-visits">Visits</label>
          <input
            id="forms-visits"
            name="visits"
            size={32}
            placeholder="SCREENING, WEEK4"
            aria-describedby="forms-visits-help"
          />
          <p id="forms-visits-help" className="muted">
            The visits every imported form is collected at. A REDCap dictionary names none: SCREENING when empty.
          </p>
          <label htmlFor="forms-repeating">Repeating forms</label>
          <input
            id="forms-repeating"
            name="repeating"
            size={32}
            placeholder="adverse_events"
            aria-describedby="forms-repeating-help"
          />
          <p id="forms-repeating-help" className="muted">
            Forms filled as rows added over the study (an adverse-event log): REDCap keeps this as a project setting,
            not in the dictionary. Instrument names or form codes, separated by commas.
          </p>
          <label className="inline">
            <input type="checkbox" name="approve" /> Approve now (each approval sealed into the log)
          </label>
          <button type="submit">Import file</button>
        </Form>
      ) : null}
      <h3>Export the latest approved version of every form</h3>
      <ul className="form-exports">
        {formats.map((f) => (
          <li key={f.format}>
            <a href={`/studies/${study}/forms/export/${f.format}`} download data-export={f.format}>
              {f.label}
            </a>
          </li>
        ))}
        <li>
          <a href={`/studies/${study}/exports/crf/blank`} download data-export="crf-blank">
            Blank CRF (PDF, to print and fill by hand)
          </a>
        </li>
        <li>
          <a href={`/studies/${study}/exports/crf/annotated`} download data-export="crf-annotated">
            Annotated CRF (PDF: field names, codes, limits and logic)
          </a>
        </li>
      </ul>
    </section>
  );
}
