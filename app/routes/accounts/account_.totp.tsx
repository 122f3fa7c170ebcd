import { json, redirect, type ActionFunctionArgs, type LoaderFunctionArgs, type MetaFunction } from "@remix-run/node";
import { Form, useActionData, useLoaderData, useSearchParams } from "@remix-run/react";
import { z } from "zod";
import { confirmTotpEnrolment, pendingTotpEnrolment } from "../../accounts/auth.server.ts";
import { ServiceError } from "../../platform/errors.server.ts";
import { qrDataUrl } from "../../platform/qr.server.ts";
import { serviceErrorResponse } from "../../platform/error-response.server.ts";
import { requestMeta, safeNext, sessionCookie, sessionToken } from "../../platform/session.server.ts";
import { TopBar } from "../../ui/top-bar.tsx";

export const meta: MetaFunction = () => [{ title: "Two-factor sign-in · TrialSeal" }];

export async function loader({ request, context }: LoaderFunctionArgs) {
  const token = await sessionToken(request, context.ctx);
  if (!token) return redirect("/login");
  try {
    const pending = await pendingTotpEnrolment(context.ctx, token);
    // The otpauth:// URI as a QR code to scan, beside the base32 key for manual entry.
    const qr = !pending.enabled && pending.uri ? await qrDataUrl(pending.uri) : null;
    return json({ ...pending, qr }, { headers: { "cache-control": "no-store" } });
  } catch (err) {
    if (err instanceof ServiceError) return redirect("/login");
    throw err;
  }
}

export async function action({ request, context }: ActionFunctionArgs) {
  const parsed = z
    .object({ code: z.string().trim().min(1, "Enter the code").max(20), next: z.string().optional() })
    .safeParse(Object.fromEntries(await request.formData()));
  if (!parsed.success) return json({ error: parsed.error.issues[0].message }, { status: 400 });
  const token = await sessionToken(request, context.ctx);
  if (!token) return redirect("/login");
  try {
    const full = await confirmTotpEnrolment(context.ctx, token, parsed.data.code, requestMeta(request));
    return redirect(safeNext(parsed.data.next, "/account"), {
      headers: { "Set-Cookie": await sessionCookie(context.ctx).serialize(full) },
    });
  } catch (err) {
    return serviceErrorResponse(err);
  }
}

export default function AccountTotp() {
  const data = useLoaderData<typeof loader>();
  const result = useActionData<typeof action>();
  const [params] = useSearchParams();
  return (
    <>
      <TopBar user={null} />
      <main className="page narrow">
        <div className="card">
          <h1>Two-factor sign-in</h1>
          {data.enabled ? (
            <p>
              Your account uses an authenticator app. <a href="/account">Back to your account</a>
            </p>
          ) : (
            <>
              {data.required ? <p>Your role needs a second factor. Set it up to continue.</p> : null}
              <ol className="totp-setup">
                <li>
                  In your authenticator app, scan this code, or add an account with the key below (or open the{" "}
                  <a href={data.uri ?? "#"}>setup link</a> on your phone):
                  {data.qr ? (
                    <img
                      src={data.qr}
                      alt={`QR code to add TrialSeal to an authenticator app; the same key as text: ${data.secret}`}
                      data-testid="totp-qr"
                      width={200}
                      height={200}
                    />
                  ) : null}
                  <p>
                    Key for manual entry: <code data-testid="totp-secret">{data.secret}</code>
                  </p>
                </li>
                <li>Enter the 6-digit code the app shows.</li>
              </ol>
              <Form method="post" noValidate>
                <input type="hidden" name="next" value={params.get("next") ?? ""} />
                <label htmlFor="code">Code</label>
                <input
                  id="code"
                  name="code"
                  type="text"
                  inputMode="numeric"
                  autoComplete="one-time-code"
                  required
                  aria-invalid={result?.error ? true : undefined}
                />
                {result?.error ? (
                  <p className="error" role="alert">
                    {result.error}
                  </p>
                ) : null}
                <button type="submit">Turn on</button>
              </Form>
            </>
          )}
        </div>
      </main>
    </>
  );
}
