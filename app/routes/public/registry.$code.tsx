import { json, type LinksFunction, type LoaderFunctionArgs, type MetaFunction } from "@remix-run/node";
import { useLoaderData } from "@remix-run/react";
import { Fragment } from "react";
import registrationStyles from "../../registration/registration.css";
import { PdfCheck, utc } from "../../registration/pdf-check.tsx";
import { type PublicSeal, publicRegistry } from "../../registration/public-registry.server.ts";
import { TopBar } from "../../ui/top-bar.tsx";

export const meta: MetaFunction<typeof loader> = ({ data }) => [
  { title: data ? `${data.study.code}: public registration · TrialSeal` : "Not found · TrialSeal" },
];
export const links: LinksFunction = () => [{ rel: "stylesheet", href: registrationStyles }];

/** Public, no sign-in (ADR 0050): 404 unless the sponsor has published the page. No personal data. */
export async function loader({ context, params }: LoaderFunctionArgs) {
  const r = await publicRegistry(context.ctx, params.code ?? "");
  if (!r) throw new Response("No published registration for this study", { status: 404 });
  return json(r, { headers: { "cache-control": "no-store" } });
}

function SealFacts({ seal, what }: { seal: PublicSeal; what: string }) {
  return (
    <>
      <dt>{what}</dt>
      <dd>
        {seal.status === "sealed"
          ? `${utc(seal.sealedAt)}, sealed in batch ${seal.batch} (entry ${seal.seq} of the log)`
          : seal.status === "missing"
            ? "no ledger entry"
            : `recorded ${utc(seal.recordedAt)}, waiting to be sealed`}
      </dd>
      <dt>Anchored in</dt>
      <dd>
        {seal.anchors.length
          ? seal.anchors.map((a, i) => (
              <Fragment key={a.ledger}>
                {i ? "; " : ""}
                <span data-ledger={a.ledger}>
                  {a.words}
                  {a.at ? `, ${utc(a.at)}` : ""}, in the log's checkpoint of {a.treeSize} batches
                </span>
              </Fragment>
            ))
          : "not yet anchored in a ledger outside the portal"}
      </dd>
    </>
  );
}

export default function Registry() {
  const d = useLoaderData<typeof loader>();
  const current = d.outcomes[d.outcomes.length - 1] ?? null;
  return (
    <>
      <TopBar user={null} />
      <main className="page">
        <p className="muted">Public registration page</p>
        <h1>
          {d.study.code}: {d.study.title}
        </h1>
        <p>
          Each document and outcome list below was sealed in TrialSeal's append-only log when it was recorded; the log's
          checkpoints are anchored in the external ledgers named. Published by the sponsor
          {d.publishedSince ? ` since ${utc(d.publishedSince)}` : ""}. The same data as JSON:{" "}
          <a href={`/registry/${d.study.code}.json`}>/registry/{d.study.code}.json</a>.
        </p>

        <section className="card" aria-labelledby="check-title">
          <h2 id="check-title">Is my PDF a registered version?</h2>
          <PdfCheck documents={d.documents} />
        </section>

        <section className="card" aria-labelledby="documents-title">
          <h2 id="documents-title">Registered documents</h2>
          {d.documents.length === 0 ? <p className="muted">No document is registered yet.</p> : null}
          <ol className="outcomes">
            {d.documents.map((doc) => (
              <li key={doc.entry} data-document={`${doc.type}-${doc.version}`}>
                <h3>
                  {doc.typeWords}, version {doc.version}
                  {doc.replaces ? <span className="badge">amends version {doc.replaces}</span> : null}
                </h3>
                {doc.matchesSeal ? null : (
                  <p className="error" role="alert" data-seal-mismatch={doc.differences.join(", ")}>
                    {doc.differences.includes("no sealed entry")
                      ? "This row has no sealed entry behind it"
                      : `This row differs from its sealed entry: ${doc.differences.join(", ")}`}
                    . It is not a registered version: what it shows is not what was committed.
                  </p>
                )}
                <dl className="facts">
                  <dt>Approved on</dt>
                  <dd>{doc.approvedOn}</dd>
                  <dt>Approving body</dt>
                  <dd>{doc.approvingBody}</dd>
                  {doc.replaces ? (
                    <>
                      <dt>Replaces</dt>
                      <dd>version {doc.replaces} (an amendment; its reason is on record with the sponsor)</dd>
                    </>
                  ) : null}
                  <dt>SHA-256</dt>
                  <dd className="hash" data-sha256={doc.sha256}>
                    {doc.sha256}
                  </dd>
                  <dt>Size</dt>
                  <dd>{doc.bytes.toLocaleString("en")} bytes</dd>
                  <SealFacts seal={doc.seal} what="Committed" />
                  <dt>Proof</dt>
                  <dd>
                    The proof bundle of ledger entry <span className="hash">{doc.entry}</span> is available to signed-in
                    study staff only.
                  </dd>
                </dl>
              </li>
            ))}
          </ol>
        </section>

        <section className="card" aria-labelledby="outcomes-title">
          <h2 id="outcomes-title">Outcomes of the statistical analysis plan</h2>
          {current ? (
            <>
              <p className="muted" data-outcomes-sap={current.sapVersion}>
                Version {current.version} of the outcome list, sealed with analysis plan (SAP) version{" "}
                {current.sapVersion} on {utc(current.setAt)}
                {d.sapInForce && d.sapInForce !== current.sapVersion ? (
                  <span data-sap-in-force={d.sapInForce}>
                    : unchanged since SAP {current.sapVersion}; SAP {d.sapInForce} in force
                  </span>
                ) : null}
                .
              </p>
              <ol className="outcomes" data-current-outcomes>
                {current.outcomes.map((o) => (
                  <li key={o.name}>
                    <h3>
                      <span className={`badge${o.type === "primary" ? " ok" : ""}`}>{o.type}</span> {o.name}
                    </h3>
                    <dl className="facts">
                      <dt>Measure</dt>
                      <dd>{o.measure}</dd>
                      <dt>Time point</dt>
                      <dd>{o.timePoint}</dd>
                      <dt>Analysis</dt>
                      <dd>{o.analysis}</dd>
                    </dl>
                  </li>
                ))}
              </ol>
              <h3>History of the outcome list</h3>
              <ol className="outcomes" reversed data-outcome-history>
                {[...d.outcomes].reverse().map((h) => (
                  <li key={h.version} data-outcome-version={h.version}>
                    <h3>
                      Version {h.version}{" "}
                      {h.afterFirstEnrolment ? (
                        <span className="badge flag" data-after-first-enrolment>
                          {h.version === 1 ? "set" : "changed"} after the first participant was enrolled
                        </span>
                      ) : null}
                    </h3>
                    {h.matchesSeal ? null : (
                      <p className="error" role="alert">
                        The stored list of this version does not match its sealed entry.
                      </p>
                    )}
                    <ul className="changes">
                      {h.changes.length ? h.changes.map((c) => <li key={c}>{c}</li>) : <li>no change</li>}
                    </ul>
                    <dl className="facts">
                      <dt>Analysis plan</dt>
                      <dd>version {h.sapVersion}</dd>
                      {h.afterFirstEnrolment || h.reasonRecorded ? (
                        <>
                          <dt>Reason</dt>
                          <dd>{h.reasonRecorded ? "recorded and sealed (not published)" : "none recorded"}</dd>
                        </>
                      ) : null}
                      <SealFacts seal={h.seal} what="Committed" />
                    </dl>
                  </li>
                ))}
              </ol>
            </>
          ) : (
            <p className="muted">No outcome list is registered yet.</p>
          )}
        </section>

        <section className="card" aria-labelledby="randomization-title">
          <h2 id="randomization-title">Randomization list</h2>
          {d.randomizationCommitted ? (
            <>
              <p>
                The list that decides each participant's treatment was committed (sealed by its hashes, nothing that
                reveals a treatment) before the first participant was randomized: every allocation comes after this
                time, and at unblinding each one is checked against the committed list.
              </p>
              <dl className="facts">
                <dt>List committed</dt>
                <dd data-randomization-committed={d.randomizationCommitted.at}>{utc(d.randomizationCommitted.at)}</dd>
                <SealFacts seal={d.randomizationCommitted.seal} what="Commitment sealed" />
              </dl>
            </>
          ) : (
            <p className="muted" data-randomization-committed="none">
              No randomization list is committed yet.
            </p>
          )}
        </section>

        <section className="card" aria-labelledby="lock-title">
          <h2 id="lock-title">Database lock and unblinding</h2>
          {d.unlockedAfterUnblinding ? (
            <p className="error" role="alert" data-unlocked-after-unblinding-warning>
              The database was unlocked after the study was unblinded: data could be changed while the treatment arms
              were known. The times are below.
            </p>
          ) : null}
          <dl className="facts">
            {d.databaseLocks.length ? (
              d.databaseLocks.map((l) => (
                <Fragment key={l.at}>
                  <dt>Database locked</dt>
                  <dd data-database-lock={l.at}>{utc(l.at)}</dd>
                  <SealFacts seal={l.seal} what="Lock sealed" />
                  {l.unlockedAt ? (
                    <>
                      <dt>Database unlocked</dt>
                      <dd data-database-unlock={l.unlockedAt}>
                        {utc(l.unlockedAt)}
                        {l.unlockedAfterUnblinding ? (
                          <>
                            {" "}
                            <span className="badge flag" data-unlocked-after-unblinding>
                              unlocked after unblinding
                            </span>
                          </>
                        ) : null}
                      </dd>
                      {l.unlockSeal ? <SealFacts seal={l.unlockSeal} what="Unlock sealed" /> : null}
                    </>
                  ) : null}
                </Fragment>
              ))
            ) : (
              <>
                <dt>Database lock</dt>
                <dd data-database-lock="none">not yet</dd>
              </>
            )}
            {d.unblindings.length ? (
              d.unblindings.map((u) => (
                <Fragment key={u.at}>
                  <dt>Study unblinded</dt>
                  <dd data-unblinding={u.at}>{utc(u.at)}</dd>
                  <SealFacts seal={u.seal} what="Unblinding sealed" />
                </Fragment>
              ))
            ) : (
              <>
                <dt>Unblinding</dt>
                <dd data-unblinding="none">not yet</dd>
              </>
            )}
          </dl>
        </section>
      </main>
    </>
  );
}
