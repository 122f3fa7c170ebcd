/**
 * Study documents (issue 20, ADR 0048): the protocol, statistical analysis plan, investigator's brochure and data
 * management plan, each version a PDF whose SHA-256 is sealed with its approval date and approving body; an
 * amendment names the version it replaces and why. Each site records its own approval date of a version; the
 * protocol version in force at a site follows from them (shown on each record page and in the CSV export).
 */
import {
  json,
  unstable_composeUploadHandlers,
  unstable_createMemoryUploadHandler,
  unstable_parseMultipartFormData,
  type ActionFunctionArgs,
  type LoaderFunctionArgs,
  type MetaFunction,
} from "@remix-run/node";
import { Form, useActionData, useLoaderData, useNavigation } from "@remix-run/react";
import { SealBadge } from "../../log/seal-badge.tsx";
import { serviceErrorResponse } from "../../platform/error-response.server.ts";
import { can } from "../../platform/permissions.server.ts";
import { requireStudy } from "../../platform/require-study.server.ts";
import {
  DOCUMENT_TYPE_LABELS,
  STUDY_DOCUMENT_MAX_BYTES,
  STUDY_DOCUMENT_TYPES,
  approvableSites,
  approveAtSite,
  listDocuments,
  readUpload,
  registerDocument,
} from "../../study-documents/study-documents.server.ts";
import { StudyPage } from "../../ui/study-page.tsx";

/** A row's mismatch with its sealed entry in words (the fields, never their values). */
const mismatchWords = (differences: string[]) =>
  differences.includes("no sealed entry")
    ? "This row has no sealed entry behind it"
    : `This row differs from its sealed entry: ${differences.join(", ")}`;

export const meta: MetaFunction = () => [{ title: "Protocol and plans · TrialSeal" }];

export async function loader({ request, context, params }: LoaderFunctionArgs) {
  const { study, user } = await requireStudy(request, context, params, "documents.read");
  const list = await listDocuments(context.ctx, user, study.code);
  return json(
    {
      user: { fullName: user.fullName, email: user.email },
      study: study.code,
      documents: list.documents.map(({ registeredAt, ...d }) => ({ ...d, registeredOn: registeredAt.slice(0, 10) })),
      types: STUDY_DOCUMENT_TYPES.map((t) => ({ type: t, label: DOCUMENT_TYPE_LABELS[t] })),
      sites: (await approvableSites(context.ctx, user, study.id)).map((s) => ({ code: s.code, name: s.name })),
      canManage: can(user, "documents.manage", { studyId: study.id }),
      // From the loader: the constant lives in a server module, which the browser bundle does not have.
      maxMb: STUDY_DOCUMENT_MAX_BYTES / (1024 * 1024),
    },
    { headers: { "cache-control": "no-store" } },
  );
}

export async function action({ request, context, params }: ActionFunctionArgs) {
  const { study, user } = await requireStudy(request, context, params, "documents.read");
  // The upload is the multipart form; the site approval a plain one. Errors say which, to mark the right field.
  const which = (request.headers.get("content-type") ?? "").startsWith("multipart/form-data") ? "register" : "approval";
  try {
    if (which === "register") {
      let upload: { fileName: string; content: Uint8Array } | null = null;
      const form = await unstable_parseMultipartFormData(
        request,
        unstable_composeUploadHandlers(
          async ({ name, data, filename }) => {
            if (name !== "file" || filename === undefined) return undefined;
            // Read as it streams in: refused once it passes the limit, never held whole beyond it.
            upload = { fileName: filename, content: await readUpload(data) };
            return "received";
          },
          unstable_createMemoryUploadHandler({ maxPartSize: 16 * 1024 }),
        ),
      );
      const text = (k: string) => String(form.get(k) ?? "");
      const r = await registerDocument(
        context.ctx,
        user,
        study.code,
        {
          type: text("type"),
          version: text("version"),
          approvedOn: text("approvedOn"),
          approvingBody: text("approvingBody"),
          replaces: text("replaces"),
          reason: text("reason"),
        },
        upload ?? { fileName: "", content: new Uint8Array() },
      );
      return json({
        error: null,
        field: null,
        form: which,
        message:
          `${DOCUMENT_TYPE_LABELS[r.type]} version ${r.version} registered; its SHA-256 ${r.sha256} is sealed ` +
          "(pending seal until the next batch).",
      });
    }
    const form = await request.formData();
    const r = await approveAtSite(context.ctx, user, study.code, {
      document: String(form.get("document") ?? ""),
      site: String(form.get("site") ?? ""),
      approvedOn: String(form.get("approvedOn") ?? ""),
    });
    return json({
      error: null,
      field: null,
      form: which,
      message: `Approval of version ${r.version} at ${r.site} on ${r.approvedOn} recorded and sealed.`,
    });
  } catch (err) {
    if (err instanceof Error && /exceeded upload size/i.test(err.message))
      return json({ error: "a form field is too long", field: null, form: which, message: null }, { status: 413 });
    return serviceErrorResponse(err, { message: null, form: which });
  }
}

const mb = (bytes: number) =>
  bytes >= 1024 * 1024 ? `${(bytes / (1024 * 1024)).toFixed(1)} MB` : `${Math.max(1, Math.round(bytes / 1024))} KB`;

export default function Documents() {
  const d = useLoaderData<typeof loader>();
  const r = useActionData<typeof action>();
  const busy = useNavigation().state === "submitting";
  const bad = (form: string, field: string) => (r?.form === form && r.field === field ? true : undefined);
  // A form starts empty again once its post succeeded (what it added changes its key), keeps its input on an error.
  const approvals = d.documents.reduce((n, x) => n + x.siteApprovals.length, 0);
  const formKey = (form: string) => `${form}-${form === "register" ? d.documents.length : approvals}`;
  return (
    <StudyPage user={d.user} study={d.study} title="Protocol and plans" flash={r}>
      <p>
        Each version of the protocol, statistical analysis plan, investigator's brochure and data management plan is a
        PDF whose SHA-256 fingerprint is sealed with its approval date and approving body, before the data exist. An
        amendment names the version it replaces and why. Each site records when it approved a version; every record page
        shows which protocol version was in force at its site when each value was entered.
      </p>
      {d.types.map((t) => {
        const docs = d.documents.filter((x) => x.type === t.type);
        return (
          <section key={t.type} aria-labelledby={`type-${t.type}`} data-document-type={t.type}>
            <h2 id={`type-${t.type}`}>{t.label}</h2>
            {docs.length === 0 ? <p className="muted">No version registered.</p> : null}
            {docs.map((x) => (
              <article key={x.id} className="card" data-document={x.id} data-version={x.version}>
                <h3>
                  Version {x.version} {x.replaces ? <span className="badge">amends {x.replaces}</span> : null}{" "}
                  <SealBadge seal={x.seal} />
                </h3>
                {x.matchesSeal ? null : (
                  <p className="error" role="alert" data-seal-mismatch={x.differences.join(", ")}>
                    {mismatchWords(x.differences)}: it was changed outside TrialSeal
                    {x.differences.includes("stored PDF") ? " and the PDF is not served" : ""}. Run the integrity audit.
                  </p>
                )}
                <dl className="facts">
                  <dt>Approved</dt>
                  <dd>
                    {x.approvedOn} by {x.approvingBody}
                  </dd>
                  {x.replaces ? (
                    <>
                      <dt>Replaces</dt>
                      <dd>version {x.replaces}</dd>
                      <dt>Reason</dt>
                      <dd data-reason>{x.reason}</dd>
                    </>
                  ) : null}
                  <dt>File</dt>
                  <dd>
                    {x.matchesSeal ? (
                      <a href={`/studies/${d.study}/documents/${x.id}/pdf`} download>
                        {x.fileName}
                      </a>
                    ) : (
                      x.fileName
                    )}{" "}
                    ({mb(x.bytes)})
                  </dd>
                  <dt>SHA-256</dt>
                  <dd>
                    <code data-sha256>{x.sha256}</code>
                  </dd>
                  <dt>Registered</dt>
                  <dd>
                    {x.registeredOn} by {x.registeredBy}
                  </dd>
                  <dt>Site approvals</dt>
                  <dd data-site-approvals>
                    {x.siteApprovals.length === 0 ? (
                      <span className="muted">none recorded</span>
                    ) : (
                      <ul>
                        {x.siteApprovals.map((a) => (
                          <li key={a.id} data-site-approval={a.site}>
                            {a.site}: approved {a.approvedOn} (recorded by {a.by}) <SealBadge seal={a.seal} />
                            {a.matchesSeal ? null : (
                              <span className="error" role="alert" data-seal-mismatch={a.differences.join(", ")}>
                                {" "}
                                {mismatchWords(a.differences)}; not used for the protocol in force
                              </span>
                            )}
                          </li>
                        ))}
                      </ul>
                    )}
                  </dd>
                </dl>
              </article>
            ))}
          </section>
        );
      })}
      {d.canManage ? (
        <section className="card" aria-labelledby="register-title">
          <h2 id="register-title">Register a version or an amendment</h2>
          <p className="muted">
            A PDF of at most {d.maxMb} MB. The first version of a type replaces nothing; an amendment names the version
            it replaces and the reason. The same PDF cannot be registered twice.
          </p>
          <Form key={formKey("register")} method="post" encType="multipart/form-data" noValidate data-register-form>
            <label htmlFor="doc-type">Type</label>
            <select id="doc-type" name="type" aria-invalid={bad("register", "type")}>
              {d.types.map((t) => (
                <option key={t.type} value={t.type}>
                  {t.label}
                </option>
              ))}
            </select>
            <label htmlFor="doc-version">Version (as on the document, e.g. 1.0)</label>
            <input id="doc-version" name="version" type="text" aria-invalid={bad("register", "version")} />
            <label htmlFor="doc-approved">Approval date</label>
            <input id="doc-approved" name="approvedOn" type="date" aria-invalid={bad("register", "approvedOn")} />
            <label htmlFor="doc-body">Approving body (ethics committee, authority or sponsor board)</label>
            <input id="doc-body" name="approvingBody" type="text" aria-invalid={bad("register", "approvingBody")} />
            <label htmlFor="doc-replaces">Replaces (amendments only)</label>
            <select id="doc-replaces" name="replaces" aria-invalid={bad("register", "replaces")}>
              <option value="">Nothing: this is the first version</option>
              {d.types.map((t) =>
                d.documents.some((x) => x.type === t.type) ? (
                  <optgroup key={t.type} label={t.label}>
                    {d.documents
                      .filter((x) => x.type === t.type)
                      .map((x) => (
                        <option key={x.id} value={x.version}>
                          {t.label} version {x.version}
                        </option>
                      ))}
                  </optgroup>
                ) : null,
              )}
            </select>
            <label htmlFor="doc-reason">Reason for the amendment (amendments only)</label>
            <textarea id="doc-reason" name="reason" rows={3} aria-invalid={bad("register", "reason")} />
            <label htmlFor="doc-file">PDF file</label>
            <input
              id="doc-file"
              name="file"
              type="file"
              accept="application/pdf,.pdf"
              aria-invalid={bad("register", "file")}
            />
            <button type="submit" disabled={busy}>
              Register and seal
            </button>
          </Form>
        </section>
      ) : null}
      {d.sites.length > 0 && d.documents.length > 0 ? (
        <section className="card" aria-labelledby="approval-title">
          <h2 id="approval-title">Record a site's approval</h2>
          <p className="muted">
            The date the site (its ethics committee or institution) approved a version. Once per version and site; from
            that date the protocol version applies to the values entered at the site, but only to values entered after
            it is recorded here: record it before data entry under the new version.
          </p>
          <Form key={formKey("approval")} method="post" noValidate data-approval-form>
            <label htmlFor="approval-document">Document version</label>
            <select id="approval-document" name="document" aria-invalid={bad("approval", "document")}>
              {d.documents.map((x) => (
                <option key={x.id} value={x.id}>
                  {d.types.find((t) => t.type === x.type)?.label} version {x.version}
                </option>
              ))}
            </select>
            <label htmlFor="approval-site">Site</label>
            <select id="approval-site" name="site" aria-invalid={bad("approval", "site")}>
              {d.sites.map((s) => (
                <option key={s.code} value={s.code}>
                  {s.code}: {s.name}
                </option>
              ))}
            </select>
            <label htmlFor="approval-date">Approval date at the site</label>
            <input id="approval-date" name="approvedOn" type="date" aria-invalid={bad("approval", "approvedOn")} />
            <button type="submit" disabled={busy}>
              Record approval
            </button>
          </Form>
        </section>
      ) : null}
    </StudyPage>
  );
}
