import { json, type ActionFunctionArgs, type LoaderFunctionArgs, type MetaFunction } from "@remix-run/node";
import { Form, useActionData, useLoaderData } from "@remix-run/react";
import { useMemo, useState } from "react";
import { approveForm, importForm, studyForms } from "../../records/forms.server.ts";
import { serviceErrorResponse } from "../../platform/error-response.server.ts";
import { can } from "../../platform/permissions.server.ts";
import { requireStudy } from "../../platform/require-study.server.ts";
import { parseFormDefinition } from "../../../anchoring/forms/definition.ts";
import { FormPreview } from "../../records/form-preview.tsx";
import { StudyPage } from "../../ui/study-page.tsx";

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
  });
}

export async function action({ request, context, params }: ActionFunctionArgs) {
  const { study, user } = await requireStudy(request, context, params, "forms.manage");
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
      <table>
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
