import { json, redirect, type ActionFunctionArgs, type LoaderFunctionArgs, type MetaFunction } from "@remix-run/node";
import { Form, Link, useActionData, useLoaderData } from "@remix-run/react";
import { useEffect, useState } from "react";
import { findStudyByCode } from "../../db/queries/studies.ts";
import { ServiceError } from "../services/errors.server.ts";
import { correctRecord, recordDefinition, recordHistory } from "../services/records.server.ts";
import { requireStudyPermission } from "../session.server.ts";
import { valuesFromForm } from "../lib/form-values.ts";
import { RecordFields } from "../components/record-fields.tsx";
import { TopBar } from "../components/top-bar.tsx";

export const meta: MetaFunction = () => [{ title: "Record · TrialSeal" }];

async function load(request: Request, context: LoaderFunctionArgs["context"], params: LoaderFunctionArgs["params"]) {
  const study = await findStudyByCode(context.ctx.db, params.code ?? "");
  if (!study) throw new Response("No such study", { status: 404 });
  const user = await requireStudyPermission(request, context, "records.read", { studyId: study.id });
  try {
    const record = await recordHistory(context.ctx, user, study.code, params.id ?? "");
    const def = (await recordDefinition(context.ctx, record.id))!;
    return { study, user, record, def };
  } catch (err) {
    if (err instanceof ServiceError && err.code === "not_found") throw new Response("No such record", { status: 404 });
    throw err;
  }
}

export async function loader({ request, context, params }: LoaderFunctionArgs) {
  const { study, user, record, def } = await load(request, context, params);
  return json({ user: { fullName: user.fullName, email: user.email }, study: study.code, record, def });
}

export async function action({ request, context, params }: ActionFunctionArgs) {
  const { study, user, record, def } = await load(request, context, params);
  const form = await request.formData();
  const values = valuesFromForm(def, form);
  try {
    await correctRecord(context.ctx, user, study.code, record.id, { data: values, reason: String(form.get("reason") ?? "") });
    return redirect(`/studies/${study.code}/records/${record.id}`);
  } catch (err) {
    if (err instanceof ServiceError) return json({ error: { field: err.field ?? null, message: err.message }, values }, { status: err.status });
    throw err;
  }
}

function sealText(e: { status: string; batch: number | null; anchoredOn: string[] }) {
  if (e.status !== "sealed") return "pending";
  return `sealed in batch ${e.batch}${e.anchoredOn.length ? `, anchored on ${e.anchoredOn.join(", ")}` : ""}`;
}

/** UTC as stored, and the viewer's local time once in the browser (not at server render: no mismatch). */
function When({ iso }: { iso: string }) {
  const [local, setLocal] = useState<string | null>(null);
  useEffect(() => setLocal(new Date(iso).toLocaleString()), [iso]);
  return (
    <>
      {iso.replace("T", " ").slice(0, 19)} UTC{local ? <div className="muted">{local} local</div> : null}
    </>
  );
}

export default function RecordPage() {
  const { user, study, record, def } = useLoaderData<typeof loader>();
  const r = useActionData<typeof action>();
  const show = (v: unknown) => (v === null || v === undefined ? "-" : Array.isArray(v) ? v.join(", ") : String(v));
  return (
    <>
      <TopBar user={user} />
      <main className="page">
        <p>
          <Link to={`/studies/${study}`}>{study}</Link> / <Link to={`/studies/${study}/participants/${record.subject}`}>{record.subject}</Link>
        </p>
        <h1>
          {def.title}, visit {record.visit} <span className="badge">v{record.version}</span> {record.status === "locked" ? <span className="badge bad">locked</span> : null}
        </h1>
        <table>
          <tbody>
            {def.fields.map((f) => (
              <tr key={f.name} data-field={f.name}>
                <th>{f.label}</th>
                <td>
                  {f.type === "choice" || f.type === "multichoice"
                    ? show(([] as unknown[]).concat(record.data[f.name] ?? []).map((v) => f.options.find((o) => o.value === v)?.label ?? v))
                    : f.type === "boolean"
                      ? record.data[f.name] === undefined
                        ? "-"
                        : record.data[f.name]
                          ? "Yes"
                          : "No"
                      : show(record.data[f.name])}{" "}
                  {f.type === "number" && f.unit ? <span className="muted">{f.unit}</span> : null}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        <h2>History</h2>
        <table>
          <thead>
            <tr>
              <th>Version</th>
              <th>When</th>
              <th>Who</th>
              <th>What changed</th>
              <th>Why</th>
              <th>Seal</th>
            </tr>
          </thead>
          <tbody>
            {record.history.map((h) => (
              <tr key={h.version} data-version={h.version}>
                <td>v{h.version}</td>
                <td>
                  <When iso={h.at} />
                </td>
                <td>{h.actor}</td>
                <td>{h.version === 1 ? "entered" : h.changes.map((c) => `${c.field}: ${show(c.old)} → ${show(c.new)}`).join("; ")}</td>
                <td>{h.reason ?? "-"}</td>
                <td data-seal={h.entry.status}>{sealText(h.entry)}</td>
              </tr>
            ))}
          </tbody>
        </table>
        {record.status !== "locked" ? (
          <section className="card">
            <h2>Correct</h2>
            {r?.error && !r.error.field?.startsWith("data.") ? (
              <p className="error" role="alert">
                {r.error.message}
              </p>
            ) : null}
            <Form method="post" noValidate>
              <RecordFields def={def} values={r?.values ?? (record.data as Record<string, unknown>)} error={r?.error} />
              <label htmlFor="reason">Reason for change *</label>
              <input id="reason" name="reason" type="text" aria-invalid={r?.error?.field === "reason" || undefined} />
              <button type="submit">Save correction</button>
            </Form>
          </section>
        ) : null}
      </main>
    </>
  );
}
