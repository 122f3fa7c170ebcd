import type { LoaderFunctionArgs } from "@remix-run/node";
import { latestCheckpoint } from "../../log/proofs.server.ts";

/** Public: the latest signed checkpoint (C2SP signed note), text/plain. */
export async function loader({ context }: LoaderFunctionArgs) {
  const cp = await latestCheckpoint(context.ctx);
  if (!cp)
    return new Response("no checkpoint yet\n", {
      status: 404,
      headers: { "content-type": "text/plain; charset=utf-8" },
    });
  return new Response(cp.noteText, {
    headers: { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" },
  });
}
