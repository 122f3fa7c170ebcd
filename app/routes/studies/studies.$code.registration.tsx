import {
  json,
  type ActionFunctionArgs,
  type LinksFunction,
  type LoaderFunctionArgs,
  type MetaFunction,
} from "@remix-run/node";
import { Form, useActionData, useLoaderData } from "@remix-run/react";
import { serviceErrorResponse } from "../../platform/error-response.server.ts";
import { can } from "../../platform/permissions.server.ts";
import { requireStudy } from "../../platform/require-study.server.ts";
import registrationStyles from "../../registration/registration.css";
import { registrationPage, setRegistration } from "../../registration/registration.server.ts";
import { StudyPage } from "../../ui/study-page.tsx";

export const meta: MetaFunction = () => [{ title: "Public registration · TrialSeal" }];
export const links: LinksFunction = () => [{ rel: "stylesheet", href: registrationStyles }];

export async function loader({ request, context, params }: LoaderFunctionArgs) {
  const { study, user } = await requireStudy(request, context, params, "documents.read");
  const page = await registrationPage(context.ctx, study.id);
  return json({
    user: { fullName: user.fullName, email: user.email },
    study: study.code,
    canManage: can(user, "registration.manage", { studyId: study.id }),
    ...page,
  });
}

export async function action({ request, context, params }: ActionFunctionArgs) {
  const { study, user } = await requireStudy(request, context, params, "registration.manage");
  const form = await request.formData();
  const intent = form.get("intent");
  try {
    const r = await setRegistration(context.ctx, user, study.code, {
      published: intent === "publish" ? true : intent === "withdraw" ? false : null,
    });
    return json({
      message: r.published
        ? "The public registration page is published and the switch is sealed."
        : "The public registration page is withdrawn and the switch is sealed.",
      error: null,
      field: null,
    });
  } catch (err) {
    return serviceErrorResponse(err, { message: null });
  }
}

export default function Registration() {
  const d = useLoaderData<typeof loader>();
  const r = useActionData<typeof action>();
  const href = `/registry/${d.study}`;
  return (
    <StudyPage user={d.user} study={d.study} title="Public registration page" flash={r}>
      <section className="card" aria-labelledby="state-title">
        <h2 id="state-title">
          {d.published ? (
            <span className="badge ok" data-registration="published">
              Published
            </span>
          ) : (
            <span className="badge" data-registration="not-published">
              Not published
            </span>
          )}
        </h2>
        <p>
          {d.published ? (
            <>
              Anyone can open <a href={href}>{href}</a> without signing in (since {d.since?.slice(0, 10)}). Its data are
              also at <a href={`${href}.json`}>{href}.json</a>.
            </>
          ) : d.since ? (
            `The page was withdrawn on ${d.since.slice(0, 10)}; ${href} answers “not found”.`
          ) : (
            `The page has never been published; ${href} answers “not found”.`
          )}
        </p>
        {d.canManage ? (
          <Form method="post">
            {d.published ? (
              <button type="submit" name="intent" value="withdraw" className="button-danger">
                Withdraw the public page
              </button>
            ) : (
              <button type="submit" name="intent" value="publish">
                Publish the public page
              </button>
            )}
          </Form>
        ) : (
          <p className="muted">The study's administrator publishes or withdraws the page.</p>
        )}
      </section>
      <section className="card" aria-labelledby="shows-title">
        <h2 id="shows-title">What the public page shows</h2>
        <ul>
          <li>
            The study code and title: <strong>{d.study}</strong>, {d.title}.
          </li>
          <li>
            Every registered version of the protocol, analysis plan, investigator's brochure and data management plan
            (now {d.documents}): type, version, approval date, approving body, the version it replaces, its SHA-256,
            when it was sealed and the ledgers that anchor it. Amendment reasons and file names are not shown.
          </li>
          <li>
            The outcome list ({d.outcomeVersions} {d.outcomeVersions === 1 ? "version" : "versions"}) and what changed
            between versions; changes made after the first participant was enrolled are flagged (their reasons are not
            shown).
          </li>
          <li>The times of the database lock and of the study's unblinding, once they happen.</li>
          <li>
            A box where a visitor drops a PDF: their browser computes its SHA-256 and says whether it is a registered
            version. The file never leaves their computer.
          </li>
        </ul>
        <p className="muted">
          Never shown: participants, staff names or e-mails, sites, free-text reasons. Proof bundles stay with signed-in
          study staff.
        </p>
      </section>
    </StudyPage>
  );
}
