/**
 * The preamble of the data-use pages (issue 22, ADR 0069): the one study page an external researcher or the data
 * access committee opens (they have no study.view). 404 for an unknown study (checked first), the sign-in redirect
 * for no session, 403 for anyone who is neither a researcher of the study, its committee nor holds data_use.view.
 */
import type { AppLoadContext, LoaderFunctionArgs } from "@remix-run/node";
import { mayOpenDataRequests } from "../data-sharing/requests.server.ts";
import { findStudy } from "../studies/studies.server.ts";
import { requireUser } from "./session.server.ts";

export async function requireDataUseStudy(
  request: Request,
  context: AppLoadContext,
  params: LoaderFunctionArgs["params"],
) {
  const study = await findStudy(context.ctx, params.code ?? "");
  if (!study) throw new Response("No such study", { status: 404 });
  const user = await requireUser(request, context);
  if (!mayOpenDataRequests(user, study.id)) throw new Response("Forbidden", { status: 403 });
  return { study, user };
}
