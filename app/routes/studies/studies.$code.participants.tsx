import { json, type ActionFunctionArgs, type LoaderFunctionArgs, type MetaFunction } from "@remix-run/node";
import { Form, Link, useActionData, useLoaderData } from "@remix-run/react";
import { serviceErrorResponse } from "../../platform/error-response.server.ts";
import { can } from "../../platform/permissions.server.ts";
import { enrollParticipant, listParticipants } from "../../participants/participants.server.ts";
import { dispositionLabel } from "../../participants/disposition-panel.tsx";
import { releaseLock, setLock, studyLock } from "../../clinical-monitoring/clinical-monitoring.server.ts";
import { studyConsentSummary } from "../../consent/status.server.ts";
import { studySites } from "../../studies/studies.server.ts";
import { requireStudy } from "../../platform/require-study.server.ts";
import { StudyPage } from "../../ui/study-page.tsx";
import { databaseLockNotice } from "../../database-lock/database-lock.server.ts";

export const meta: MetaFunction = () => [{ title: "Participants · TrialSeal" }];

export async function loader({ request, context, params }: LoaderFunctionArgs) {
  const { study, user } = await requireStudy(request, context, params, "records.read");
  const [rows, sites] = await Promise.all([
    listParticipants(context.ctx, user, study.id),
    studySites(context.ctx, study.id),
  ]);
  const lock = await studyLock(context.ctx, study.id);
  // The study-wide lock of a database lock (ADR 0054) is released on the lock page, by the data manager only.
  const dbLock = lock ? await databaseLockNotice(context.ctx, study.id) : null;
  const consent = await studyConsentSummary(context.ctx, user, study.id);
  // A study-wide lock (a database lock or not) refuses enrolment (ADR 0054): no enrol form under it.
  const enrollSites = lock
    ? []
    : sites
        .filter((s) => can(user, "participants.enroll", { studyId: study.id, siteId: s.id }) && !user.platformAdmin)
        .map((s) => s.code);
  return json({
    user: { fullName: user.fullName, email: user.email },
    study: study.code,
    enrollSites,
    lock: lock ? { id: lock.id, reason: lock.reason } : null,
    databaseLocked: dbLock
      ? `${dbLock}. Nobody can enter, correct or sign any record; only the data manager can unlock it, with a ` +
        "reason: unlock it on "
      : null,
    canLock: can(user, "records.lock", { studyId: study.id }),
    participants: rows.map((r) => ({
      ...r,
      enrolledAt: r.enrolledAt.toISOString(),
      consent: consent.get(r.id) ? { state: consent.get(r.id)!.state, summary: consent.get(r.id)!.summary } : null,
    })),
  });
}

export async function action({ request, context, params }: ActionFunctionArgs) {
  const { study, user } = await requireStudy(request, context, params, "study.view");
  const form = await request.formData();
  try {
    const intent = String(form.get("intent") ?? "enroll");
    if (intent === "lock" || intent === "unlock") {
      // Locking the whole study stops all data entry: the form asks for an explicit confirmation (no JavaScript).
      if (intent === "lock" && form.get("confirm") !== "on")
        return json(
          {
            ok: false,
            message: null,
            error: 'confirm: tick "I understand" to lock the whole study',
            field: "confirm",
            saved: null,
          },
          { status: 422 },
        );
      if (intent === "lock")
        await setLock(context.ctx, user, study.code, { scope: "study", reason: String(form.get("reason") ?? "") });
      else
        await releaseLock(
          context.ctx,
          user,
          study.code,
          String(form.get("lock") ?? ""),
          String(form.get("reason") ?? ""),
        );
      return json({
        ok: true,
        message: intent === "lock" ? "The study is locked." : "The study is unlocked.",
        error: null,
        field: null,
        saved: Date.now(),
      });
    }
    const text = (k: string) => String(form.get(k) ?? "").trim() || undefined;
    const p = await enrollParticipant(context.ctx, user, {
      study: study.code,
      site: String(form.get("site") ?? ""),
      disposition: String(form.get("disposition") ?? "") || undefined,
      personal: {
        fullName: text("fullName"),
        email: text("email"),
        phone: text("phone"),
        birthDate: text("birthDate"),
      },
    });
    return json({ ok: true, message: `Enrolled ${p.subjectCode}.`, error: null, field: null, saved: Date.now() });
  } catch (err) {
    return serviceErrorResponse(err, { ok: false, message: null });
  }
}

export default function Participants() {
  const d = useLoaderData<typeof loader>();
  const r = useActionData<typeof action>();
  return (
    <StudyPage user={d.user} study={d.study} title="Participants" flash={r}>
      {d.databaseLocked ? (
        <p className="error" data-lock="study" data-database-locked>
          {d.databaseLocked}
          <Link to={`/studies/${d.study}/lock`}>the database lock page</Link>.
        </p>
      ) : d.lock ? (
        <p className="error" data-lock="study">
          The study is locked: {d.lock.reason}
        </p>
      ) : null}
      {d.enrollSites.length > 0 ? (
        <Form method="post" className="card" key={r?.ok ? `saved-${r.saved}` : "enrol"}>
          <label htmlFor="site">Site</label>
          <select id="site" name="site">
            {d.enrollSites.map((s) => (
              <option key={s}>{s}</option>
            ))}
          </select>
          <label htmlFor="disposition">Starts as</label>
          <select id="disposition" name="disposition" defaultValue="enrolled">
            <option value="enrolled">Enrolled</option>
            <option value="screening">Screening</option>
          </select>
          <p className="muted">Personal data (optional) is encrypted and never written to the log.</p>
          <div className="grid">
            <div>
              <label htmlFor="fullName">Full name</label>
              <input id="fullName" name="fullName" type="text" autoComplete="off" />
            </div>
            <div>
              <label htmlFor="birthDate">Date of birth</label>
              <input id="birthDate" name="birthDate" type="date" />
            </div>
            <div>
              <label htmlFor="email">Email</label>
              <input id="email" name="email" type="email" autoComplete="off" />
            </div>
            <div>
              <label htmlFor="phone">Phone</label>
              <input id="phone" name="phone" type="tel" autoComplete="off" />
            </div>
          </div>
          <button type="submit">Enroll a participant</button>
        </Form>
      ) : null}
      {/* biome-ignore lint/a11y/noNoninteractiveTabindex: a scrolling region must be reachable by keyboard */}
      <section className="table-scroll" tabIndex={0} aria-label="Participants, scrolls sideways">
        <table>
          <thead>
            <tr>
              <th>Subject</th>
              <th>Site</th>
              <th>Status</th>
              <th>Disposition</th>
              <th>Consent</th>
              <th>Enrolled (UTC)</th>
            </tr>
          </thead>
          <tbody>
            {d.participants.map((p) => (
              <tr key={p.id} data-subject={p.subject}>
                <td>
                  <Link to={`/studies/${d.study}/participants/${p.subject}`}>{p.subject}</Link>
                </td>
                <td>{p.site}</td>
                <td>{p.status}</td>
                <td data-disposition={p.disposition}>{dispositionLabel(p.disposition)}</td>
                <td>
                  <Link
                    to={`/studies/${d.study}/participants/${p.subject}/consent`}
                    className={p.consent?.state === "reconsent_needed" ? "error" : undefined}
                    data-consent-state={p.consent?.state}
                  >
                    {p.consent?.summary ?? "-"}
                  </Link>
                </td>
                <td>{p.enrolledAt.replace("T", " ").slice(0, 19)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </section>
      {d.participants.length === 0 ? (
        <p className="muted" data-empty="participants">
          No participants yet.{" "}
          {d.enrollSites.length
            ? "Enroll the first one with the form above; their consent comes next."
            : "Site staff (investigators and coordinators) enroll participants at their site."}
        </p>
      ) : null}
      {d.canLock && !d.databaseLocked ? (
        <details className="card danger-zone" open={r?.field === "confirm" || undefined}>
          <summary>{d.lock ? "Unlock the study" : "Lock the whole study (danger zone)"}</summary>
          <Form method="post" noValidate key={r?.ok ? `lock-${r.saved}` : "lock"}>
            <input type="hidden" name="intent" value={d.lock ? "unlock" : "lock"} />
            {d.lock ? <input type="hidden" name="lock" value={d.lock.id} /> : null}
            <label htmlFor="study-lock-reason">
              {d.lock ? "Reason to unlock the study" : "Reason to lock the whole study"}
            </label>
            <input id="study-lock-reason" name="reason" type="text" />
            {d.lock ? null : (
              <label className="inline">
                <input type="checkbox" name="confirm" aria-invalid={r?.field === "confirm" || undefined} /> I understand
                that nobody can enter, correct or sign any record of this study until it is unlocked
              </label>
            )}
            <button type="submit" className={d.lock ? undefined : "button-danger"}>
              {d.lock ? "Unlock study" : "Lock the whole study"}
            </button>
          </Form>
        </details>
      ) : null}
    </StudyPage>
  );
}
