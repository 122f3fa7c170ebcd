import { json, type ActionFunctionArgs, type MetaFunction } from "@remix-run/node";
import { Form, useActionData } from "@remix-run/react";
import { z } from "zod";
import { requestPasswordReset } from "../../accounts/auth.server.ts";
import { requestMeta } from "../../platform/session.server.ts";
import { TopBar } from "../../ui/top-bar.tsx";

export const meta: MetaFunction = () => [{ title: "Reset your password · TrialSeal" }];

export async function action({ request, context }: ActionFunctionArgs) {
  const parsed = z
    .object({ email: z.string().trim().min(3, "Enter your email").max(320) })
    .safeParse(Object.fromEntries(await request.formData()));
  if (!parsed.success) return json({ sent: false, error: parsed.error.issues[0].message }, { status: 400 });
  const origin = context.ctx.env.publicUrl;
  await requestPasswordReset(context.ctx, parsed.data.email, origin, requestMeta(request));
  // The same answer whether or not the account exists.
  return json({ sent: true, error: null });
}

export default function ForgotPassword() {
  const data = useActionData<typeof action>();
  return (
    <>
      <TopBar user={null} />
      <main className="page narrow">
        <div className="card">
          <h1>Reset your password</h1>
          {data?.sent ? (
            <p role="status">
              If an account uses that email, a reset link is on its way. It works once, for 30 minutes.
            </p>
          ) : (
            <Form method="post" noValidate>
              <label htmlFor="email">Email</label>
              <input id="email" name="email" type="email" autoComplete="username" required />
              {data?.error ? (
                <p className="error" role="alert">
                  {data.error}
                </p>
              ) : null}
              <button type="submit">Send the link</button>
            </Form>
          )}
        </div>
      </main>
    </>
  );
}
