import { json, type ActionFunctionArgs, type LoaderFunctionArgs, type MetaFunction } from "@remix-run/node";
import { Form, useActionData, useLoaderData } from "@remix-run/react";
import {
  setEnrolmentTargets,
  setFormsBeforeConsent,
  setStaffNamesToParticipants,
  studySettingsOf,
} from "../../studies/settings.server.ts";
import { studySites } from "../../studies/studies.server.ts";
import { studyForms } from "../../records/forms.server.ts";
import { serviceErrorResponse } from "../../platform/error-response.server.ts";
import { can } from "../../platform/permissions.server.ts";
import { requireStudy } from "../../platform/require-study.server.ts";
import { StudyPage } from "../../ui/study-page.tsx";

export const meta: MetaFunction = () => [{ title: "Study settings · TrialSeal" }];

export async function loader({ request, context, params }: LoaderFunctionArgs) {
  const { study, user } = await requireStudy(request, context, params, "study.view");
  const settings = await studySettingsOf(context.ctx, study.id);
  const approved = [
    ...new Set((await studyForms(context.ctx, study.id)).filter((f) => f.status === "approved").map((f) => f.code)),
  ].sort();
  const sites = (await studySites(context.ctx, study.id)).map((s) => ({ code: s.code, name: s.name }));
  return json({
    sites,
    user: { fullName: user.fullName, email: user.email },
    study: study.code,
    canManage: can(user, "study.manage", { studyId: study.id }),
    settings,
    approved,
  });
}

export async function action({ request, context, params }: ActionFunctionArgs) {
  const { study, user } = await requireStudy(request, context, params, "study.manage");
  const form = await request.formData();
  if (form.get("intent") === "staff-names") {
    try {
      const s = await setStaffNamesToParticipants(context.ctx, user, study.code, {
        staffNamesToParticipants: String(form.get("staffNamesToParticipants") ?? ""),
      });
      return json({
        message:
          `Settings version ${s.version} saved and sealed: participants ` +
          (s.staffNamesToParticipants
            ? "see the names of the staff who used their data."
            : "see the organisation and role of who used their data, not staff names."),
        error: null,
        field: null,
      });
    } catch (err) {
      return serviceErrorResponse(err, { message: null });
    }
  }
  if (form.get("intent") === "targets") {
    try {
      const sites: Record<string, string> = {};
      for (const [k, v] of form.entries()) if (k.startsWith("site:")) sites[k.slice(5)] = String(v).trim();
      const s = await setEnrolmentTargets(context.ctx, user, study.code, {
        total: String(form.get("total") ?? "").trim(),
        sites,
      });
      const t = s.enrolmentTargets;
      return json({
        message:
          `Settings version ${s.version} saved and sealed: ` +
          (t
            ? `enrolment target ${t.total ?? "not set"} for the study` +
              (Object.keys(t.sites).length
                ? `; ${Object.entries(t.sites)
                    .map(([c, n]) => `${c} ${n}`)
                    .join(", ")}.`
                : ".")
            : "no enrolment target."),
        error: null,
        field: null,
      });
    } catch (err) {
      return serviceErrorResponse(err, { message: null });
    }
  }
  try {
    const s = await setFormsBeforeConsent(context.ctx, user, study.code, {
      formsBeforeConsent: form.getAll("formsBeforeConsent").map(String),
    });
    return json({
      message:
        `Settings version ${s.version} saved and sealed: ` +
        (s.formsBeforeConsent.length
          ? `${s.formsBeforeConsent.join(", ")} may be recorded before consent.`
          : "no CRF form may be recorded before consent."),
      error: null,
      field: null,
    });
  } catch (err) {
    return serviceErrorResponse(err, { message: null });
  }
}

export default function Settings() {
  const d = useLoaderData<typeof loader>();
  const r = useActionData<typeof action>();
  const allowed = new Set(d.settings.formsBeforeConsent);
  return (
    <StudyPage user={d.user} study={d.study} title="Study settings" flash={r}>
      <section className="card">
        <h2>CRF data before consent</h2>
        <p>
          No CRF data may be recorded for a participant before their consent is complete (signed and countersigned, or
          obtained on paper with its scan sealed and attested by an investigator), unless the form is allowed below for
          pre-screening. Records saved before consent are listed on the review page.
        </p>
        <p className="muted" data-settings-version={d.settings.version}>
          {d.settings.version === 0
            ? "Default settings (never changed)."
            : `Version ${d.settings.version}, changed ${d.settings.changedAt?.slice(0, 16).replace("T", " ")} by ` +
              `${d.settings.changedBy}; sealed as entry ${d.settings.entryId}.`}
        </p>
        {d.canManage ? (
          <Form method="post">
            <fieldset aria-invalid={r?.field === "formsBeforeConsent" || undefined}>
              <legend>Forms allowed before consent (pre-screening)</legend>
              {d.approved.length === 0 ? <p className="muted">The study has no approved form yet.</p> : null}
              {d.approved.map((code) => (
                <label className="inline" key={code}>
                  <input type="checkbox" name="formsBeforeConsent" value={code} defaultChecked={allowed.has(code)} />
                  &nbsp;{code}
                </label>
              ))}
            </fieldset>
            <button type="submit">Save settings</button>
          </Form>
        ) : (
          <p data-forms-before-consent={d.settings.formsBeforeConsent.join(",")}>
            Forms allowed before consent:{" "}
            {d.settings.formsBeforeConsent.length ? d.settings.formsBeforeConsent.join(", ") : "none"}.
          </p>
        )}
      </section>
      <section className="card">
        <h2>Enrolment targets</h2>
        <p>
          The study home page charts enrolment against these targets, for the study and per site. Leave a box empty for
          no target.
        </p>
        <p data-enrolment-targets={JSON.stringify(d.settings.enrolmentTargets)}>
          {d.settings.enrolmentTargets
            ? `In force: study ${d.settings.enrolmentTargets.total ?? "no total"}` +
              (Object.keys(d.settings.enrolmentTargets.sites).length
                ? `; ${Object.entries(d.settings.enrolmentTargets.sites)
                    .map(([c, n]) => `${c} ${n}`)
                    .join(", ")}.`
                : ".")
            : "No enrolment target is set."}
        </p>
        {d.canManage ? (
          <Form method="post">
            <input type="hidden" name="intent" value="targets" />
            <label>
              Study total
              <input
                type="number"
                name="total"
                min={0}
                inputMode="numeric"
                defaultValue={d.settings.enrolmentTargets?.total ?? ""}
                aria-invalid={r?.field === "total" || undefined}
              />
            </label>
            {d.sites.map((s) => (
              <label key={s.code}>
                Site {s.code} ({s.name})
                <input
                  type="number"
                  name={`site:${s.code}`}
                  min={0}
                  inputMode="numeric"
                  defaultValue={d.settings.enrolmentTargets?.sites[s.code] ?? ""}
                  aria-invalid={r?.field === `sites.${s.code}` || undefined}
                />
              </label>
            ))}
            <button type="submit">Save enrolment targets</button>
          </Form>
        ) : null}
      </section>
      <section className="card">
        <h2>Staff names shown to participants</h2>
        <p>
          Each participant's receipt page lists who used their data: the organisation and role, what and when. By
          default it names no member of staff; the study can choose to show the names as well.
        </p>
        <p data-staff-names={d.settings.staffNamesToParticipants ? "on" : "off"}>
          In force:{" "}
          {d.settings.staffNamesToParticipants
            ? "participants see staff names."
            : "participants see organisation and role only."}
        </p>
        {d.canManage ? (
          <Form method="post">
            <input type="hidden" name="intent" value="staff-names" />
            <fieldset aria-invalid={r?.field === "staffNamesToParticipants" || undefined}>
              <legend>Show staff names to participants</legend>
              <label className="inline">
                <input
                  type="radio"
                  name="staffNamesToParticipants"
                  value="off"
                  defaultChecked={!d.settings.staffNamesToParticipants}
                />
                &nbsp;No, organisation and role only
              </label>
              <label className="inline">
                <input
                  type="radio"
                  name="staffNamesToParticipants"
                  value="on"
                  defaultChecked={d.settings.staffNamesToParticipants}
                />
                &nbsp;Yes, show names
              </label>
            </fieldset>
            <button type="submit">Save</button>
          </Form>
        ) : null}
      </section>
    </StudyPage>
  );
}
