import { json, redirect, type ActionFunctionArgs, type LoaderFunctionArgs, type MetaFunction } from "@remix-run/node";
import { Form, useActionData, useLoaderData } from "@remix-run/react";
import { createStudy } from "../../studies/studies.server.ts";
import { serviceErrorResponse } from "../../platform/error-response.server.ts";
import { requireUser } from "../../platform/session.server.ts";
import { TopBar } from "../../ui/top-bar.tsx";
import { TimeZoneSelect } from "../../ui/time-zone-select.tsx";
import { timeZoneNames } from "../../platform/time-zone.ts";

export const meta: MetaFunction = () => [{ title: "New study · TrialSeal" }];

async function requirePlatformAdmin(request: Request, context: LoaderFunctionArgs["context"]) {
  const user = await requireUser(request, context);
  if (!user.platformAdmin) throw new Response("Only platform administrators create studies", { status: 403 });
  return user;
}

export async function loader({ request, context }: LoaderFunctionArgs) {
  const user = await requirePlatformAdmin(request, context);
  return json({ user: { fullName: user.fullName, email: user.email }, zones: timeZoneNames() });
}

export async function action({ request, context }: ActionFunctionArgs) {
  const user = await requirePlatformAdmin(request, context);
  const form = await request.formData();
  const text = (k: string) => String(form.get(k) ?? "");
  try {
    const { study } = await createStudy(
      context.ctx,
      {
        code: text("code"),
        title: text("title"),
        sites: [{ code: text("siteCode"), name: text("siteName"), timeZone: text("siteTimeZone") }],
      },
      user.userId,
    );
    return redirect(`/studies/${study.code}/staff`);
  } catch (err) {
    return serviceErrorResponse(err);
  }
}

export default function NewStudy() {
  const d = useLoaderData<typeof loader>();
  const r = useActionData<typeof action>();
  const bad = (f: string) => (r?.field === f ? true : undefined);
  return (
    <>
      <TopBar user={d.user} />
      <main className="page narrow">
        <div className="card">
          <h1>New study</h1>
          <Form method="post" noValidate>
            <label htmlFor="code">Protocol code</label>
            <input id="code" name="code" type="text" placeholder="ABC-123" aria-invalid={bad("code")} />
            <label htmlFor="title">Title</label>
            <input id="title" name="title" type="text" aria-invalid={bad("title")} />
            <label htmlFor="siteCode">First site code</label>
            <input id="siteCode" name="siteCode" type="text" placeholder="SITE-01" aria-invalid={bad("sites")} />
            <label htmlFor="siteName">First site name</label>
            <input id="siteName" name="siteName" type="text" aria-invalid={bad("sites")} />
            <label htmlFor="siteTimeZone">First site time zone</label>
            <TimeZoneSelect id="siteTimeZone" name="siteTimeZone" zones={d.zones} invalid={bad("sites")} />
            <p className="muted">Dates and times of the site's forms are entered and shown on this clock.</p>
            {r?.error ? (
              <p className="error" role="alert">
                {r.error}
              </p>
            ) : null}
            <button type="submit">Create study</button>
          </Form>
        </div>
      </main>
    </>
  );
}
