import { json, type ActionFunctionArgs, type LoaderFunctionArgs, type MetaFunction } from "@remix-run/node";
import { Form, useActionData, useLoaderData } from "@remix-run/react";
import { createHash } from "node:crypto";
import { delegableStaff, delegationLog, grantDelegation, revokeDelegation } from "../../studies/delegations.server.ts";
import { TASKS } from "../../studies/delegation-tasks.ts";
import { studySites } from "../../studies/studies.server.ts";
import { serviceErrorResponse } from "../../platform/error-response.server.ts";
import { requireStudy } from "../../platform/require-study.server.ts";
import { StudyPage } from "../../ui/study-page.tsx";

export const meta: MetaFunction = () => [{ title: "Delegation log · TrialSeal" }];

const MAX_EVIDENCE = 10 * 1024 * 1024;

export async function loader({ request, context, params }: LoaderFunctionArgs) {
  const { study, user } = await requireStudy(request, context, params, "study.view");
  const [log, sites] = await Promise.all([delegationLog(context.ctx, study.id), studySites(context.ctx, study.id)]);
  const mySites = user.platformAdmin
    ? sites.map((s) => s.code)
    : user.memberships
        .filter((m) => m.studyId === study.id && (m.role === "investigator" || m.role === "admin"))
        .flatMap((m) => (m.siteCode ? [m.siteCode] : sites.map((s) => s.code)));
  const staff = mySites.length ? await delegableStaff(context.ctx, study.id, [...new Set(mySites)]) : [];
  return json({
    user: { fullName: user.fullName, email: user.email },
    study: study.code,
    canDelegate: mySites.length > 0,
    sites: [...new Set(mySites)],
    staff: staff.filter((x) => x.email !== user.email),
    log: log.map((l) => ({ ...l, createdAt: l.createdAt.toISOString() })),
  });
}

export async function action({ request, context, params }: ActionFunctionArgs) {
  const { study, user } = await requireStudy(request, context, params, "study.view");
  const declared = Number(request.headers.get("content-length") ?? "0");
  if (declared > MAX_EVIDENCE + 64 * 1024)
    return json({ ok: false, error: "the evidence file is larger than 10 MB", field: "evidence" }, { status: 413 });
  const form = await request.formData();
  const text = (k: string) => {
    const v = form.get(k);
    return typeof v === "string" ? v : "";
  };
  try {
    if (text("intent") === "revoke") {
      // A destructive action: the form asks for an explicit confirmation (works without JavaScript).
      if (text("confirm") !== "on")
        return json(
          {
            ok: false,
            error: 'confirm: tick "I understand" to revoke the delegation',
            field: `confirm-${text("id")}`,
          },
          { status: 422 },
        );
      await revokeDelegation(context.ctx, user, { study: study.code, id: text("id"), reason: text("reason") });
      return json({ ok: true, error: null, field: null, saved: Date.now() });
    }
    const file = form.get("evidence");
    if (!file || typeof file === "string" || file.size === 0)
      return json(
        { ok: false, error: "attach the training evidence (certificate) file", field: "evidence" },
        { status: 422 },
      );
    if (file.size > MAX_EVIDENCE)
      return json({ ok: false, error: "the evidence file is larger than 10 MB", field: "evidence" }, { status: 413 });
    const evidenceSha256 = createHash("sha256")
      .update(Buffer.from(await file.arrayBuffer()))
      .digest("hex");
    await grantDelegation(context.ctx, user, {
      study: study.code,
      site: text("site"),
      delegate: text("delegate"),
      task: text("task") as never,
      startsOn: text("startsOn"),
      endsOn: text("endsOn") || null,
      training: [{ course: text("course"), completedOn: text("completedOn"), evidenceSha256 }],
    });
    return json({ ok: true, error: null, field: null, saved: Date.now() });
  } catch (err) {
    return serviceErrorResponse(err, { ok: false });
  }
}

export default function Delegation() {
  const d = useLoaderData<typeof loader>();
  const r = useActionData<typeof action>();
  const invalid = (f: string) => (r?.field === f || r?.field?.startsWith(`${f}.`) ? true : undefined);
  return (
    <StudyPage
      user={d.user}
      study={d.study}
      title="Delegation of authority log"
      flash={{ error: r?.error, message: r?.ok ? "Saved, and sealed into the log." : null }}
    >
      {d.log.length === 0 ? (
        <p className="muted" data-empty="delegation">
          No task is delegated yet.{" "}
          {d.canDelegate
            ? "Delegate a task below: choose the staff member, the task and the training evidence."
            : "The site's investigator delegates tasks to site staff here."}
        </p>
      ) : null}
      <div className="table-scroll">
        <table>
          <thead>
            <tr>
              <th>Site</th>
              <th>Task</th>
              <th>Delegated to</th>
              <th>By</th>
              <th>From</th>
              <th>Until</th>
              <th>Training</th>
              <th>Status</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {d.log.map((l) => (
              <tr key={l.id} data-delegation={l.id}>
                <td>{l.site}</td>
                <td>{l.task.replace("_", " ")}</td>
                <td>
                  {l.delegate} <span className="muted">{l.delegateEmail}</span>
                </td>
                <td>{l.delegator}</td>
                <td>{l.startsOn}</td>
                <td>{l.endsOn ?? "open"}</td>
                <td>
                  {l.training.map((tr) => (
                    <div key={tr.evidenceSha256}>
                      {tr.course}, {tr.completedOn}{" "}
                      <code title="SHA-256 of the evidence file">{tr.evidenceSha256.slice(0, 12)}…</code>
                    </div>
                  ))}
                </td>
                <td>
                  <span className={`badge ${l.status === "current" ? "ok" : ""}`}>{l.status}</span>
                </td>
                <td>
                  {d.canDelegate && l.status !== "revoked" && d.sites.includes(l.site) ? (
                    <Form method="post" className="danger-zone">
                      <input type="hidden" name="intent" value="revoke" />
                      <input type="hidden" name="id" value={l.id} />
                      <label htmlFor={`reason-${l.id}`}>Reason</label>
                      <input id={`reason-${l.id}`} name="reason" type="text" />
                      <label className="inline">
                        <input
                          type="checkbox"
                          name="confirm"
                          required
                          aria-invalid={r?.field === `confirm-${l.id}` || undefined}
                        />{" "}
                        I understand that {l.delegate} can no longer do this task
                      </label>
                      <button type="submit" className="button-danger">
                        Revoke
                      </button>
                    </Form>
                  ) : null}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {d.canDelegate ? (
        <section className="card">
          <h2>Delegate a task</h2>
          <Form
            method="post"
            encType="multipart/form-data"
            noValidate
            key={r && "saved" in r && r.saved ? `saved-${r.saved}` : "grant"}
          >
            <div className="grid">
              <div>
                <label htmlFor="site">Site</label>
                <select id="site" name="site" aria-invalid={invalid("site")}>
                  {d.sites.map((s) => (
                    <option key={s}>{s}</option>
                  ))}
                </select>
              </div>
              <div>
                <label htmlFor="delegate">Staff member</label>
                <select id="delegate" name="delegate" aria-invalid={invalid("delegate")} defaultValue="">
                  <option value="" disabled>
                    {d.staff.length ? "Choose a member of site staff" : "No other staff at your sites yet"}
                  </option>
                  {d.sites.map((site) => (
                    <optgroup key={site} label={`Site ${site}`}>
                      {d.staff
                        .filter((x) => x.site === site)
                        .map((x) => (
                          <option key={`${site}-${x.email}`} value={x.email} data-site={site}>
                            {x.fullName} ({x.role.replace("_", " ")}, {site})
                          </option>
                        ))}
                    </optgroup>
                  ))}
                </select>
              </div>
              <div>
                <label htmlFor="task">Task</label>
                <select id="task" name="task" aria-invalid={invalid("task")}>
                  {TASKS.map((t) => (
                    <option key={t} value={t}>
                      {t.replace("_", " ")}
                    </option>
                  ))}
                </select>
              </div>
              <div>
                <label htmlFor="startsOn">From (YYYY-MM-DD)</label>
                <input id="startsOn" name="startsOn" type="date" aria-invalid={invalid("startsOn")} />
              </div>
              <div>
                <label htmlFor="endsOn">Until (optional)</label>
                <input id="endsOn" name="endsOn" type="date" aria-invalid={invalid("endsOn")} />
              </div>
              <div>
                <label htmlFor="course">Training course</label>
                <input id="course" name="course" type="text" aria-invalid={invalid("training")} />
              </div>
              <div>
                <label htmlFor="completedOn">Training completed on</label>
                <input id="completedOn" name="completedOn" type="date" aria-invalid={invalid("training")} />
              </div>
              <div>
                <label htmlFor="evidence">Evidence (certificate file)</label>
                <input id="evidence" name="evidence" type="file" aria-invalid={invalid("evidence")} />
              </div>
            </div>
            <button type="submit">Delegate</button>
          </Form>
        </section>
      ) : null}
    </StudyPage>
  );
}
