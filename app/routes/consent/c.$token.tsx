/**
 * The public verification page of one consent, reached from the receipt's QR code through a random,
 * unguessable token. It shows only non-personal facts: the study, the document version and its SHA-256, the
 * IRB approval, each signature's role, meaning and time, and the proof status; the consent's proof bundle can
 * be downloaded and checked in /verify.
 */
import { json, type LoaderFunctionArgs, type MetaFunction } from "@remix-run/node";
import { useLoaderData } from "@remix-run/react";
import { publicConsent } from "../../consent/receipt.server.ts";
import { SealBadge } from "../../log/seal-badge.tsx";

export const meta: MetaFunction = () => [
  { title: "Consent verification · TrialSeal" },
  { name: "robots", content: "noindex" },
];

export async function loader({ context, params }: LoaderFunctionArgs) {
  const c = await publicConsent(context.ctx, params.token ?? "");
  if (!c) throw new Response("No consent is registered under this link.", { status: 404 });
  return json({ ...c, token: params.token ?? "" });
}

export default function PublicConsent() {
  const c = useLoaderData<typeof loader>();
  const sealed = c.signatures.every((s) => s.seal.status === "sealed");
  return (
    <main className="page narrow">
      <h1>Consent verification</h1>
      <p>
        This consent to study <strong>{c.study}</strong> was given on the document below. The page shows no personal
        data.
      </p>
      <dl className="facts">
        <dt>Document</dt>
        <dd>
          {c.document.title} ({c.document.code}), version {c.document.version}
        </dd>
        <dt>Document SHA-256</dt>
        <dd>
          <code>{c.document.sha256}</code>
        </dd>
        <dt>IRB approval</dt>
        <dd>
          {c.document.irbName}, {c.document.irbApprovedOn}
        </dd>
      </dl>
      <table className="stack">
        <thead>
          <tr>
            <th>Role</th>
            <th>Meaning</th>
            <th>Signed (UTC)</th>
            <th>Proof</th>
          </tr>
        </thead>
        <tbody>
          {c.signatures.map((s) => (
            <tr key={s.entryId} data-signature={s.role}>
              <td>{s.role}</td>
              <td>{s.meaning}</td>
              <td>{s.signedAt.replace("T", " ").slice(0, 19)}</td>
              <td>
                <SealBadge seal={s.seal} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {sealed ? (
        <p>
          <a href={`/c/${c.token}/proof.json`} download>
            Download the proof bundle
          </a>{" "}
          and check it yourself in the <a href="/verify">verification page</a> or with <code>trialseal verify</code>.
        </p>
      ) : (
        <p className="muted">The proof is being sealed; reload in a moment.</p>
      )}
    </main>
  );
}
