import { json, type LoaderFunctionArgs, type MetaFunction } from "@remix-run/node";
import { Link, useLoaderData } from "@remix-run/react";
import { visibleStudies } from "../../studies/studies.server.ts";
import { requireUser } from "../../platform/session.server.ts";
import { can } from "../../platform/permissions.server.ts";
import { TopBar } from "../../ui/top-bar.tsx";

export const meta: MetaFunction = () => [{ title: "Studies · TrialSeal" }];

export async function loader({ request, context }: LoaderFunctionArgs) {
  const user = await requireUser(request, context);
  const studies = await visibleStudies(context.ctx, user);
  const roles = (studyId: string) =>
    user.memberships.filter((m) => m.studyId === studyId).map((m) => m.role + (m.siteCode ? ` (${m.siteCode})` : ""));
  return json({
    user: { fullName: user.fullName, email: user.email, platformAdmin: user.platformAdmin },
    studies: studies.map((s) => ({
      code: s.code,
      title: s.title,
      status: s.status,
      roles: user.platformAdmin ? ["platform admin"] : roles(s.id),
      // External researchers and the data access committee have no study.view (ADR 0069): their page of a study is
      // its data-use requests.
      home: can(user, "study.view", { studyId: s.id }) ? `/studies/${s.code}` : `/studies/${s.code}/data-requests`,
    })),
  });
}

export default function Studies() {
  const { user, studies } = useLoaderData<typeof loader>();
  return (
    <>
      <TopBar user={user} />
      <main className="page">
        <h1>Studies</h1>
        {user.platformAdmin ? (
          <p>
            <Link to="/studies/new">New study</Link> · <Link to="/outbox">Outbox</Link> (notifications and their
            delivery)
          </p>
        ) : null}
        {studies.length === 0 ? <p className="muted">You have no role in any study yet.</p> : null}
        <table>
          <thead>
            <tr>
              <th>Protocol</th>
              <th>Title</th>
              <th>Status</th>
              <th>Your role</th>
            </tr>
          </thead>
          <tbody>
            {studies.map((s) => (
              <tr key={s.code}>
                <td>
                  <Link to={s.home}>{s.code}</Link>
                </td>
                <td>{s.title}</td>
                <td>
                  <span className="badge">{s.status}</span>
                </td>
                <td>{s.roles.join(", ")}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </main>
    </>
  );
}
