import { json, type ActionFunctionArgs, type LoaderFunctionArgs, type MetaFunction } from "@remix-run/node";
import { Form, useActionData, useLoaderData } from "@remix-run/react";
import { setFormsBeforeConsent, studySettingsOf } from "../../studies/settings.server.ts";
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
  return json({
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
    </StudyPage>
  );
}
