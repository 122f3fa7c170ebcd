import { json, type ActionFunctionArgs, type LoaderFunctionArgs, type MetaFunction } from "@remix-run/node";
import { Form, useActionData, useLoaderData } from "@remix-run/react";
import { useState } from "react";
import { addConsentDocument, studyConsentDocuments } from "../../records/forms.server.ts";
import { serviceErrorResponse } from "../../platform/error-response.server.ts";
import { can } from "../../platform/permissions.server.ts";
import { requireStudy } from "../../platform/require-study.server.ts";
import { StudyPage } from "../../ui/study-page.tsx";
import { ConsentDocumentView } from "../../consent/consent-document-view.tsx";
import { parseConsentDocument } from "../../consent/consent-document.ts";

export const meta: MetaFunction = () => [{ title: "Consent documents · TrialSeal" }];

export async function loader({ request, context, params }: LoaderFunctionArgs) {
  const { study, user } = await requireStudy(request, context, params, "study.view");
  const docs = await studyConsentDocuments(context.ctx, study.id);
  return json({
    user: { fullName: user.fullName, email: user.email },
    study: study.code,
    canManage: can(user, "forms.manage", { studyId: study.id }),
    docs: docs.map((d) => ({
      code: d.code,
      version: d.version,
      title: d.title,
      language: d.language,
      status: d.status,
      irbName: d.irbName,
      irbApprovedOn: d.irbApprovedOn,
      sha256: Buffer.from(d.bodySha256).toString("hex"),
    })),
  });
}

export async function action({ request, context, params }: ActionFunctionArgs) {
  const { study, user } = await requireStudy(request, context, params, "forms.manage");
  const f = Object.fromEntries(await request.formData()) as Record<string, string>;
  try {
    const d = await addConsentDocument(context.ctx, user, study.code, {
      code: f.code,
      version: f.version,
      title: f.title,
      language: f.language || undefined,
      bodyMarkdown: f.bodyMarkdown ?? "",
      irbName: f.irbName,
      irbApprovedOn: f.irbApprovedOn,
    });
    return json({
      ok: true,
      message: `Consent document ${d.code} version ${d.version} approved; the approval is sealed into the log.`,
      error: null,
      field: null,
    });
  } catch (err) {
    return serviceErrorResponse(err, { ok: false, message: null });
  }
}

/** The participant's view of the text as it is typed, or where the consent markup is wrong. */
function MarkdownPreview({ text }: { text: string }) {
  const r = parseConsentDocument(text);
  if (!r.ok)
    return (
      <p className="error" data-preview-error>
        Line {r.line}: {r.message}
      </p>
    );
  const items = r.doc.sections.reduce((n, s) => n + s.optional.length, 0);
  const questions = r.doc.sections.reduce((n, s) => n + s.questions.length, 0);
  return (
    <div className="preview">
      <p className="muted">
        Sections to acknowledge: {r.doc.sections.length}; comprehension questions: {questions}; optional items: {items}.
      </p>
      <ConsentDocumentView doc={r.doc} />
    </div>
  );
}

export default function Consent() {
  const d = useLoaderData<typeof loader>();
  const r = useActionData<typeof action>();
  const [body, setBody] = useState(
    "# Informed consent\n\n## Why this study is done\nWhy this study is done...\n\n" +
      "## Your choices\nYou may leave at any time.\n\n" +
      "[question:yes] Can you leave the study at any time?\n\n" +
      "[optional:future_research] My samples may be used in future research.\n",
  );
  const bad = (f: string) => (r?.field === f ? true : undefined);
  return (
    <StudyPage user={d.user} study={d.study} title="Consent documents" flash={r}>
      <table>
        <thead>
          <tr>
            <th>Document</th>
            <th>Version</th>
            <th>Language</th>
            <th>Status</th>
            <th>IRB approval</th>
            <th>SHA-256</th>
          </tr>
        </thead>
        <tbody>
          {d.docs.map((x) => (
            <tr key={`${x.code}-${x.version}`} data-consent={`${x.code}-${x.version}`}>
              <td>
                {x.title} <span className="muted">{x.code}</span>
              </td>
              <td>{x.version}</td>
              <td>{x.language}</td>
              <td>
                <span className="badge ok">{x.status}</span>
              </td>
              <td>
                {x.irbName}, {x.irbApprovedOn}
              </td>
              <td>
                <code>{x.sha256.slice(0, 16)}…</code>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {d.docs.length === 0 ? (
        <p className="muted" data-empty="consent">
          No consent document yet.{" "}
          {d.canManage
            ? "Add the IRB-approved version below; participants sign it before any data are entered."
            : "A study administrator adds the IRB-approved consent documents here."}
        </p>
      ) : null}
      {d.canManage ? (
        <section className="card">
          <h2>New IRB-approved version</h2>
          <div className="editor">
            <Form method="post" noValidate>
              <div className="grid">
                <div>
                  <label htmlFor="code">Document code</label>
                  <input id="code" name="code" type="text" defaultValue="ICF" aria-invalid={bad("code")} />
                </div>
                <div>
                  <label htmlFor="version">Version</label>
                  <input id="version" name="version" type="text" aria-invalid={bad("version")} />
                </div>
                <div>
                  <label htmlFor="language">Language</label>
                  <input id="language" name="language" type="text" defaultValue="en" aria-invalid={bad("language")} />
                </div>
              </div>
              <label htmlFor="title">Title</label>
              <input id="title" name="title" type="text" aria-invalid={bad("title")} />
              <label htmlFor="bodyMarkdown">Text (Markdown)</label>
              <textarea
                id="bodyMarkdown"
                name="bodyMarkdown"
                rows={14}
                value={body}
                onChange={(e) => setBody(e.target.value)}
                aria-invalid={bad("bodyMarkdown")}
              />
              <div className="grid">
                <div>
                  <label htmlFor="irbName">IRB / ethics committee</label>
                  <input id="irbName" name="irbName" type="text" aria-invalid={bad("irbName")} />
                </div>
                <div>
                  <label htmlFor="irbApprovedOn">IRB approval date</label>
                  <input id="irbApprovedOn" name="irbApprovedOn" type="date" aria-invalid={bad("irbApprovedOn")} />
                </div>
              </div>
              <button type="submit">Record approved version</button>
            </Form>
            <div>
              <h3>Preview</h3>
              <MarkdownPreview text={body} />
            </div>
          </div>
        </section>
      ) : null}
    </StudyPage>
  );
}
