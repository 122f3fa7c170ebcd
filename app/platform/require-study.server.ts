/** The preamble of every study page's loader and action: the study from the URL, then the permission check. */
import type { AppLoadContext, LoaderFunctionArgs } from "@remix-run/node";
import { findStudy } from "../studies/studies.server.ts";
import type { Action } from "./permissions.server.ts";
import { requireStudyPermission } from "./session.server.ts";

/**
 * The study named by the route's `$code` and the signed-in user permitted `action` in it. Throws the response
 * to send otherwise: 404 "No such study" for an unknown code (checked first), the sign-in redirect for no
 * session, 403 "Forbidden" without the permission (requireStudyPermission).
 */
export async function requireStudy(
  request: Request,
  context: AppLoadContext,
  params: LoaderFunctionArgs["params"],
  action: Action,
) {
  const study = await findStudy(context.ctx, params.code ?? "");
  if (!study) throw new Response("No such study", { status: 404 });
  const user = await requireStudyPermission(request, context, action, { studyId: study.id });
  return { study, user };
}
