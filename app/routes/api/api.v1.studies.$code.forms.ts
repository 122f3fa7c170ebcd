import type { ActionFunctionArgs, LoaderFunctionArgs } from "@remix-run/node";
import { apiError, readJsonBody, apiPrincipal } from "../../platform/api.server.ts";
import { can, type Principal } from "../../platform/permissions.server.ts";
import { apiServiceErrorResponse } from "../../platform/error-response.server.ts";
import { auditActor } from "../../platform/attribution.ts";
import { formView, importForm, listStudyForms } from "../../records/forms.server.ts";
import { findStudy } from "../../studies/studies.server.ts";
import type { AppContext } from "../../platform/context.server.ts";

const MAX_BODY = 256 * 1024;

async function studyFor(ctx: AppContext, principal: Principal, code: string) {
  const study = await findStudy(ctx, code.toUpperCase());
  // A study the caller cannot see looks exactly like one that does not exist.
  return study && can(principal, "study.view", { studyId: study.id }) ? study : null;
}

/** GET /api/v1/studies/:code/forms: every version of every form, with its definition and approval. */
export async function loader({ request, context, params }: LoaderFunctionArgs) {
  const principal = await apiPrincipal(request, context.ctx);
  if (!principal) return apiError(401, "unauthenticated", "sign in or send Authorization: Bearer TOKEN");
  const study = await studyFor(context.ctx, principal, params.code ?? "");
  if (!study) return apiError(404, "not_found", `no study ${params.code}`);
  const forms = await listStudyForms(context.ctx, study.code);
  return Response.json({ study: study.code, forms: forms.map(formView) });
}

/**
 * POST /api/v1/studies/:code/forms (body: the form definition JSON; `?draft=true` to import without approving).
 * Approving is a ledger entry. 201 with the form; 400 unreadable body, 413 too large, 422 invalid definition
 * (field = path of the offending part), 409 version exists, 403 not allowed (admins; tokens with forms.manage).
 */
export async function action({ request, context, params }: ActionFunctionArgs) {
  const ctx = context.ctx;
  if (request.method !== "POST") return apiError(405, "method_not_allowed", "use POST");
  const principal = await apiPrincipal(request, ctx);
  if (!principal) return apiError(401, "unauthenticated", "sign in or send Authorization: Bearer TOKEN");
  const study = await studyFor(ctx, principal, params.code ?? "");
  if (!study) return apiError(404, "not_found", `no study ${params.code}`);
  if (!can(principal, "forms.manage", { studyId: study.id }))
    return apiError(
      403,
      "forbidden",
      "importing forms needs the study admin role or a token with the forms.manage scope",
    );
  const draftParam = new URL(request.url).searchParams.get("draft");
  if (draftParam !== null && !["true", "false", "1", "0"].includes(draftParam))
    return apiError(400, "invalid", "draft must be true or false", "draft");
  const body = await readJsonBody(request, MAX_BODY);
  if (!body.ok) return body.response;
  const definition = body.value;
  try {
    const f = await importForm(ctx, study.code, definition, {
      draft: draftParam === "true" || draftParam === "1",
      actorId: principal.userId,
      actorLabel: auditActor(principal).actorLabel,
    });
    return Response.json(
      { ...formView(f), entry: f.approvalEntryId ? { id: f.approvalEntryId, status: "pending" } : null },
      { status: 201, headers: { location: `/api/v1/studies/${study.code}/forms` } },
    );
  } catch (err) {
    return apiServiceErrorResponse(err);
  }
}
