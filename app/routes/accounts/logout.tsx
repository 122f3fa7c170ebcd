import { redirect, type ActionFunctionArgs } from "@remix-run/node";
import { logout } from "../../accounts/auth.server.ts";
import { requestMeta, sessionCookie, sessionToken } from "../../platform/session.server.ts";

export async function loader() {
  return redirect("/");
}

export async function action({ request, context }: ActionFunctionArgs) {
  const token = await sessionToken(request, context.ctx);
  if (token) await logout(context.ctx, token, requestMeta(request));
  return redirect("/login", {
    headers: {
      "Set-Cookie": await sessionCookie(context.ctx).serialize("", { maxAge: 0 }),
      // ASVS V8.2.3: the browser drops what it kept of the session (pages in its cache, cookies, storage).
      "Clear-Site-Data": '"cache", "cookies", "storage"',
    },
  });
}
