/**
 * A consent obtained on paper (ADR 0021): staff who obtain consent upload the scan of the signed form (hashed as it
 * streams in, at most PAPER_SCAN_MAX_BYTES, not kept), and an investigator of the site who did not upload it
 * attests it with their password. Attested, the participant counts as consented.
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
import { Form, Link, useActionData, useLoaderData } from "@remix-run/react";
import { subjectCasebook } from "../../records/records.server.ts";
import { consentStatus } from "../../consent/status.server.ts";
import { currentDocuments } from "../../consent/approved-documents.server.ts";
import {
  PAPER_SCAN_MAX_BYTES,
  attestPaperConsent,
  hashScan,
  recordPaperConsent,
  type ScanDigest,
} from "../../consent/paper-consent.server.ts";
import { serviceErrorResponse } from "../../platform/error-response.server.ts";
import { ServiceError } from "../../platform/errors.server.ts";
import { can } from "../../platform/permissions.server.ts";
import { requestMeta } from "../../platform/session.server.ts";
import { requireStudy } from "../../platform/require-study.server.ts";
import { StudyPage } from "../../ui/study-page.tsx";

export const meta: MetaFunction<typeof loader> = ({ data }) => [
  { title: `Paper consent of ${data?.subject ?? "subject"} · TrialSeal` },
];

async function load(
  request: Request,
  context: LoaderFunctionArgs["context"],
  params: LoaderFunctionArgs["params"],
  // The read the page records (ADR 0067); null for a form POST (the loader records it when the page shows again).
  read: "participant.view" | "consent.view" | null,
) {
  const { study, user } = await requireStudy(request, context, params, "records.read");
  const casebook = await subjectCasebook(context.ctx, user, study.id, params.subject ?? "", { read });
  if (!casebook) throw new Response("No such subject", { status: 404 });
  return { study, user, participant: casebook.participant };
}

export async function loader({ request, context, params }: LoaderFunctionArgs) {
  const { study, user, participant } = await load(request, context, params, "consent.view");
  const scope = { studyId: study.id, siteId: participant.siteId };
  const status = await consentStatus(context.ctx, participant.id);
  const docs = [...(await currentDocuments(context.ctx, study.id)).values()];
  const investigator = user.memberships.some(
    (m) =>
      m.studyId === study.id && m.role === "investigator" && (m.siteId === null || m.siteId === participant.siteId),
  );
  return json({
    user: { fullName: user.fullName, email: user.email },
    userId: user.userId,
    study: study.code,
    subject: participant.subject,
    summary: status.summary,
    state: status.state,
    paper: status.paper,
    documents: docs.map((d) => ({ code: d.code, version: d.version, title: d.title })),
    maxMiB: PAPER_SCAN_MAX_BYTES / (1024 * 1024),
    may: { upload: can(user, "consent.obtain", scope), attest: investigator },
  });
}

export async function action({ request, context, params }: ActionFunctionArgs) {
  const { study, user, participant } = await load(request, context, params, null);
  try {
    if ((request.headers.get("content-type") ?? "").startsWith("multipart/form-data")) {
      let scan: ScanDigest | null = null;
      const f = await unstable_parseMultipartFormData(
        request,
        unstable_composeUploadHandlers(
          async ({ name, data, filename }) => {
            if (name !== "scan" || filename === undefined) return undefined;
            scan = await hashScan(data);
            return "received";
          },
          unstable_createMemoryUploadHandler({ maxPartSize: 4096 }),
        ),
      );
      if (!scan) throw new ServiceError("invalid", "scan: choose the scanned consent form", "scan");
      const [document, version] = String(f.get("document") ?? "").split("@");
      const r = await recordPaperConsent(
        context.ctx,
        user,
        study.code,
        participant.subject,
        { document, version: version ?? "" },
        scan,
      );
      return json({
        error: null,
        field: null,
        message:
          `Scan sealed (SHA-256 ${r.scanSha256}). An investigator of the site who did not upload it must now ` +
          "attest it.",
      });
    }
    const f = await request.formData();
    await attestPaperConsent(
      context.ctx,
      user,
      study.code,
      participant.subject,
      String(f.get("paper") ?? ""),
      { password: String(f.get("password") ?? ""), code: String(f.get("code") ?? "") || undefined },
      requestMeta(request),
    );
    return json({ error: null, field: null, message: "Paper consent attested: the participant is consented." });
  } catch (err) {
    if (err instanceof Error && /exceeded upload size/i.test(err.message))
      return json({ error: "a form field is too long", field: null, message: null }, { status: 413 });
    return serviceErrorResponse(err, { message: null });
  }
}

export default function PaperConsent() {
  const d = useLoaderData<typeof loader>();
  const r = useActionData<typeof action>();
  return (
    <StudyPage
      user={d.user}
      study={d.study}
      title={`Paper consent of ${d.subject}`}
      crumbs={[
        { to: `/studies/${d.study}/participants`, label: "Participants" },
        { to: `/studies/${d.study}/participants/${d.subject}`, label: d.subject },
      ]}
      flash={r}
    >
      <p data-consent-state={d.state}>
        Consent: <strong>{d.summary}</strong>.{" "}
        <Link to={`/studies/${d.study}/participants/${d.subject}/consent`}>Electronic consent</Link>
      </p>
      {d.paper.length ? (
        <table>
          <thead>
            <tr>
              <th>Document</th>
              <th>Scan SHA-256</th>
              <th>Uploaded</th>
              <th>Attestation</th>
            </tr>
          </thead>
          <tbody>
            {d.paper.map((p) => (
              <tr key={p.id} data-paper={p.id}>
                <td>
                  {p.document.code} {p.document.version}
                </td>
                <td>
                  <code>{p.scanSha256}</code> ({p.scanBytes} bytes)
                </td>
                <td>{p.uploadedAt.slice(0, 16).replace("T", " ")}</td>
                <td>
                  {p.attestedAt ? (
                    `attested by ${p.attesterName} ${p.attestedAt.slice(0, 16).replace("T", " ")}`
                  ) : d.may.attest && p.uploadedBy !== d.userId ? (
                    <Form method="post">
                      <input type="hidden" name="paper" value={p.id} />
                      <label>
                        I have checked the signed paper form of this scan. Your password{" "}
                        <input
                          type="password"
                          name="password"
                          autoComplete="current-password"
                          required
                          aria-invalid={r?.field === "password" || undefined}
                        />
                      </label>
                      <label>
                        Authenticator code (if you use one) <input name="code" inputMode="numeric" />
                      </label>
                      <button type="submit">Attest</button>
                    </Form>
                  ) : (
                    "awaiting an investigator who did not upload it"
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : (
        <p className="muted">No paper consent recorded.</p>
      )}
      {d.may.upload ? (
        <section className="card">
          <h2>Record a consent signed on paper</h2>
          <p className="muted">
            The scan is hashed as it arrives (at most {d.maxMiB} MiB) and its SHA-256 sealed; the portal keeps no copy.
            File the paper original and the scan in the investigator site file.
          </p>
          <Form method="post" encType="multipart/form-data">
            <label>
              Document{" "}
              <select name="document" aria-invalid={r?.field === "document" || undefined}>
                {d.documents.map((doc) => (
                  <option key={doc.code} value={`${doc.code}@${doc.version}`}>
                    {doc.code} {doc.version}: {doc.title}
                  </option>
                ))}
              </select>
            </label>
            <label>
              Scan of the signed form{" "}
              <input type="file" name="scan" required aria-invalid={r?.field === "scan" || undefined} />
            </label>
            <button type="submit">Seal the scan</button>
          </Form>
        </section>
      ) : null}
    </StudyPage>
  );
}
