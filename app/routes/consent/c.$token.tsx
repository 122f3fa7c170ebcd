/**
 * The public verification page of one consent, reached from the receipt's QR code through a random,
 * unguessable token. It shows only non-personal facts: whether the consent stands or was withdrawn (in full or in
 * part, with the date and what was withdrawn; never the reason or who recorded it), the study, the document
 * version and its SHA-256, the IRB approval, each signature's role, meaning and time, and the proof status. The
 * signature's proof bundle can be downloaded and checked in /verify; the page lists exactly what that bundle
 * carries (app/consent/public-consent-words.ts).
 */
import { json, type LoaderFunctionArgs, type MetaFunction } from "@remix-run/node";
import { useLoaderData } from "@remix-run/react";
import { publicConsent } from "../../consent/receipt.server.ts";
import { SealBadge } from "../../log/seal-badge.tsx";
import { BUNDLE_CARRIES, BUNDLE_LACKS, partialWithdrawalWords } from "../../consent/public-consent-words.ts";

export const meta: MetaFunction = () => [
  { title: "Consent verification · TrialSeal" },
  { name: "robots", content: "noindex" },
];

export async function loader({ context, params }: LoaderFunctionArgs) {
  const c = await publicConsent(context.ctx, params.token ?? "");
  if (!c) throw new Response("No consent is registered under this link.", { status: 404 });
  return json({ ...c, token: params.token ?? "" });
}

const day = (iso: string) => iso.slice(0, 10);

type Withdrawal = { scope: string; at: string; followUp: boolean; optionalWithdrawn: string[] };

/** The headline: given, partly withdrawn (each partial withdrawal: date and what it withdrew), or withdrawn. */
function headline(status: string, signedAt: string, withdrawals: Withdrawal[]): string {
  const full = withdrawals.find((w) => w.scope === "full");
  if (full) return `Withdrawn in full on ${day(full.at)} (UTC).`;
  if (status === "partially_withdrawn")
    return `Partly withdrawn ${withdrawals
      .map((w) => `on ${day(w.at)} (UTC): ${partialWithdrawalWords(w)}`)
      .join("; ")}.`;
  return `Given on ${day(signedAt)} (UTC). No withdrawal is recorded.`;
}

export default function PublicConsent() {
  const c = useLoaderData<typeof loader>();
  const sealed = c.signatures.every((s) => s.seal.status === "sealed");
  return (
    <main className="page narrow">
      <h1>Consent verification</h1>
      <p className={c.status === "withdrawn" ? "card error" : "card"} data-consent-status={c.status}>
        <strong>{headline(c.status, c.signatures[0].signedAt, c.withdrawals)}</strong>
      </p>
      <p>
        This consent to study <strong>{c.study}</strong> was signed on the document below.{" "}
        {c.withdrawals.length
          ? "The signatures below remain as they were given; each withdrawal is a later entry in the study's " +
            "log. Data collected before a withdrawal are kept, as the regulations require. "
          : ""}
        This page shows no names, contact details or reasons.
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
      {c.withdrawals.length ? (
        <>
          <h2>Withdrawals</h2>
          <ul>
            {c.withdrawals.map((w) => (
              <li key={w.entryId} data-withdrawal={w.scope}>
                {w.at.replace("T", " ").slice(0, 19)} UTC:{" "}
                {w.scope === "full" ? "withdrawn in full" : `partly withdrawn: ${partialWithdrawalWords(w)}`}{" "}
                <SealBadge seal={w.seal} />
              </li>
            ))}
          </ul>
        </>
      ) : null}
      <h2>The proof bundle</h2>
      {sealed ? (
        <p>
          <a href={`/c/${c.token}/proof.json`} download>
            Download the proof bundle
          </a>{" "}
          of the first signature and check it yourself in the <a href="/verify">verification page</a> or with{" "}
          <code>trialseal verify</code>.
        </p>
      ) : (
        <p className="muted">The proof is being sealed; reload in a moment.</p>
      )}
      <p>The bundle is a JSON file. It carries, in the clear:</p>
      <ul data-bundle-carries>
        {BUNDLE_CARRIES.map((l) => (
          <li key={l.fields[0]} data-fields={l.fields.join(" ")}>
            {l.words}
          </li>
        ))}
      </ul>
      <p>{BUNDLE_LACKS}</p>
    </main>
  );
}
