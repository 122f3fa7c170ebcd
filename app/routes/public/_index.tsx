import { redirect, type LoaderFunctionArgs } from "@remix-run/node";
import { getUser } from "../../platform/session.server.ts";

export async function loader({ request, context }: LoaderFunctionArgs) {
  const user = await getUser(request, context);
  return redirect(user ? "/studies" : "/login");
}
