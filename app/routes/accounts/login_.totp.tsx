import { json, redirect, type ActionFunctionArgs, type LoaderFunctionArgs, type MetaFunction } from "@remix-run/node";
import { Form, useActionData, useSearchParams } from "@remix-run/react";
import { z } from "zod";
import { completeMfa, liveSession } from "../../accounts/auth.server.ts";
import { serviceErrorResponse } from "../../platform/error-response.server.ts";
import { requestMeta, safeNext, sessionCookie, sessionToken } from "../../platform/session.server.ts";
import { TopBar } from "../../ui/top-bar.tsx";

export const meta: MetaFunction = () => [{ title: "Verification code · TrialSeal" }];

export async function loader({ request, context }: LoaderFunctionArgs) {
  const token = await sessionToken(request, context.ctx);
  const s = token ? await liveSession(context.ctx, token) : null;
  if (s?.stage !== "mfa") return redirect("/login");
  return null;
}

export async function action({ request, context }: ActionFunctionArgs) {
  const parsed = z
    .object({ code: z.string().trim().min(1, "Enter the code").max(20), next: z.string().optional() })
    .safeParse(Object.fromEntries(await request.formData()));
  if (!parsed.success) return json({ error: parsed.error.issues[0].message }, { status: 400 });
  const token = await sessionToken(request, context.ctx);
  if (!token) return redirect("/login");
  try {
    const full = await completeMfa(context.ctx, token, parsed.data.code, requestMeta(request));
    return redirect(safeNext(parsed.data.next), {
      headers: { "Set-Cookie": await sessionCookie(context.ctx).serialize(full) },
    });
  } catch (err) {
    return serviceErrorResponse(err);
  }
}

export default function LoginTotp() {
  const data = useActionData<typeof action>();
  const [params] = useSearchParams();
  return (
    <>
      <TopBar user={null} />
      <main className="page narrow">
        <div className="card">
          <h1>Verification code</h1>
          <p className="muted">Enter the 6-digit code from your authenticator app.</p>
          <Form method="post" noValidate>
            <input type="hidden" name="next" value={params.get("next") ?? ""} />
            <label htmlFor="code">Code</label>
            <input
              id="code"
              name="code"
              type="text"
              inputMode="numeric"
              autoComplete="one-time-code"
              pattern="[0-9]{6}"
              required
              aria-invalid={data?.error ? true : undefined}
            />
            {data?.error ? (
              <p className="error" role="alert">
                {data.error}
              </p>
            ) : null}
            <button type="submit">Verify</button>
          </Form>
        </div>
      </main>
    </>
  );
}
