import { json, type ActionFunctionArgs, type LoaderFunctionArgs, type MetaFunction } from "@remix-run/node";
import { Form, useActionData, useLoaderData } from "@remix-run/react";
import { lockDatabase, unlockDatabase } from "../../database-lock/database-lock.server.ts";
import { lockPageState } from "../../database-lock/lock-page.server.ts";
import { serviceErrorResponse } from "../../platform/error-response.server.ts";
import { requireStudy } from "../../platform/require-study.server.ts";
import { unblindStudy } from "../../randomization/unblinding.server.ts";
import { UtcAndLocal } from "../../ui/local-time.tsx";
import { StudyPage } from "../../ui/study-page.tsx";

export const meta: MetaFunction = () => [{ title: "Database lock · TrialSeal" }];

export async function loader({ request, context, params }: LoaderFunctionArgs) {
  const { study, user } = await requireStudy(request, context, params, "study.view");
  const s = await lockPageState(context.ctx, user, study.code);
  return json({ user: { fullName: user.fullName, email: user.email }, ...s });
}

export async function action({ request, context, params }: ActionFunctionArgs) {
  const { study, user } = await requireStudy(request, context, params, "study.view");
  const form = await request.formData();
  const intent = String(form.get("intent") ?? "");
  const done = (message: string) => json({ ok: true, message, error: null, field: null, saved: Date.now() });
  try {
    if (intent === "lock") {
      const r = await lockDatabase(context.ctx, user, study.code, { reason: form.get("reason") ?? "" });
      return done(`The database is locked. The analysis data set (${r.bytes} bytes) is sealed by its SHA-256.`);
    }
    if (intent === "unlock") {
      await unlockDatabase(context.ctx, user, study.code, form.get("reason") ?? "");
      return done("The database is unlocked; the reason is on record.");
    }
    if (intent === "unblind") {
      if (form.get("confirm") !== "on")
        return json(
          {
            ok: false,
            message: null,
            error: 'confirm: tick "I understand" to unblind the study',
            field: "confirm",
            saved: 0,
          },
          { status: 422 },
        );
      await unblindStudy(context.ctx, user, study.code);
      return done("The study is unblinded: everyone who can see the study now sees each participant's arm.");
    }
    return json(
      { ok: false, message: null, error: "intent: unknown form", field: "intent", saved: 0 },
      { status: 400 },
    );
  } catch (err) {
    return serviceErrorResponse(err, { ok: false, message: null, saved: 0 });
  }
}

interface Sha256Facts {
  sha256: string;
  sealedSha256: string | null;
  storedSha256: string | null;
  differences: string[];
  matchesSeal: boolean;
}

/** The analysis data set's SHA-256: "sealed" only when the row and the stored file match the database.locked entry. */
function AnalysisSha256({ h, current }: { h: Sha256Facts; current?: boolean }) {
  const attrs = current ? { "data-analysis-sha256": h.sha256 } : {};
  if (h.matchesSeal)
    return (
      <>
        <dt>SHA-256 (sealed)</dt>
        <dd>
          <code {...attrs}>{h.sha256}</code>
        </dd>
      </>
    );
  return (
    <>
      <dt>SHA-256</dt>
      <dd>
        <code {...attrs}>{h.sha256}</code>
        <p className="error" role="alert" data-analysis-seal-mismatch={h.differences.join(", ")}>
          {h.differences.includes("no sealed entry")
            ? "This analysis data set has no sealed entry behind it."
            : `This analysis data set differs from its sealed entry: ${h.differences.join(", ")}.`}{" "}
          Sealed SHA-256: <code>{h.sealedSha256 ?? "none"}</code>; <span>the stored file's:</span>{" "}
          <code>{h.storedSha256}</code>.{" "}
          {h.differences.some((x) => x === "SHA-256" || x === "stored file" || x === "no sealed entry")
            ? "It is not served. "
            : ""}
          Run the integrity audit.
        </p>
      </dd>
    </>
  );
}

const size = (n: number) => (n < 1024 ? `${n} bytes` : `${(n / 1024).toFixed(1)} KB (${n} bytes)`);
/** The records count in words: none is a normal state (a lock before any entry), not an error. */
const recordsWords = (n: number) => (n === 0 ? "none" : n === 1 ? "1 CRF record" : `${n} CRF records`);

/** After the data set's file and size: for a lock with no records, what the file holds, in words. */
function NoRecords({ records }: { records: number }) {
  return records === 0 ? (
    <span className="muted" data-no-records>
      {" "}
      (no CRF records: the data set holds the column headers only)
    </span>
  ) : null;
}

export default function DatabaseLock() {
  const d = useLoaderData<typeof loader>();
  const r = useActionData<typeof action>();
  const base = `/studies/${d.study}/lock`;
  const l = d.inForce;
  return (
    <StudyPage user={d.user} study={d.study} title="Database lock and unblinding" flash={r}>
      <section className="card" data-lock-state={l ? "locked" : "open"}>
        <h2>{l ? "The database is locked" : "The database is not locked"}</h2>
        {l ? (
          <dl className="facts">
            <dt>Locked since</dt>
            <dd>
              <UtcAndLocal iso={l.lockedAt} />
            </dd>
            <dt>By</dt>
            <dd>{l.lockedBy}</dd>
            <dt>Reason</dt>
            <dd>{l.reason}</dd>
            <dt>Records</dt>
            <dd data-records={l.records}>{recordsWords(l.records)}</dd>
            <dt>Analysis data set</dt>
            <dd>
              {d.may.analysis ? (
                <a href={`${base}/analysis-data-set/${l.id}`} download data-download="analysis">
                  {l.fileName}
                </a>
              ) : (
                l.fileName
              )}{" "}
              <span className="muted">{size(l.bytes)}</span>
              <NoRecords records={l.records} />
            </dd>
            <AnalysisSha256 h={l} current />
          </dl>
        ) : (
          <p className="muted">
            Data can be entered and corrected. Locking stops every change and seals the analysis data set: a ZIP of one
            CSV per form with every record's current values (no treatment arms).
          </p>
        )}
      </section>

      <section className="card" data-unblinded={d.unblinding ? "yes" : "no"}>
        <h2>{d.unblinding ? "The study is unblinded" : "The study is blinded"}</h2>
        {d.unblinding ? (
          <>
            <p>
              Unblinded <UtcAndLocal iso={d.unblinding.at} /> by {d.unblinding.by}. Everyone who can see the study sees
              each participant's arm.
            </p>
            {d.may.allocations ? (
              <p>
                <a href={`${base}/allocations`} download data-download="allocations">
                  Download the allocations with their proofs
                </a>{" "}
                <span className="muted">
                  (check it offline: <code>trialseal verify-allocations FILE --pin SHA256</code>)
                </span>
              </p>
            ) : null}
          </>
        ) : (
          <p className="muted">
            {d.listCommitted
              ? "Unblinding reveals the whole randomization list. It needs the database locked first."
              : "No randomization list is committed for this study."}
          </p>
        )}
      </section>

      {d.may.lock ? (
        l ? (
          <details className="card danger-zone">
            <summary>Unlock with a reason</summary>
            <Form method="post" noValidate key={r?.ok ? `unlock-${r.saved}` : "unlock"}>
              <input type="hidden" name="intent" value="unlock" />
              <label htmlFor="unlock-reason">Why the database must be unlocked</label>
              <input id="unlock-reason" name="reason" type="text" aria-invalid={r?.field === "reason" || undefined} />
              <p className="muted">
                Changes become possible again. A new lock seals a new analysis data set; the earlier one stays on
                record.
              </p>
              <button type="submit">Unlock the database</button>
            </Form>
          </details>
        ) : (
          <Form method="post" noValidate className="card" key={r?.ok ? `lock-${r.saved}` : "lock"}>
            <input type="hidden" name="intent" value="lock" />
            <label htmlFor="lock-reason">Reason for the database lock</label>
            <input id="lock-reason" name="reason" type="text" aria-invalid={r?.field === "reason" || undefined} />
            <button type="submit" className="button-danger">
              Lock the database
            </button>
          </Form>
        )
      ) : null}

      {d.may.unblind && !d.unblinding && l && d.listCommitted ? (
        <details className="card danger-zone" open={r?.field === "confirm" || undefined}>
          <summary>Unblind the study</summary>
          <Form method="post" noValidate>
            <input type="hidden" name="intent" value="unblind" />
            <label className="inline">
              <input type="checkbox" name="confirm" aria-invalid={r?.field === "confirm" || undefined} /> I understand
              that every participant's arm becomes visible to everyone on the study, and that this cannot be undone
            </label>
            <button type="submit" className="button-danger">
              Unblind the study
            </button>
          </Form>
        </details>
      ) : null}

      {d.history.length > 1 || (d.history.length === 1 && !l) ? (
        <section>
          <h2>Earlier locks</h2>
          {d.history
            .filter((h) => h.releasedAt)
            .map((h) => (
              <div className="card" key={h.id} data-earlier-lock={h.id}>
                <dl className="facts">
                  <dt>Locked</dt>
                  <dd>
                    <UtcAndLocal iso={h.lockedAt} /> by {h.lockedBy}: {h.reason}
                  </dd>
                  <dt>Unlocked</dt>
                  <dd>
                    <UtcAndLocal iso={h.releasedAt!} /> by {h.releasedBy}: {h.releaseReason}
                  </dd>
                  <dt>Analysis data set</dt>
                  <dd>
                    {d.may.analysis ? (
                      <a href={`${base}/analysis-data-set/${h.id}`} download>
                        {h.fileName}
                      </a>
                    ) : (
                      h.fileName
                    )}{" "}
                    <span className="muted">{size(h.bytes)}</span>
                    <NoRecords records={h.records} />
                  </dd>
                  <AnalysisSha256 h={h} />
                </dl>
              </div>
            ))}
        </section>
      ) : null}
    </StudyPage>
  );
}
