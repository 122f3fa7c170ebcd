import { json, redirect, type ActionFunctionArgs, type LoaderFunctionArgs, type MetaFunction } from "@remix-run/node";
import { Form, useActionData, useLoaderData } from "@remix-run/react";
import { z } from "zod";
import { changePassword, listSessions, revokeOwnSession } from "../../accounts/auth.server.ts";
import { serviceErrorResponse } from "../../platform/error-response.server.ts";
import { requestMeta, requireUser, sessionToken } from "../../platform/session.server.ts";
import { TopBar } from "../../ui/top-bar.tsx";

export const meta: MetaFunction = () => [{ title: "Your account · TrialSeal" }];

export async function loader({ request, context }: LoaderFunctionArgs) {
  const user = await requireUser(request, context);
  const sessions = await listSessions(context.ctx, user.userId!);
  return json({
    user: { fullName: user.fullName, email: user.email, totpEnabled: user.totpEnabled },
    current: user.sessionId,
    sessions: sessions.map((s) => ({
      ...s,
      createdAt: s.createdAt.toISOString(),
      lastSeenAt: s.lastSeenAt.toISOString(),
    })),
  });
}

const Intent = z.discriminatedUnion("intent", [
  z.object({
    intent: z.literal("password"),
    current: z.string().min(1, "Enter your current password").max(1024),
    password: z.string().max(1024),
    confirm: z.string().max(1024),
  }),
  z.object({ intent: z.literal("revoke"), session: z.string().uuid("no such session") }),
]);

export async function action({ request, context }: ActionFunctionArgs) {
  const user = await requireUser(request, context);
  const parsed = Intent.safeParse(Object.fromEntries(await request.formData()));
  if (!parsed.success) {
    const i = parsed.error.issues[0];
    return json({ ok: false, error: i.message, field: String(i.path[0] ?? "") }, { status: 400 });
  }
  const v = parsed.data;
  try {
    if (v.intent === "password") {
      if (v.password !== v.confirm)
        return json({ ok: false, error: "the two new passwords differ", field: "confirm" }, { status: 422 });
      await changePassword(
        context.ctx,
        (await sessionToken(request, context.ctx))!,
        v.current,
        v.password,
        requestMeta(request),
      );
      return json({
        ok: true,
        error: null,
        field: null,
        message: "Password changed; your other sessions were signed out.",
      });
    }
    await revokeOwnSession(context.ctx, user.userId!, v.session, requestMeta(request));
    if (v.session === user.sessionId) return redirect("/login");
    return json({ ok: true, error: null, field: null, message: "Session signed out." });
  } catch (err) {
    return serviceErrorResponse(err, { ok: false });
  }
}

export default function Account() {
  const { user, sessions, current } = useLoaderData<typeof loader>();
  const result = useActionData<typeof action>();
  return (
    <>
      <TopBar user={user} />
      <main className="page">
        <h1>Your account</h1>
        {result && "message" in result && result.message ? <p role="status">{result.message}</p> : null}
        {result?.error ? (
          <p className="error" role="alert">
            {result.error}
          </p>
        ) : null}
        <div className="grid">
          <section className="card">
            <h2>Password</h2>
            <Form method="post" noValidate>
              <input type="hidden" name="intent" value="password" />
              <label htmlFor="current">Current password</label>
              <input id="current" name="current" type="password" autoComplete="current-password" />
              <label htmlFor="password">New password (12 to 128 characters)</label>
              <input id="password" name="password" type="password" autoComplete="new-password" />
              <label htmlFor="confirm">New password again</label>
              <input id="confirm" name="confirm" type="password" autoComplete="new-password" />
              <button type="submit">Change password</button>
            </Form>
          </section>
          <section className="card">
            <h2>Two-factor sign-in</h2>
            <p>{user.totpEnabled ? "On: an authenticator app code is asked at every sign-in." : "Off."}</p>
            {user.totpEnabled ? null : <a href="/account/totp">Set up an authenticator app</a>}
          </section>
        </div>
        <h2>Signed-in sessions</h2>
        <table>
          <thead>
            <tr>
              <th>Started (UTC)</th>
              <th>Last active (UTC)</th>
              <th>From</th>
              <th>Browser</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {sessions.map((s) => (
              <tr key={s.id}>
                <td>{s.createdAt.replace("T", " ").slice(0, 19)}</td>
                <td>{s.lastSeenAt.replace("T", " ").slice(0, 19)}</td>
                <td>{s.ip ?? "-"}</td>
                <td>{(s.userAgent ?? "-").slice(0, 60)}</td>
                <td>
                  <Form method="post">
                    <input type="hidden" name="intent" value="revoke" />
                    <input type="hidden" name="session" value={s.id} />
                    <button type="submit">{s.id === current ? "Sign out here" : "Sign out"}</button>
                  </Form>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </main>
    </>
  );
}
