import { json, type LinksFunction, type LoaderFunctionArgs, type MetaFunction } from "@remix-run/node";
import { useLoaderData } from "@remix-run/react";
import { ActivityChart, lastDays } from "../../log/activity-chart.tsx";
import { studyOverview } from "../../studies/study-overview.server.ts";
import { requireStudy } from "../../platform/require-study.server.ts";
import { can } from "../../platform/permissions.server.ts";
import { mayOpenDataRequests } from "../../data-sharing/requests.server.ts";
import { StudyPage } from "../../ui/study-page.tsx";
import { ProgressPanel } from "../../dashboards/progress-panel.tsx";
import { studyProgress } from "../../dashboards/study-progress.server.ts";
import dashboardStyles from "../../dashboards/dashboards.css";

export const links: LinksFunction = () => [{ rel: "stylesheet", href: dashboardStyles }];

export const meta: MetaFunction<typeof loader> = ({ data }) => [
  { title: `${data?.study.code ?? "Study"} · TrialSeal` },
];

export async function loader({ request, context, params }: LoaderFunctionArgs) {
  const { study, user } = await requireStudy(request, context, params, "study.view");
  const {
    sites,
    forms,
    documents,
    counts,
    activity,
    status,
    logActivity: log,
  } = await studyOverview(context.ctx, study.id, 14);
  const progress = await studyProgress(context.ctx, user, study.code);
  return json({
    user: { fullName: user.fullName, email: user.email },
    study: { code: study.code, title: study.title, status: study.status },
    sites: sites.map((s) => ({ code: s.code, name: s.name })),
    forms: forms.map((f) => ({ code: f.code, version: f.version, title: f.title, status: f.status })),
    documents: documents.map((d) => ({
      code: d.code,
      version: d.version,
      title: d.title,
      status: d.status,
      irbName: d.irbName,
      irbApprovedOn: d.irbApprovedOn,
    })),
    entries: counts,
    canAudit: can(user, "audit.view", { studyId: study.id }),
    canReview: can(user, "study.review", { studyId: study.id }),
    canDataUse: mayOpenDataRequests(user, study.id),
    activity: lastDays(activity, 14),
    logActivity: lastDays(
      log.map((l) => ({ day: l.day, written: l.batches, sealed: l.anchors })),
      14,
    ),
    anchors: status.ledgers.map((l) => ({
      ledger: l.ledger,
      state: l.state,
      lastFinalSize: l.lastFinalSize,
      behind: l.behind,
    })),
    logSize: status.logSize,
    progress,
    canSetTargets: can(user, "study.manage", { studyId: study.id }),
  });
}

export default function Study() {
  const d = useLoaderData<typeof loader>();
  return (
    <StudyPage
      user={d.user}
      study={d.study.code}
      breadcrumb={false}
      title={
        <>
          {d.study.code}: {d.study.title} <span className="badge">{d.study.status}</span>
        </>
      }
    >
      <nav className="tabs" aria-label="Study sections">
        <a href={`/studies/${d.study.code}/staff`}>Staff and sites</a>
        <a href={`/studies/${d.study.code}/forms`}>CRF forms</a>
        <a href={`/studies/${d.study.code}/consent`}>Consent documents</a>
        <a href={`/studies/${d.study.code}/participants`}>Participants</a>
        <a href={`/studies/${d.study.code}/matrix`}>Subject matrix</a>
        <a href={`/studies/${d.study.code}/queries`}>Queries</a>
        <a href={`/studies/${d.study.code}/delegation`}>Delegation log</a>
        <a href={`/studies/${d.study.code}/missing-data`}>Missing data</a>
        <a href={`/studies/${d.study.code}/documents`}>Protocol and plans</a>
        <a href={`/studies/${d.study.code}/outcomes`}>Outcomes</a>
        <a href={`/studies/${d.study.code}/randomization`}>Randomization</a>
        <a href={`/studies/${d.study.code}/supply`}>Drug supply</a>
        <a href={`/studies/${d.study.code}/lock`}>Database lock</a>
        <a href={`/studies/${d.study.code}/registration`}>Public registration</a>
        {d.canAudit ? <a href={`/studies/${d.study.code}/audit`}>Audit trail</a> : null}
        {d.canReview ? <a href={`/studies/${d.study.code}/review`}>Review and proofs</a> : null}
        {d.canDataUse ? <a href={`/studies/${d.study.code}/data-requests`}>Data-use requests</a> : null}
        <a href="/verify">Verify bundles</a>
      </nav>
      <div className="grid">
        <div className="card">
          <div className="muted">Ledger entries sealed</div>
          <div className="stat">{d.entries.sealed}</div>
        </div>
        <div className="card">
          <div className="muted">Ledger entries pending</div>
          <div className="stat">{d.entries.pending}</div>
        </div>
        <div className="card">
          <div className="muted">Sites</div>
          <div className="stat">{d.sites.length}</div>
        </div>
        <div className="card">
          <div className="muted">Anchored (log of {d.logSize} batches)</div>
          {d.anchors.map((a) => (
            <div key={a.ledger}>
              {a.ledger}:{" "}
              <span className={`badge ${a.state === "up to date" ? "ok" : a.state === "retrying" ? "bad" : ""}`}>
                {a.state}
              </span>
            </div>
          ))}
        </div>
      </div>
      <ProgressPanel p={d.progress} canSetTargets={d.canSetTargets} />
      <section className="card">
        <ActivityChart days={d.activity} title="Ledger entries, last 14 days" />
        <ActivityChart
          days={d.logActivity}
          title="Log: batches sealed and anchors made, last 14 days"
          light="batches"
          dark="anchors"
          unit="batches"
        />
      </section>
      <section className="card">
        <h2>Sites</h2>
        <ul>
          {d.sites.map((s) => (
            <li key={s.code}>
              {s.code}: {s.name}
            </li>
          ))}
        </ul>
      </section>
      <section className="card">
        <h2>CRF forms</h2>
        <div className="table-scroll">
          <table>
            <thead>
              <tr>
                <th>Form</th>
                <th>Version</th>
                <th>Title</th>
                <th>Status</th>
              </tr>
            </thead>
            <tbody>
              {d.forms.map((f) => (
                <tr key={`${f.code}-${f.version}`}>
                  <td>{f.code}</td>
                  <td>{f.version}</td>
                  <td>{f.title}</td>
                  <td>
                    <span className="badge">{f.status}</span>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </section>
      <section className="card">
        <h2>Consent documents</h2>
        <div className="table-scroll">
          <table>
            <thead>
              <tr>
                <th>Document</th>
                <th>Version</th>
                <th>Status</th>
                <th>IRB approval</th>
              </tr>
            </thead>
            <tbody>
              {d.documents.map((c) => (
                <tr key={`${c.code}-${c.version}`}>
                  <td>{c.title}</td>
                  <td>{c.version}</td>
                  <td>
                    <span className="badge">{c.status}</span>
                  </td>
                  <td>
                    {c.irbName} {c.irbApprovedOn}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </section>
    </StudyPage>
  );
}
