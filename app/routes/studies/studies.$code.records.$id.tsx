import {
  json,
  redirect,
  type ActionFunctionArgs,
  type LinksFunction,
  type LoaderFunctionArgs,
  type MetaFunction,
} from "@remix-run/node";
import { Form, Link, useActionData, useLoaderData } from "@remix-run/react";
import { useEffect, useState } from "react";
import { ServiceError } from "../../platform/errors.server.ts";
import { serviceErrorResponse } from "../../platform/error-response.server.ts";
import { correctRecord, findRecord, recordDefinition, recordHistory } from "../../records/records.server.ts";
import { recordGaps } from "../../subject-matrix/subject-matrix.server.ts";
import {
  activeLock,
  answerQuery,
  closeQuery,
  markSdv,
  openQuery,
  releaseLock,
  reopenQuery,
  sdvOf,
  setLock,
  signRecord,
  signaturesOf,
} from "../../clinical-monitoring/clinical-monitoring.server.ts";
import { can } from "../../platform/permissions.server.ts";
import { requestMeta } from "../../platform/session.server.ts";
import { requireStudy } from "../../platform/require-study.server.ts";
import { entryFromForm, localeOf, mergeProblems, todayIn } from "../../records/form-values.ts";
import { type Posted, postedInputs, RecordFields } from "../../records/record-fields.tsx";
import { siteTimeZone } from "../../studies/studies.server.ts";
import { sealText } from "../../log/seal-text.ts";
import { StudyPage } from "../../ui/study-page.tsx";
import { fieldHistoriesFor } from "../../records/field-history.server.ts";
import { FieldValues } from "../../records/field-history.tsx";
import fieldHistoryStyles from "../../records/field-history.css";
import { canRequestSignature, requestSignature } from "../../notifications/triggers.server.ts";
import { queryRows } from "../../queries/query-list.server.ts";
import { protocolInForceText, protocolVersionsAt } from "../../study-documents/protocol-in-force.server.ts";
import queryStyles from "../../queries/queries.css";
import { databaseLockNotice } from "../../database-lock/database-lock.server.ts";

export const meta: MetaFunction = () => [{ title: "Record · TrialSeal" }];
export const links: LinksFunction = () => [
  { rel: "stylesheet", href: fieldHistoryStyles },
  { rel: "stylesheet", href: queryStyles },
];

async function load(request: Request, context: LoaderFunctionArgs["context"], params: LoaderFunctionArgs["params"]) {
  const { study, user } = await requireStudy(request, context, params, "records.read");
  try {
    const record = await recordHistory(context.ctx, user, study.code, params.id ?? "");
    const def = (await recordDefinition(context.ctx, record.id))!;
    return { study, user, record, def };
  } catch (err) {
    if (err instanceof ServiceError && err.code === "not_found") throw new Response("No such record", { status: 404 });
    throw err;
  }
}

export async function loader({ request, context, params }: LoaderFunctionArgs) {
  const { study, user, record, def } = await load(request, context, params);
  const ctx = context.ctx;
  const row = await findRecord(ctx, record.id);
  const [sigs, qs, sdv, lock, fields, timeZone, gaps, dbLock] = await Promise.all([
    signaturesOf(ctx, record.id, record.version),
    queryRows(ctx, user, study, { recordId: record.id }),
    sdvOf(ctx, record.id),
    activeLock(ctx, row),
    fieldHistoriesFor(ctx, study.id, record),
    siteTimeZone(ctx, row.siteId),
    recordGaps(ctx, user, study.id, record.id),
    databaseLockNotice(ctx, study.id),
  ]);
  // A database lock (ADR 0054) refuses every write of this page: offer none, say since when and why instead. A record
  // lock may be in force under it too, so it is read whatever lock activeLock names.
  const open = dbLock === null;
  // The protocol version in force at the record's site when each version was entered (ADR 0048).
  const ats = record.history.map((h) => h.at);
  const protocol = await protocolVersionsAt(ctx, study.id, row.siteId, ats);
  const scope = { studyId: study.id, siteId: row.siteId };
  // "Request signature" (ADR 0035): offered to site staff while the record is complete and unsigned.
  const signatureRequest = {
    allowed: open && (await canRequestSignature(ctx, user, study.code, record.id)),
    notified: Number(new URL(request.url).searchParams.get("signatureRequested") ?? "") || null,
  };
  return json({
    user: { fullName: user.fullName, email: user.email },
    study: study.code,
    record,
    def,
    fields,
    gaps,
    timeZone,
    protocolInForce: protocol.versions.map((v) => protocolInForceText(protocol.site, v)),
    today: todayIn(timeZone),
    signatures: sigs,
    queries: qs.map((q) => ({
      id: q.id,
      field: q.field,
      fieldText: q.fieldText,
      text: q.text,
      answer: q.answer,
      status: q.status,
      openedAt: q.raisedAt,
      waitingForText: q.waitingForText,
      history: q.history.map((h) => ({ action: h.action, by: h.by, at: h.at, text: h.text })),
      can: open ? q.can : { answer: false, close: false, reopen: false },
    })),
    sdv: sdv.map((m) => ({ version: m.version, at: m.markedAt.toISOString() })),
    lock: lock ? { id: lock.id, scope: lock.scope, reason: lock.reason } : null,
    databaseLocked: dbLock ? `${dbLock}. Ask the data manager to unlock it with a reason.` : null,
    signatureRequest,
    can: {
      enter: open && can(user, "records.enter", scope),
      sign: open && can(user, "records.sign", scope),
      monitor: open && can(user, "records.monitor", scope),
      lock: open && can(user, "records.lock", scope),
    },
  });
}

export async function action({ request, context, params }: ActionFunctionArgs) {
  const { study, user, record, def } = await load(request, context, params);
  const form = await request.formData();
  const text = (k: string) => String(form.get(k) ?? "");
  const ctx = context.ctx;
  const intent = text("intent");
  // A correction: the values, missing-data codes and confirmations as entered, read on the site's clock.
  const timeZone = await siteTimeZone(ctx, (await findRecord(ctx, record.id)).siteId);
  const entry = entryFromForm(def, form, { timeZone, locale: localeOf(request.headers.get("accept-language")) });
  const posted = intent === "correct" ? postedInputs(form) : null;
  const values = entry.data;
  try {
    switch (text("intent")) {
      case "sign":
        await signRecord(
          ctx,
          user,
          study.code,
          record.id,
          { meaning: text("meaning"), password: text("password"), code: text("code") || undefined },
          requestMeta(request),
        );
        break;
      case "sdv":
        await markSdv(ctx, user, study.code, record.id);
        break;
      case "request_signature": {
        const { notified } = await requestSignature(ctx, user, study.code, record.id);
        return redirect(`/studies/${study.code}/records/${record.id}?signatureRequested=${notified}`);
      }
      case "query":
        await openQuery(ctx, user, study.code, record.id, { field: text("field"), text: text("text") });
        break;
      case "answer":
        await answerQuery(ctx, user, study.code, text("query"), text("answer"));
        break;
      case "close":
        await closeQuery(ctx, user, study.code, text("query"));
        break;
      case "reopen":
        await reopenQuery(ctx, user, study.code, text("query"), { reason: text("reopen_reason") });
        break;
      case "lock":
        await setLock(ctx, user, study.code, { scope: "record", target: record.id, reason: text("reason") });
        break;
      case "unlock":
        await releaseLock(ctx, user, study.code, text("lock"), text("reason"));
        break;
      default:
        await correctRecord(ctx, user, study.code, record.id, {
          data: entry.data,
          ...(Object.keys(entry.missing).length ? { missing: entry.missing } : {}),
          ...(entry.confirmed.length ? { confirmed: entry.confirmed } : {}),
          reason: text("reason"),
        });
    }
    return redirect(`/studies/${study.code}/records/${record.id}`);
  } catch (err) {
    if (!(err instanceof ServiceError)) throw err;
    const service = err.problems?.length ? err.problems : [{ field: err.field ?? "", message: err.message }];
    return serviceErrorResponse(err, {
      values,
      intent,
      posted: posted as Posted | null,
      problems: posted ? mergeProblems(service, entry.problems) : null,
    });
  }
}

const STEP_TEXT = { opened: "Raised", answered: "Answered", closed: "Closed", reopened: "Re-opened" } as const;

/** UTC as stored, and the viewer's local time once in the browser (not at server render: no mismatch). */
function When({ iso }: { iso: string }) {
  const [local, setLocal] = useState<string | null>(null);
  useEffect(() => setLocal(new Date(iso).toLocaleString()), [iso]);
  return (
    <>
      {iso.replace("T", " ").slice(0, 19)} UTC{local ? <div className="muted">{local} local</div> : null}
    </>
  );
}

export default function RecordPage() {
  const {
    user,
    study,
    record,
    def,
    fields,
    gaps,
    timeZone,
    protocolInForce,
    today,
    signatures,
    queries,
    sdv,
    lock,
    databaseLocked,
    signatureRequest,
    can: may,
  } = useLoaderData<typeof loader>();
  const r = useActionData<typeof action>();
  const show = (v: unknown): string =>
    v === null || v === undefined
      ? "-"
      : Array.isArray(v)
        ? v.join(", ")
        : typeof v === "object" && "missing" in v
          ? `missing (${String(v.missing)})`
          : String(v);
  return (
    <StudyPage
      user={user}
      study={study}
      crumbs={[{ to: `/studies/${study}/participants/${record.subject}`, label: record.subject }]}
      title={
        <>
          {def.title}, visit {record.visit} <span className="badge">v{record.version}</span>{" "}
          {record.status === "locked" ? <span className="badge bad">locked</span> : null}
        </>
      }
    >
      {databaseLocked ? (
        <p className="card notice" data-database-locked>
          {`${databaseLocked} `}
          <Link to={`/studies/${study}/lock`}>The database lock page</Link>
        </p>
      ) : null}
      {record.matchesSeal ? null : (
        <p className="error" role="alert" data-seal-mismatch>
          The stored values of{" "}
          {record.history
            .filter((h) => !h.matchesSeal)
            .map((h) => `v${h.version}`)
            .join(", ")}{" "}
          do not match their sealed entries: they were changed outside TrialSeal and are not the values that were
          sealed. Run the integrity audit.
        </p>
      )}
      {gaps.length > 0 ? (
        <p className="error" data-required-empty>
          Incomplete: required under the form as approved now and empty (no value, no missing-data code):{" "}
          {gaps.map((g) => g.label).join(", ")}.
        </p>
      ) : null}
      <h2>Values</h2>
      <p className="muted">
        Open a field's history to see every change: when, who, the old and new value, why, and its proof.
      </p>
      <FieldValues
        fields={fields}
        flags={Object.fromEntries(
          queries
            .filter((q) => q.status !== "closed")
            .map((q) => [q.field, q.status === "open" ? "Open query" : "Answered query"]),
        )}
      />
      <h2>History</h2>
      <table className="labelled">
        <thead>
          <tr>
            <th>Version</th>
            <th>When</th>
            <th>Who</th>
            <th>What changed</th>
            <th>Why</th>
            <th>Seal</th>
          </tr>
        </thead>
        <tbody>
          {record.history.map((h, i) => (
            <tr key={h.version} data-version={h.version}>
              <td data-label="Version">v{h.version}</td>
              <td data-label="When">
                <When iso={h.at} />
                <div className="muted" data-protocol-in-force>
                  {protocolInForce[i]}
                </div>
              </td>
              <td data-label="Who">{h.actor}</td>
              <td data-label="What changed">
                {h.source ? (
                  <span data-version-migrated>
                    <span className="badge">migrated</span> from row {JSON.parse(h.source).row} of an imported file (see
                    each value's history){h.version === 1 ? "" : ": "}
                  </span>
                ) : null}
                {h.version === 1
                  ? h.source
                    ? null
                    : "entered"
                  : h.changes.map((c) => `${c.field}: ${show(c.old)} → ${show(c.new)}`).join("; ")}
              </td>
              <td data-label="Why">{h.reason ?? "-"}</td>
              <td
                data-label="Seal"
                data-seal={h.matchesSeal ? h.entry.status : "mismatch"}
                className={h.matchesSeal ? undefined : "error"}
              >
                {sealText(h.entry)}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {r?.error && r.intent !== "sign" && !r.field?.startsWith("data") && r.field !== "reason" ? (
        <p className="error" role="alert" data-error-field={r.field ?? ""}>
          {r.error}
        </p>
      ) : null}
      <h2>Signatures</h2>
      {signatures.length === 0 ? <p className="muted">Not signed.</p> : null}
      <ul>
        {signatures.map((s) => (
          <li key={s.id} data-signature={s.valid ? "valid" : "invalidated"}>
            <strong>{s.printedName}</strong>, {s.signedAt.replace("T", " ").slice(0, 19)} UTC, meaning:{" "}
            <em>{s.meaning}</em> (version {s.version}){s.note ? <span className="error"> {s.note}</span> : null}
          </li>
        ))}
      </ul>
      {signatureRequest.notified ? (
        <p role="status" data-signature-requested>
          Signature requested: {signatureRequest.notified} investigator
          {signatureRequest.notified === 1 ? " was" : "s were"} notified by e-mail.
        </p>
      ) : null}
      {signatureRequest.allowed && !may.sign ? (
        <Form method="post" className="card" noValidate>
          <input type="hidden" name="intent" value="request_signature" />
          <p>This version is complete and not signed: ask the site's investigators to sign it.</p>
          <button type="submit">Request signature</button>
        </Form>
      ) : null}
      {may.sign ? (
        <Form method="post" className="card" noValidate>
          <input type="hidden" name="intent" value="sign" />
          <h3>Sign version {record.version}</h3>
          {r?.error && r.intent === "sign" ? (
            <p className="error" role="alert" data-error-field={r.field ?? ""} data-sign-refused>
              {r.error}
            </p>
          ) : null}
          <label htmlFor="meaning">Meaning of this signature</label>
          <select id="meaning" name="meaning">
            <option value="approved">approved</option>
            <option value="reviewed">reviewed</option>
            <option value="authored">authored</option>
          </select>
          <label htmlFor="sign-password">Your password</label>
          <input id="sign-password" name="password" type="password" autoComplete="current-password" />
          <label htmlFor="sign-code">Authenticator code</label>
          <input id="sign-code" name="code" type="text" inputMode="numeric" autoComplete="one-time-code" />
          <button type="submit">Sign</button>
        </Form>
      ) : null}
      <h2>Monitoring</h2>
      <p data-sdv>
        {sdv.length
          ? `Source data verified: version ${sdv[sdv.length - 1].version} on ${sdv[sdv.length - 1].at.slice(0, 10)}`
          : "Not source-data verified."}
      </p>
      {may.monitor ? (
        <Form method="post">
          <input type="hidden" name="intent" value="sdv" />
          <button type="submit">Mark version {record.version} as source-data verified</button>
        </Form>
      ) : null}
      {queries.length === 0 ? (
        <p className="muted" data-empty="queries">
          No queries on this record.{may.monitor ? " Raise one below on the field that needs checking." : ""}
        </p>
      ) : null}
      <table className="labelled" hidden={queries.length === 0}>
        <thead>
          <tr>
            <th>Field</th>
            <th>Query</th>
            <th>Answer</th>
            <th>Status</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {queries.map((q) => (
            <tr key={q.id} data-query={q.status}>
              <td data-label="Field">{q.fieldText}</td>
              <td data-label="Query" id={`query-${q.id}`}>
                {q.text}
                <ol className="query-history" aria-label="History of this query">
                  {q.history.map((h) => (
                    <li key={`${h.action}-${h.at}`} data-step={h.action}>
                      {STEP_TEXT[h.action]} by {h.by}, {h.at.replace("T", " ").slice(0, 16)} UTC
                      {h.text && h.action !== "opened" ? `: ${h.text}` : ""}
                    </li>
                  ))}
                </ol>
              </td>
              <td data-label="Answer">
                {q.answer ??
                  (may.enter && q.status === "open" ? (
                    <Form method="post">
                      <input type="hidden" name="intent" value="answer" />
                      <input type="hidden" name="query" value={q.id} />
                      <label htmlFor={`answer-${q.id}`}>Answer</label>
                      <input id={`answer-${q.id}`} name="answer" type="text" />
                      <button type="submit">Answer</button>
                    </Form>
                  ) : (
                    "-"
                  ))}
              </td>
              <td data-label="Status">
                {q.status}
                <div className="muted">waiting for {q.waitingForText}</div>
              </td>
              <td>
                {q.can.close ? (
                  <Form method="post">
                    <input type="hidden" name="intent" value="close" />
                    <input type="hidden" name="query" value={q.id} />
                    <button type="submit">Close</button>
                  </Form>
                ) : null}
                {q.can.reopen ? (
                  <Form method="post" noValidate>
                    <input type="hidden" name="intent" value="reopen" />
                    <input type="hidden" name="query" value={q.id} />
                    <label htmlFor={`reopen-${q.id}`}>Reason to re-open</label>
                    <input id={`reopen-${q.id}`} name="reopen_reason" type="text" />
                    <button type="submit">Re-open</button>
                  </Form>
                ) : null}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {may.monitor ? (
        <Form method="post" className="card" noValidate>
          <input type="hidden" name="intent" value="query" />
          <h3>Raise a query</h3>
          <label htmlFor="query-field">Field</label>
          <select id="query-field" name="field">
            {def.fields.map((f) => (
              <option key={f.name} value={f.name}>
                {f.label}
              </option>
            ))}
          </select>
          <label htmlFor="query-text">Query</label>
          <input id="query-text" name="text" type="text" />
          <button type="submit">Raise query</button>
        </Form>
      ) : null}
      {lock && !databaseLocked ? (
        <p className="error" data-lock={lock.scope}>
          Locked ({lock.scope}): {lock.reason}
        </p>
      ) : null}
      {may.lock ? (
        <Form method="post" className="card" noValidate>
          <input type="hidden" name="intent" value={lock ? "unlock" : "lock"} />
          {lock ? <input type="hidden" name="lock" value={lock.id} /> : null}
          <label htmlFor="lock-reason">{lock ? "Reason to unlock" : "Reason to lock"}</label>
          <input id="lock-reason" name="reason" type="text" />
          <button type="submit">{lock ? "Unlock" : "Lock record"}</button>
        </Form>
      ) : null}
      {!lock && may.enter ? (
        <section className="card">
          <h2>Correct</h2>
          {r?.error && !r.problems?.length && (r.field === "reason" || r.field === "data") ? (
            <p className="error" role="alert">
              {r.error}
            </p>
          ) : null}
          <Form method="post" noValidate>
            <input type="hidden" name="intent" value="correct" />
            <RecordFields
              def={def}
              values={record.data as Record<string, unknown>}
              missing={record.missing}
              calculated={record.calculated}
              posted={r?.posted ?? null}
              problems={r?.problems ?? null}
              timeZone={timeZone}
              today={today}
              error={r?.error && r.intent === "correct" ? { field: r.field, message: r.error } : null}
            />
            <label htmlFor="reason">Reason for change *</label>
            <input
              id="reason"
              name="reason"
              type="text"
              defaultValue={typeof r?.posted?.reason === "string" ? r.posted.reason : undefined}
              aria-invalid={r?.field === "reason" || r?.problems?.some((p) => p.field === "reason") || undefined}
            />
            <button type="submit">Save correction</button>
          </Form>
        </section>
      ) : null}
    </StudyPage>
  );
}
