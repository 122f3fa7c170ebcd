import { json, type ActionFunctionArgs, type LoaderFunctionArgs, type MetaFunction } from "@remix-run/node";
import { Form, useActionData, useLoaderData } from "@remix-run/react";
import { serviceErrorResponse } from "../../platform/error-response.server.ts";
import { can } from "../../platform/permissions.server.ts";
import { requireStudy } from "../../platform/require-study.server.ts";
import { StudyPage } from "../../ui/study-page.tsx";
import { setSchedule } from "../../visit-schedule/schedule-setup.server.ts";
import { studyScheduleTable } from "../../visit-schedule/schedule-view.server.ts";

export const meta: MetaFunction = () => [{ title: "Visit schedule · TrialSeal" }];

export async function loader({ request, context, params }: LoaderFunctionArgs) {
  const { study, user } = await requireStudy(request, context, params, "study.view");
  const t = await studyScheduleTable(context.ctx, study.id);
  return json({
    user: { fullName: user.fullName, email: user.email },
    study: study.code,
    canManage: can(user, "study.manage", { studyId: study.id }),
    schedule: t
      ? {
          version: t.version,
          setAt: t.createdAt.toISOString(),
          baseline: t.baseline,
          rows: t.rows,
          sealMismatch: t.sealMismatch,
        }
      : null,
  });
}

export async function action({ request, context, params }: ActionFunctionArgs) {
  const { study, user } = await requireStudy(request, context, params, "study.manage");
  const form = await request.formData();
  const file = form.get("file");
  const text = typeof file === "string" ? file : file ? await file.text() : "";
  try {
    const r = await setSchedule(context.ctx, user, study.code, text);
    return json({
      message: `Schedule version ${r.version} saved and sealed (${r.visits} visits).`,
      error: null,
      field: null,
    });
  } catch (err) {
    return serviceErrorResponse(err, { message: null });
  }
}

export default function Schedule() {
  const d = useLoaderData<typeof loader>();
  const r = useActionData<typeof action>();
  return (
    <StudyPage user={d.user} study={d.study} title="Visit schedule" flash={r}>
      {d.schedule ? (
        <section className="card" aria-labelledby="schedule-title">
          <h2 id="schedule-title">Version {d.schedule.version}</h2>
          {d.schedule.sealMismatch ? (
            <p className="error" role="alert" data-schedule-seal-mismatch>
              <strong>{d.schedule.sealMismatch}.</strong> It was changed outside TrialSeal: visit windows are not
              checked against it until it is set again; run the integrity audit.
            </p>
          ) : null}
          <p className="muted">
            Planned days count from {d.schedule.baseline} (day 0). Set {d.schedule.setAt.slice(0, 10)}.{" "}
            <a href={`/studies/${d.study}/schedule.json`} download>
              Download the definition (JSON)
            </a>
          </p>
          <div className="table-scroll">
            <table data-schedule>
              <thead>
                <tr>
                  <th scope="col">Visit</th>
                  <th scope="col">Planned day</th>
                  <th scope="col">Window</th>
                  <th scope="col">Forms</th>
                  <th scope="col">Date field</th>
                </tr>
              </thead>
              <tbody>
                {d.schedule.rows.map((v) => (
                  <tr key={v.visit} data-visit={v.visit}>
                    <td>
                      {v.name} <span className="muted">({v.visit})</span>
                    </td>
                    <td>{v.day}</td>
                    <td>{v.window}</td>
                    <td>{v.forms}</td>
                    <td>{v.dateField}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </section>
      ) : (
        <p className="card notice" data-empty-schedule>
          No visit schedule yet.{" "}
          {d.canManage
            ? "Upload a schedule definition (JSON) below"
            : "An administrator sets one by uploading a schedule definition (JSON) here"}{" "}
          or run <code>trialseal schedule set --study {d.study} FILE</code>. Each visit lists its planned day, its
          window and its forms; see docs/decisions/0032 for the format.
        </p>
      )}
      {d.canManage ? (
        <Form method="post" encType="multipart/form-data" className="card">
          <h2>{d.schedule ? "Replace the schedule" : "Set the schedule"}</h2>
          <label htmlFor="schedule-file">Schedule definition (JSON)</label>
          <input id="schedule-file" name="file" type="file" accept="application/json,.json" />
          <button type="submit">Upload and seal</button>
        </Form>
      ) : null}
    </StudyPage>
  );
}
