import { json, type ActionFunctionArgs, type LoaderFunctionArgs, type MetaFunction } from "@remix-run/node";
import { Form, useActionData, useLoaderData } from "@remix-run/react";
import { serviceErrorResponse } from "../../platform/error-response.server.ts";
import { can } from "../../platform/permissions.server.ts";
import { addSite, inviteStaff, revokeRole, setSiteTimeZone, studyStaff } from "../../studies/staff.server.ts";
import { timeZoneNames } from "../../platform/time-zone.ts";
import { TimeZoneSelect } from "../../ui/time-zone-select.tsx";
import { studySites } from "../../studies/studies.server.ts";
import { requireStudy } from "../../platform/require-study.server.ts";
import { StudyPage } from "../../ui/study-page.tsx";

export const meta: MetaFunction = () => [{ title: "Staff and sites · TrialSeal" }];

const ROLE_CHOICES = [
  "investigator",
  "coordinator",
  "monitor",
  "data_manager",
  "regulator",
  "admin",
  "unblinded_statistician",
  "unblinded_pharmacist",
  "depot_manager",
  "site_pharmacist",
  "data_access_committee",
  "external_researcher",
] as const;

export async function loader({ request, context, params }: LoaderFunctionArgs) {
  const { study, user } = await requireStudy(request, context, params, "study.view");
  const [staff, sites] = await Promise.all([studyStaff(context.ctx, study.id), studySites(context.ctx, study.id)]);
  return json({
    user: { fullName: user.fullName, email: user.email },
    study: study.code,
    canManage: can(user, "users.manage", { studyId: study.id }),
    sites: sites.map((s) => ({ code: s.code, name: s.name, timeZone: s.timeZone })),
    zones: timeZoneNames(),
    staff: staff.map((s) => ({
      ...s,
      grantedAt: s.grantedAt.toISOString(),
      revokedAt: s.revokedAt?.toISOString() ?? null,
    })),
  });
}

export async function action({ request, context, params }: ActionFunctionArgs) {
  const { study, user } = await requireStudy(request, context, params, "users.manage");
  const form = await request.formData();
  const text = (k: string) => String(form.get(k) ?? "");
  try {
    switch (text("intent")) {
      case "site": {
        const s = await addSite(context.ctx, user, {
          study: study.code,
          code: text("siteCode"),
          name: text("siteName"),
          timeZone: text("siteTimeZone"),
        });
        return json({
          ok: true,
          message: `Site ${s.code} added.`,
          error: null,
          field: null,
          saved: `site-${Date.now()}`,
        });
      }
      case "site-time-zone": {
        const s = await setSiteTimeZone(context.ctx, user, {
          study: study.code,
          site: text("site"),
          timeZone: text("timeZone"),
        });
        return json({
          ok: true,
          message: `Site ${s.code} now enters and shows times in ${s.timeZone}.`,
          error: null,
          field: null,
        });
      }
      case "invite": {
        const r = await inviteStaff(
          context.ctx,
          user,
          {
            study: study.code,
            email: text("email"),
            fullName: text("fullName"),
            role: text("role") as never,
            site: text("site") || undefined,
            qualifier: (text("qualifier") || undefined) as never,
          },
          context.ctx.env.publicUrl,
        );
        return json({
          ok: true,
          message: r.invited ? `Invitation sent to ${r.user.email}.` : `${r.user.email} has the new role.`,
          error: null,
          field: null,
          saved: `invite-${Date.now()}`,
        });
      }
      case "revoke":
        await revokeRole(context.ctx, user, { study: study.code, membership: text("membership") });
        return json({ ok: true, message: "Role revoked.", error: null, field: null });
      default:
        return json({ ok: false, message: null, error: "unknown action", field: "intent" }, { status: 400 });
    }
  } catch (err) {
    return serviceErrorResponse(err, { ok: false, message: null });
  }
}

export default function Staff() {
  const d = useLoaderData<typeof loader>();
  const r = useActionData<typeof action>();
  const bad = (f: string) => (r?.field === f ? true : undefined);
  // A form is emptied after its own successful save (a new key), and keeps what was typed after an error.
  const saved = r && "saved" in r && typeof r.saved === "string" ? r.saved : "";
  const keyOf = (form: string) => (saved.startsWith(`${form}-`) ? saved : form);
  return (
    <StudyPage user={d.user} study={d.study} title="Staff and sites" flash={r}>
      <table>
        <thead>
          <tr>
            <th>Name</th>
            <th>Email</th>
            <th>Role</th>
            <th>Site</th>
            <th>Granted (UTC)</th>
            <th>Status</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {d.staff.map((s) => (
            <tr key={s.id} data-staff={s.email}>
              <td>{s.name}</td>
              <td>{s.email}</td>
              <td>
                {s.role.replace("_", " ")}
                {s.qualifier ? ` (${s.qualifier})` : ""}
              </td>
              <td>{s.site ?? "all"}</td>
              <td>{s.grantedAt.slice(0, 10)}</td>
              <td>{s.revokedAt ? `revoked ${s.revokedAt.slice(0, 10)}` : "current"}</td>
              <td>
                {d.canManage && !s.revokedAt && s.email !== d.user.email ? (
                  <Form method="post">
                    <input type="hidden" name="intent" value="revoke" />
                    <input type="hidden" name="membership" value={s.id} />
                    <button type="submit">Revoke</button>
                  </Form>
                ) : null}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {d.staff.length === 0 ? (
        <p className="muted" data-empty="staff">
          Nobody has a role in this study yet.{" "}
          {d.canManage ? "Invite the first person below." : "A study administrator invites staff here."}
        </p>
      ) : null}
      {d.canManage ? (
        <div className="grid">
          <section className="card">
            <h2>Invite a person</h2>
            <Form method="post" noValidate key={keyOf("invite")}>
              <input type="hidden" name="intent" value="invite" />
              <label htmlFor="fullName">Full name</label>
              <input id="fullName" name="fullName" type="text" aria-invalid={bad("fullName")} />
              <label htmlFor="email">Email</label>
              <input id="email" name="email" type="email" aria-invalid={bad("email")} />
              <label htmlFor="role">Role</label>
              <select id="role" name="role" aria-invalid={bad("role")}>
                {ROLE_CHOICES.map((x) => (
                  <option key={x} value={x}>
                    {x.replace("_", " ")}
                  </option>
                ))}
              </select>
              <label htmlFor="site">Site (investigators and coordinators)</label>
              <select id="site" name="site" aria-invalid={bad("site")}>
                <option value="">none (study-wide role)</option>
                {d.sites.map((s) => (
                  <option key={s.code} value={s.code}>
                    {s.code}: {s.name}
                  </option>
                ))}
              </select>
              <label htmlFor="qualifier">Investigator type</label>
              <select id="qualifier" name="qualifier">
                <option value="">-</option>
                <option value="principal">principal investigator</option>
                <option value="sub">sub-investigator</option>
              </select>
              <button type="submit">Invite</button>
            </Form>
          </section>
          <section className="card">
            <h2>Sites</h2>
            <ul className="sites">
              {d.sites.map((s) => (
                <li key={s.code} data-site={s.code}>
                  {s.code}: {s.name} <span className="muted">({s.timeZone})</span>
                  <Form method="post" noValidate className="inline-form">
                    <input type="hidden" name="intent" value="site-time-zone" />
                    <input type="hidden" name="site" value={s.code} />
                    <label htmlFor={`tz-${s.code}`}>Time zone of {s.code}</label>
                    <TimeZoneSelect id={`tz-${s.code}`} name="timeZone" zones={d.zones} defaultValue={s.timeZone} />
                    <button type="submit">Set time zone</button>
                  </Form>
                </li>
              ))}
            </ul>
            <Form method="post" noValidate key={keyOf("site")}>
              <input type="hidden" name="intent" value="site" />
              <label htmlFor="siteCode">New site code</label>
              <input id="siteCode" name="siteCode" type="text" aria-invalid={bad("code")} />
              <label htmlFor="siteName">Site name</label>
              <input id="siteName" name="siteName" type="text" aria-invalid={bad("name")} />
              <label htmlFor="siteTimeZone">Time zone of the new site</label>
              <TimeZoneSelect id="siteTimeZone" name="siteTimeZone" zones={d.zones} invalid={bad("timeZone")} />
              <button type="submit">Add site</button>
            </Form>
          </section>
        </div>
      ) : null}
    </StudyPage>
  );
}
