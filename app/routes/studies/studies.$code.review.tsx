/** Study review for sponsors and regulators: consent, records, proofs, the checkpoint timeline and ledger health. */
import { json, redirect, type ActionFunctionArgs, type LoaderFunctionArgs, type MetaFunction } from "@remix-run/node";
import { Form, Link, useLoaderData, useRevalidator } from "@remix-run/react";
import { useEffect } from "react";
import { latestAuditRun, startAuditRun } from "../../integrity-audit/audit-runs.server.ts";
import { studyReview } from "../../integrity-audit/review.server.ts";
import { requireStudy } from "../../platform/require-study.server.ts";
import { StudyPage } from "../../ui/study-page.tsx";
import { CheckpointTimeline } from "../../log/checkpoint-timeline.tsx";
import { SealBadge } from "../../log/seal-badge.tsx";

export const meta: MetaFunction = () => [{ title: "Study review · TrialSeal" }];

export async function loader({ request, context, params }: LoaderFunctionArgs) {
  const { study, user } = await requireStudy(request, context, params, "study.review");
  const review = await studyReview(context.ctx, user, study.code);
  const run = await latestAuditRun(context.ctx, study.id);
  return json(
    {
      user: { fullName: user.fullName, email: user.email },
      review,
      audit: run
        ? {
            status: run.status,
            startedAt: run.startedAt.toISOString(),
            finishedAt: run.finishedAt?.toISOString() ?? null,
            error: run.error,
            report: run.report,
          }
        : null,
    },
    { headers: { "cache-control": "no-store" } },
  );
}

export async function action({ request, context, params }: ActionFunctionArgs) {
  const { study, user } = await requireStudy(request, context, params, "study.review");
  await startAuditRun(context.ctx, user, study.code);
  return redirect(`/studies/${study.code}/review#audit`);
}

const proofHref = (id: string) => `/api/v1/entries/${id}/proof`;

export default function Review() {
  const { user, review: r, audit } = useLoaderData<typeof loader>();
  const revalidator = useRevalidator();
  const running = audit?.status === "running";
  const finishedAt = audit?.finishedAt?.replace("T", " ").slice(0, 19);
  useEffect(() => {
    if (!running) return;
    const t = setInterval(() => revalidator.state === "idle" && revalidator.revalidate(), 1500);
    return () => clearInterval(t);
  }, [running, revalidator]);
  return (
    <StudyPage user={user} study={r.study.code} title={`Review of ${r.study.code}`}>
      <p>
        Every proof bundle below can be checked without trusting this portal: download it, then open the{" "}
        <a href="/verify">verification page</a> (it runs in your browser) or run <code>trialseal verify</code>.
      </p>

      <section className="card" id="exports">
        <h2>Exports</h2>
        <p>
          <a href={`/studies/${r.study.code}/export/evidence`} download data-export="evidence">
            Evidence package (ZIP)
          </a>{" "}
          : ODM, FHIR, CSV, every proof bundle of the study, the whole log's envelopes and checkpoints with consistency
          proofs, certified copies, the trust policy and a manifest of SHA-256s; check it offline with{" "}
          <code>trialseal verify-package FILE --pin SHA256</code>.
        </p>
        <p>
          <a href={`/studies/${r.study.code}/export/odm`} download>
            CDISC ODM 1.3.2
          </a>{" "}
          ·{" "}
          <a href={`/studies/${r.study.code}/export/fhir`} download>
            HL7 FHIR R4
          </a>{" "}
          ·{" "}
          <a href={`/studies/${r.study.code}/export/csv`} download>
            CSV per form
          </a>
        </p>
        <p>
          <a href={`/studies/${r.study.code}/exports/dictionary.csv`} download data-export="dictionary">
            Data dictionary (CSV, REDCap layout)
          </a>{" "}
          ·{" "}
          <a href={`/studies/${r.study.code}/exports/crf/blank`} download data-export="crf-blank">
            Blank CRF (PDF)
          </a>{" "}
          ·{" "}
          <a href={`/studies/${r.study.code}/exports/crf/annotated`} download data-export="crf-annotated">
            Annotated CRF (PDF)
          </a>{" "}
          · <Link to={`/studies/${r.study.code}/missing-data`}>Missing-data report (page and CSV)</Link>
        </p>
      </section>

      <section className="card" id="audit" data-audit={audit?.status ?? "none"}>
        <h2>Whole-study audit</h2>
        <p>
          Re-reads the study from the database and recomputes everything: every entry, batch, checkpoint and anchor
          (against the ledgers themselves), each record's chain of versions, and every data row against its ledger
          entry. The same as <code>trialseal audit --study {r.study.code}</code>.
        </p>
        <Form method="post">
          <button type="submit" disabled={running}>
            {running ? "Audit running…" : "Run the audit"}
          </button>
        </Form>
        {audit?.status === "failed" ? <p className="error">The audit could not finish: {audit.error}</p> : null}
        {audit?.report ? (
          <div data-audit-verdict={audit.report.clean ? "clean" : "findings"}>
            <p className={audit.report.clean ? "" : "error"}>
              <strong>{audit.report.clean ? "Clean" : "Findings"}</strong> ({finishedAt} UTC): checked{" "}
              {audit.report.checked.entries} entries in {audit.report.checked.batches} batches,{" "}
              {audit.report.checked.checkpoints} checkpoints, {audit.report.checked.anchors} anchors,{" "}
              {audit.report.checked.records} records and {audit.report.checked.rows} data rows.
            </p>
            {audit.report.findings.length ? (
              <ul>
                {audit.report.findings.map((f, i) => (
                  // biome-ignore lint/suspicious/noArrayIndexKey: findings have no id; static list, never reordered
                  <li key={i} className={f.severity === "tamper" ? "error" : "muted"} data-finding={f.code}>
                    {f.code}: {f.message}
                  </li>
                ))}
              </ul>
            ) : null}
          </div>
        ) : null}
      </section>

      <h2>Anchoring</h2>
      <div className="grid">
        {r.ledgers.map((l) => (
          <div key={l.ledger} className="card" data-ledger={l.ledger}>
            <div className="muted">{l.ledger}</div>
            <div className="stat">{l.state}</div>
            <div className="muted">
              last final checkpoint {l.lastFinalSize ?? "-"} of {r.logSize}; pending {l.pending}, awaiting finality{" "}
              {l.included}
              {l.lastError ? `; last error: ${l.lastError}` : ""}
            </div>
          </div>
        ))}
      </div>
      <CheckpointTimeline points={r.timeline} ledgers={r.ledgers.map((l) => l.ledger)} />

      <h2>Consent by document version</h2>
      <table>
        <thead>
          <tr>
            <th>Document</th>
            <th>Status</th>
            <th>Signatures by role</th>
          </tr>
        </thead>
        <tbody>
          {r.consentVersions.map((v) => (
            <tr key={`${v.code}-${v.version}`} data-consent-version={`${v.code}-${v.version}`}>
              <td>
                {v.code} {v.version}
              </td>
              <td>{v.status}</td>
              <td>
                {Object.entries(v.signatures)
                  .map(([role, n]) => `${role}: ${n}`)
                  .join(", ") || "none"}
              </td>
            </tr>
          ))}
        </tbody>
      </table>

      {r.consentVersions.length === 0 ? (
        <p className="muted" data-empty="consent-versions">
          No consent document yet: a study administrator adds one on the consent documents page.
        </p>
      ) : null}

      <h2>Participants</h2>
      <table>
        <thead>
          <tr>
            <th>Subject</th>
            <th>Site</th>
            <th>Status</th>
            <th>Consent</th>
          </tr>
        </thead>
        <tbody>
          {r.participants.map((p) => (
            <tr key={p.subject} data-subject={p.subject}>
              <td>
                <Link to={`/studies/${r.study.code}/participants/${p.subject}`}>{p.subject}</Link>
              </td>
              <td>{p.site}</td>
              <td>{p.status}</td>
              <td data-consent-state={p.consentState}>{p.consent}</td>
            </tr>
          ))}
        </tbody>
      </table>

      {r.participants.length === 0 ? (
        <p className="muted" data-empty="review-participants">
          No participants yet: site staff enroll them on the participants page.
        </p>
      ) : null}

      <h2 id="remote-consent">Remote consent signals</h2>
      <p className="muted">
        Signs that a remote consent may not come from the person it names (ADR 0018): signed from the network address of
        a staff session within the hour before, or a contact equal to a staff account's or another participant's.
      </p>
      {r.singleStaffSites.map((s) => (
        <p key={s.site} className="badge bad" data-single-staff-site={s.site}>
          Site {s.site} has {s.staff === 0 ? "no member" : "one member"} of site staff: nobody there can confirm a
          colleague's entry of a signer's contact.
        </p>
      ))}
      {r.consentSignals.length === 0 ? (
        <p className="muted">No signals.</p>
      ) : (
        <table data-consent-signals={r.consentSignals.length}>
          <thead>
            <tr>
              <th>Subject</th>
              <th>Signal</th>
            </tr>
          </thead>
          <tbody>
            {r.consentSignals.flatMap((x) =>
              x.signals.map((s) => (
                <tr key={`${x.subject}-${s.code}-${s.message}`} data-consent-signal={s.code}>
                  <td>{x.subject}</td>
                  <td>
                    <span className="badge bad">{s.code.replace(/_/g, " ")}</span> {s.message}
                  </td>
                </tr>
              )),
            )}
          </tbody>
        </table>
      )}

      <h2>Records</h2>
      {r.records.length === 0 ? (
        <p className="muted" data-empty="records">
          No CRF records yet: site staff enter them from each participant&apos;s casebook.
        </p>
      ) : null}
      {r.mismatches.length ? (
        <div className="error" role="alert" data-seal-mismatches={r.mismatches.length}>
          <p>
            <strong>
              {r.mismatches.length === 1
                ? "One record version does not match its sealed entry"
                : `${r.mismatches.length} record versions do not match their sealed entries`}
            </strong>
            : the stored values were changed outside TrialSeal. Exports are refused until this is resolved; run the
            audit below.
          </p>
          <ul>
            {r.mismatches.map((m) => (
              <li key={`${m.record} ${m.version}`}>
                {m.subject}, {m.form} / {m.visit}, v{m.version}
              </li>
            ))}
          </ul>
        </div>
      ) : null}
      <table>
        <thead>
          <tr>
            <th>Subject</th>
            <th>Form / visit</th>
            <th>Version</th>
            <th>Proof of the current version</th>
          </tr>
        </thead>
        <tbody>
          {r.records.map((x) => (
            <tr key={x.id}>
              <td>{x.subject}</td>
              <td>
                <Link to={`/studies/${r.study.code}/records/${x.id}`}>
                  {x.form} / {x.visit}
                </Link>
              </td>
              <td>
                v{x.version}
                {x.status === "locked" ? " (locked)" : ""}
              </td>
              <td>
                <SealBadge
                  seal={{
                    status: x.entryStatus,
                    seq: x.seq,
                    batch: x.batch,
                    anchoredOn: [],
                    matchesSeal: x.matchesSeal,
                  }}
                />{" "}
                {x.entryStatus === "sealed" ? (
                  <a href={proofHref(x.entryId)} download={`proof-${x.seq}.json`}>
                    bundle
                  </a>
                ) : null}
              </td>
            </tr>
          ))}
        </tbody>
      </table>

      <h2 id="before-consent">Data recorded before consent</h2>
      {r.beforeConsent.length === 0 ? (
        <p className="muted" data-before-consent="0">
          Every record was saved after its participant&apos;s consent was complete.
        </p>
      ) : (
        <table data-before-consent={r.beforeConsent.length}>
          <thead>
            <tr>
              <th>Subject</th>
              <th>Form / visit</th>
              <th>Saved</th>
              <th>Consent complete</th>
              <th>Why it was accepted</th>
            </tr>
          </thead>
          <tbody>
            {r.beforeConsent.map((x) => (
              <tr key={x.record} data-before-consent-record={x.record}>
                <td>{x.subject}</td>
                <td>
                  <Link to={`/studies/${r.study.code}/records/${x.record}`}>
                    {x.form} / {x.visit}
                  </Link>
                </td>
                <td>{x.savedAt.slice(0, 16).replace("T", " ")}</td>
                <td>{x.consentCompleteAt ? x.consentCompleteAt.slice(0, 16).replace("T", " ") : "not yet"}</td>
                <td>{x.why}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}

      <h2>Ledger entries of this study</h2>
      <p className="muted">
        The latest {r.entries.length}; any entry's bundle is also served by seq at /api/v1/entries/SEQ/proof.
      </p>
      <table>
        <thead>
          <tr>
            <th>Seq</th>
            <th>Study seq</th>
            <th>Kind</th>
            <th>Written (UTC)</th>
            <th>Proof</th>
          </tr>
        </thead>
        <tbody>
          {r.entries.map((e) => (
            <tr key={e.id} data-entry-kind={e.kind} data-entry-seq={e.seq ?? ""}>
              <td>{e.seq ?? "-"}</td>
              <td>{e.studySeq ?? "-"}</td>
              <td>{e.kind}</td>
              <td>{e.at.replace("T", " ").slice(0, 19)}</td>
              <td>
                {e.status === "sealed" ? (
                  <a href={proofHref(e.id)} download={`proof-${e.seq}.json`} data-proof-download={e.seq}>
                    download bundle
                  </a>
                ) : (
                  <span className="muted">pending seal</span>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </StudyPage>
  );
}
