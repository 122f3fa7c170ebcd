import type { LoaderFunctionArgs } from "@remix-run/node";
import { requireStudy } from "../../platform/require-study.server.ts";
import { studyScheduleText } from "../../visit-schedule/schedule-view.server.ts";

/** The visit schedule in force as its stored canonical JSON text (the bytes whose SHA-256 is sealed). */
export async function loader({ request, context, params }: LoaderFunctionArgs) {
  const { study } = await requireStudy(request, context, params, "study.view");
  const s = await studyScheduleText(context.ctx, study.id);
  if (!s) return new Response(`no visit schedule in study ${study.code}\n`, { status: 404 });
  return new Response(s.text, {
    headers: {
      "content-type": "application/json; charset=utf-8",
      "content-disposition": `attachment; filename="${study.code}-schedule-v${s.version}.json"`,
    },
  });
}
