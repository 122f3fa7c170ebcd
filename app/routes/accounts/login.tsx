import { json, redirect, type ActionFunctionArgs, type LoaderFunctionArgs, type MetaFunction } from "@remix-run/node";
import { Form, useActionData, useNavigation, useSearchParams } from "@remix-run/react";
import { z } from "zod";
import { login } from "../../accounts/auth.server.ts";
import { serviceErrorResponse } from "../../platform/error-response.server.ts";
import { getUser, requestMeta, safeNext, sessionCookie } from "../../platform/session.server.ts";
import { TopBar } from "../../ui/top-bar.tsx";

export const meta: MetaFunction = () => [{ title: "Sign in · TrialSeal" }];

const LoginForm = z.object({
  email: z.string().trim().min(1, "Enter your email").max(320),
  password: z.string().min(1, "Enter your password").max(1024),
  next: z.string().optional(),
});

export async function loader({ request, context }: LoaderFunctionArgs) {
  if (await getUser(request, context)) return redirect("/studies");
  return null;
}

export async function action({ request, context }: ActionFunctionArgs) {
  const parsed = LoginForm.safeParse(Object.fromEntries(await request.formData()));
  if (!parsed.success) {
    const i = parsed.error.issues[0];
    return json({ error: i.message, field: String(i.path[0]) }, { status: 400 });
  }
  try {
    const { token, stage } = await login(context.ctx, parsed.data.email, parsed.data.password, requestMeta(request));
    const next = safeNext(parsed.data.next);
    const to =
      stage === "mfa"
        ? `/login/totp?next=${encodeURIComponent(next)}`
        : stage === "enroll"
          ? `/account/totp?next=${encodeURIComponent(next)}`
          : next;
    return redirect(to, { headers: { "Set-Cookie": await sessionCookie(context.ctx).serialize(token) } });
  } catch (err) {
    // Any refusal marks the password field (sign-in errors never name a field).
    return serviceErrorResponse(err, {}, "password");
  }
}

export default function Login() {
  const data = useActionData<typeof action>();
  const [params] = useSearchParams();
  const nav = useNavigation();
  return (
    <>
      <TopBar user={null} />
      <main className="page narrow">
        <div className="card">
          <h1>Sign in</h1>
          <Form method="post" noValidate>
            <input type="hidden" name="next" value={params.get("next") ?? ""} />
            <label htmlFor="email">Email</label>
            <input
              id="email"
              name="email"
              type="email"
              autoComplete="username"
              required
              aria-invalid={data?.field === "email" || undefined}
            />
            <label htmlFor="password">Password</label>
            <input
              id="password"
              name="password"
              type="password"
              autoComplete="current-password"
              required
              aria-invalid={data?.field === "password" || undefined}
            />
            {data?.error ? (
              <p className="error" role="alert">
                {data.error}
              </p>
            ) : null}
            <button type="submit" disabled={nav.state !== "idle"}>
              Sign in
            </button>
          </Form>
          <p>
            <a href="/forgot-password">Forgot your password?</a>
          </p>
        </div>
      </main>
    </>
  );
}
