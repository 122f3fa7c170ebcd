import { json, redirect, type ActionFunctionArgs, type MetaFunction } from "@remix-run/node";
import { Form, useActionData } from "@remix-run/react";
import { z } from "zod";
import { resetPassword } from "../../accounts/auth.server.ts";
import { serviceErrorResponse } from "../../platform/error-response.server.ts";
import { requestMeta } from "../../platform/session.server.ts";
import { TopBar } from "../../ui/top-bar.tsx";

export const meta: MetaFunction = () => [
  { title: "Choose a new password · TrialSeal" },
  { name: "referrer", content: "no-referrer" },
];

export async function action({ request, context, params }: ActionFunctionArgs) {
  const parsed = z
    .object({ password: z.string().max(1024), confirm: z.string().max(1024) })
    .safeParse(Object.fromEntries(await request.formData()));
  if (!parsed.success) return json({ error: "fill in both fields", field: "password" }, { status: 400 });
  if (parsed.data.password !== parsed.data.confirm)
    return json({ error: "the two passwords differ", field: "confirm" }, { status: 422 });
  try {
    await resetPassword(context.ctx, params.token ?? "", parsed.data.password, requestMeta(request));
  } catch (err) {
    return serviceErrorResponse(err, {}, "password");
  }
  return redirect("/login?reset=1");
}

export default function ResetPassword() {
  const data = useActionData<typeof action>();
  return (
    <>
      <TopBar user={null} />
      <main className="page narrow">
        <div className="card">
          <h1>Choose a new password</h1>
          <Form method="post" noValidate>
            <label htmlFor="password">New password (12 to 128 characters)</label>
            <input id="password" name="password" type="password" autoComplete="new-password" required />
            <label htmlFor="confirm">New password again</label>
            <input id="confirm" name="confirm" type="password" autoComplete="new-password" required />
            {data?.error ? (
              <p className="error" role="alert">
                {data.error}
              </p>
            ) : null}
            <button type="submit">Set password</button>
          </Form>
        </div>
      </main>
    </>
  );
}
